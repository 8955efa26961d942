//! Password authentication of clients (`http-server.authentication.type=PASSWORD`): HTTP Basic
//! credentials checked against a file of `user:argon2-hash` lines, re-read when it changes.
//! A verified password is remembered as a salted digest, so page requests, which carry the
//! credentials every time, do not pay for an Argon2 verification each.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use argon2::password_hash::rand_core::{OsRng, RngCore};
use argon2::password_hash::SaltString;
use argon2::{Argon2, PasswordHash, PasswordHasher, PasswordVerifier};
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use sha2::{Digest, Sha256};

const USER_HEADER: &str = "x-trino-user";
/// How often, at most, a request looks whether the password file changed.
const RECHECK_EVERY: Duration = Duration::from_secs(1);

#[derive(Debug, thiserror::Error)]
pub enum PasswordFileError {
    #[error("cannot read the password file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path} line {line}: {reason}")]
    Line {
        path: String,
        line: usize,
        reason: String,
    },
    #[error("cannot hash the password: {0}")]
    Hash(String),
}

/// The Argon2id hash of `password` with a fresh random salt, as a PHC string.
pub fn hash_password(password: &str) -> Result<String, PasswordFileError> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|hash| hash.to_string())
        .map_err(|e| PasswordFileError::Hash(e.to_string()))
}

/// Parse a password file: `user:hash` per line, `#` comments and blank lines ignored.
pub fn parse_password_file(
    path: &str,
    text: &str,
) -> Result<HashMap<String, String>, PasswordFileError> {
    let mut users = HashMap::new();
    for (index, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let bad = |reason: &str| PasswordFileError::Line {
            path: path.to_string(),
            line: index + 1,
            reason: reason.to_string(),
        };
        let (user, hash) = line
            .split_once(':')
            .ok_or_else(|| bad("expected user:hash"))?;
        if user.is_empty() {
            return Err(bad("the user name is empty"));
        }
        PasswordHash::new(hash).map_err(|e| bad(&format!("not a PHC password hash: {e}")))?;
        users.insert(user.to_string(), hash.to_string());
    }
    Ok(users)
}

/// The users of the password file as last read, and the passwords verified since.
struct Loaded {
    modified: Option<SystemTime>,
    checked: Instant,
    hashes: HashMap<String, String>,
    verified: HashMap<String, [u8; 32]>,
}

pub struct PasswordAuthenticator {
    path: PathBuf,
    salt: [u8; 32],
    loaded: Mutex<Loaded>,
}

impl PasswordAuthenticator {
    /// Read the password file at `path` (refusing a malformed one).
    pub fn open(path: &Path) -> Result<Arc<Self>, PasswordFileError> {
        let (modified, hashes) = read_file(path)?;
        let mut salt = [0u8; 32];
        OsRng.fill_bytes(&mut salt);
        tracing::info!(path = %path.display(), users = hashes.len(), "password file loaded");
        Ok(Arc::new(PasswordAuthenticator {
            path: path.to_path_buf(),
            salt,
            loaded: Mutex::new(Loaded {
                modified,
                checked: Instant::now(),
                hashes,
                verified: HashMap::new(),
            }),
        }))
    }

    fn digest(&self, user: &str, password: &str) -> [u8; 32] {
        let mut hasher = Sha256::new();
        hasher.update(self.salt);
        hasher.update(user.as_bytes());
        hasher.update([0]);
        hasher.update(password.as_bytes());
        hasher.finalize().into()
    }

    /// Re-read the file when it changed since it was read (looking at most every
    /// RECHECK_EVERY, not on every request); a broken file keeps the old users.
    fn refresh(&self, loaded: &mut Loaded) {
        if loaded.checked.elapsed() < RECHECK_EVERY {
            return;
        }
        loaded.checked = Instant::now();
        let modified = std::fs::metadata(&self.path)
            .and_then(|m| m.modified())
            .ok();
        if modified == loaded.modified {
            return;
        }
        match read_file(&self.path) {
            Ok((modified, hashes)) => {
                tracing::info!(users = hashes.len(), "password file reloaded");
                *loaded = Loaded {
                    modified,
                    checked: Instant::now(),
                    hashes,
                    verified: HashMap::new(),
                };
            }
            Err(e) => tracing::warn!(error = %e, "password file not reloaded"),
        }
    }

    /// Whether `password` is `user`'s.
    pub async fn verify(self: &Arc<Self>, user: &str, password: &str) -> bool {
        let digest = self.digest(user, password);
        let hash = {
            let mut loaded = self.loaded.lock().unwrap_or_else(|e| e.into_inner());
            self.refresh(&mut loaded);
            if loaded.verified.get(user) == Some(&digest) {
                return true;
            }
            match loaded.hashes.get(user) {
                Some(hash) => hash.clone(),
                None => return false,
            }
        };
        let password = password.to_string();
        let matches = tokio::task::spawn_blocking(move || {
            PasswordHash::new(&hash)
                .map(|parsed| {
                    Argon2::default()
                        .verify_password(password.as_bytes(), &parsed)
                        .is_ok()
                })
                .unwrap_or(false)
        })
        .await
        .unwrap_or(false);
        if matches {
            let mut loaded = self.loaded.lock().unwrap_or_else(|e| e.into_inner());
            loaded.verified.insert(user.to_string(), digest);
        }
        matches
    }
}

fn read_file(
    path: &Path,
) -> Result<(Option<SystemTime>, HashMap<String, String>), PasswordFileError> {
    let name = path.display().to_string();
    let read_error = |source| PasswordFileError::Read {
        path: name.clone(),
        source,
    };
    let modified = std::fs::metadata(path).and_then(|m| m.modified()).ok();
    let text = std::fs::read_to_string(path).map_err(read_error)?;
    Ok((modified, parse_password_file(&name, &text)?))
}

/// The user and password of an `Authorization: Basic` header.
pub fn basic_credentials(value: &HeaderValue) -> Option<(String, String)> {
    let encoded = value.to_str().ok()?.strip_prefix("Basic ")?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (user, password) = text.split_once(':')?;
    Some((user.to_string(), password.to_string()))
}

fn unauthorized(message: &str) -> Response {
    (
        StatusCode::UNAUTHORIZED,
        [(header::WWW_AUTHENTICATE, "Basic realm=\"Shoal\"")],
        message.to_string(),
    )
        .into_response()
}

/// Middleware of the client routes: a request needs the Basic credentials of a user in the
/// password file; it then acts as that user (`X-Trino-User` is set to it when absent, and
/// naming another user is refused).
pub async fn require_password(
    State(authenticator): State<Arc<PasswordAuthenticator>>,
    mut request: Request,
    next: Next,
) -> Response {
    let Some((user, password)) = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(basic_credentials)
    else {
        return unauthorized("authentication required: send a user and password");
    };
    if !authenticator.verify(&user, &password).await {
        tracing::warn!(%user, path = %request.uri().path(), "refused wrong credentials");
        return unauthorized("wrong user name or password");
    }
    let claimed = request
        .headers()
        .get(USER_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    match claimed {
        Some(claimed) if claimed != user => (
            StatusCode::FORBIDDEN,
            format!("Access Denied: user {user} cannot act as user {claimed}"),
        )
            .into_response(),
        Some(_) => next.run(request).await,
        None => {
            if let Ok(value) = HeaderValue::from_str(&user) {
                request.headers_mut().insert(USER_HEADER, value);
            }
            next.run(request).await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_password_file_of_argon2_hashes() {
        let hash = hash_password("secret").expect("hash");
        let text = format!("# users\n\nalice:{hash}\n");
        let users = parse_password_file("p", &text).expect("parsed");
        assert_eq!(users.get("alice"), Some(&hash));
        let error = parse_password_file("p", "bob:plaintext\n").expect_err("not a hash");
        assert!(error.to_string().contains("line 1"), "{error}");
        assert!(parse_password_file("p", "nocolon\n").is_err());
    }

    #[tokio::test]
    async fn verification_accepts_the_right_password_only() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("password.db");
        let hash = hash_password("right").expect("hash");
        std::fs::write(&path, format!("alice:{hash}\n")).expect("write");
        let authenticator = PasswordAuthenticator::open(&path).expect("open");
        assert!(authenticator.verify("alice", "right").await);
        assert!(authenticator.verify("alice", "right").await, "cached");
        assert!(!authenticator.verify("alice", "wrong").await);
        assert!(!authenticator.verify("bob", "right").await);
    }

    #[tokio::test]
    async fn a_changed_password_file_is_read_again() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("password.db");
        let alice = hash_password("right").expect("hash");
        std::fs::write(&path, format!("alice:{alice}\n")).expect("write");
        let authenticator = PasswordAuthenticator::open(&path).expect("open");
        assert!(authenticator.verify("alice", "right").await);
        let bob = hash_password("builder").expect("hash");
        std::fs::write(&path, format!("bob:{bob}\n")).expect("rewrite");
        let deadline = Instant::now() + Duration::from_secs(10);
        while !authenticator.verify("bob", "builder").await {
            assert!(Instant::now() < deadline, "bob was not added within 10 s");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(
            !authenticator.verify("alice", "right").await,
            "a removed user is refused, remembered password or not"
        );
    }

    #[test]
    fn basic_credentials_are_decoded() {
        let value = HeaderValue::from_static("Basic YWxpY2U6cDpzcw==");
        assert_eq!(
            basic_credentials(&value),
            Some(("alice".into(), "p:ss".into()))
        );
        assert_eq!(
            basic_credentials(&HeaderValue::from_static("Bearer x")),
            None
        );
    }
}
