//! File-system profiles: `etc/filesystem/NAME.properties`, each a local file system (a local
//! disk or an NFS mount) or an S3-compatible object store. Keys follow Trino's native S3 file
//! system where the concept is the same (`s3.endpoint`, `s3.region`, `s3.path-style-access`,
//! `s3.aws-access-key`, `s3.aws-secret-key`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use shoal_proto::properties::{ConfigError, KeySpec, PropertiesFile, Reader};

/// The keys of a file-system profile.
pub const FILESYSTEM_KEYS: &[KeySpec] = &[
    KeySpec {
        key: "fs.client.type",
        default: None,
        doc: "The file system of the profile: local (a local disk or an NFS-mounted directory) or s3 (an S3-compatible object store).",
    },
    KeySpec {
        key: "s3.bucket",
        default: Some(""),
        doc: "s3 only, required there: the bucket.",
    },
    KeySpec {
        key: "s3.prefix",
        default: Some(""),
        doc: "s3 only: the key prefix under which the profile's directories lie; empty for the bucket's top.",
    },
    KeySpec {
        key: "s3.endpoint",
        default: Some(""),
        doc: "s3 only: the server's URL (http:// or https://); empty for AWS's endpoint of s3.region.",
    },
    KeySpec {
        key: "s3.region",
        default: Some("us-east-1"),
        doc: "s3 only: the region requests are signed for.",
    },
    KeySpec {
        key: "s3.path-style-access",
        default: Some("false"),
        doc: "s3 only: address the bucket in the path (http://host/bucket/key) rather than in the host name; most S3-compatible servers need true.",
    },
    KeySpec {
        key: "s3.aws-access-key",
        default: Some(""),
        doc: "s3 only: the access key; with s3.aws-secret-key. Empty: s3.credentials-file, else the environment (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN, or an instance's role).",
    },
    KeySpec {
        key: "s3.aws-secret-key",
        default: Some(""),
        doc: "s3 only: the secret key of s3.aws-access-key. Never logged.",
    },
    KeySpec {
        key: "s3.credentials-file",
        default: Some(""),
        doc: "s3 only: an AWS shared credentials file (aws_access_key_id, aws_secret_access_key, aws_session_token under [profile] headings) used when s3.aws-access-key is empty; relative paths from the etc directory's parent.",
    },
    KeySpec {
        key: "s3.credentials-profile",
        default: Some("default"),
        doc: "s3 only: the heading of s3.credentials-file to read.",
    },
    KeySpec {
        key: "s3.tls.ca-file",
        default: Some(""),
        doc: "s3 only: PEM file of the certificate authorities an https endpoint is checked against, besides the system's; relative paths from the etc directory's parent.",
    },
];

/// A secret that prints as `<hidden>`, so that it never reaches a log line.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<hidden>")
    }
}

/// Where an S3 profile's credentials come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credentials {
    /// Given in the profile or read from a credentials file.
    Static {
        access_key: String,
        secret_key: Secret,
        session_token: Option<Secret>,
    },
    /// Read from the environment when the store is opened.
    Environment,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Profile {
    pub bucket: String,
    /// Without a leading or trailing `/`; empty for the bucket's top.
    pub prefix: String,
    pub endpoint: Option<String>,
    pub region: String,
    pub path_style: bool,
    pub credentials: Credentials,
    pub ca_file: Option<PathBuf>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProfileKind {
    Local,
    S3(S3Profile),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Profile {
    pub name: String,
    pub kind: ProfileKind,
}

/// Every profile of an etc directory, by name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Profiles {
    by_name: BTreeMap<String, Profile>,
}

impl Profiles {
    /// Read every `etc/filesystem/*.properties`; relative paths are taken from `base`. A
    /// missing directory holds no profile.
    pub fn load(etc: &Path, base: &Path) -> Result<Self, ConfigError> {
        let dir = etc.join("filesystem");
        let mut by_name = BTreeMap::new();
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Profiles::default()),
            Err(e) => {
                return Err(ConfigError {
                    file: dir.display().to_string(),
                    line: None,
                    key: None,
                    reason: format!("cannot list the profiles: {e}"),
                })
            }
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let Some(name) = path
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.strip_suffix(".properties"))
            else {
                continue;
            };
            if name.is_empty() || name.starts_with('.') {
                continue;
            }
            let file = PropertiesFile::load(&path, false)?;
            let profile = Profile::read(name, &file, base)?;
            by_name.insert(name.to_string(), profile);
        }
        Ok(Profiles { by_name })
    }

    /// Profiles given directly (tests, `shoal local`).
    pub fn from_list(profiles: impl IntoIterator<Item = Profile>) -> Self {
        Profiles {
            by_name: profiles.into_iter().map(|p| (p.name.clone(), p)).collect(),
        }
    }

    pub fn get(&self, name: &str) -> Option<&Profile> {
        self.by_name.get(name)
    }

    pub fn iter(&self) -> impl Iterator<Item = &Profile> {
        self.by_name.values()
    }
}

impl Profile {
    /// The profile `name` from its parsed file.
    pub fn read(name: &str, file: &PropertiesFile, base: &Path) -> Result<Self, ConfigError> {
        let reader = Reader::new(file, FILESYSTEM_KEYS)?;
        let kind = match reader.choice("fs.client.type", &["local", "s3"])?.as_str() {
            "s3" => ProfileKind::S3(read_s3(&reader, base)?),
            _ => {
                if let Some(key) = file.entries.keys().find(|k| k.starts_with("s3.")) {
                    return Err(reader.invalid(key, "only for profiles with fs.client.type=s3"));
                }
                ProfileKind::Local
            }
        };
        Ok(Profile {
            name: name.to_string(),
            kind,
        })
    }
}

fn resolve(base: &Path, path: &str) -> PathBuf {
    let path = PathBuf::from(path);
    if path.is_absolute() {
        path
    } else {
        base.join(path)
    }
}

fn read_s3(reader: &Reader, base: &Path) -> Result<S3Profile, ConfigError> {
    let bucket = reader.non_empty("s3.bucket")?;
    let bucket_ok = (3..=63).contains(&bucket.len())
        && bucket
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.');
    if !bucket_ok {
        return Err(reader.invalid(
            "s3.bucket",
            "a bucket name has 3 to 63 lower-case letters, digits, '-' and '.'",
        ));
    }
    let prefix = reader.string("s3.prefix")?.trim_matches('/').to_string();
    if prefix.split('/').any(|s| s == "." || s == "..")
        || (!prefix.is_empty() && prefix.split('/').any(str::is_empty))
    {
        return Err(reader.invalid("s3.prefix", "segments may not be empty, '.' or '..'"));
    }
    let endpoint = reader.string("s3.endpoint")?;
    let endpoint = if endpoint.is_empty() {
        None
    } else if endpoint.starts_with("http://") || endpoint.starts_with("https://") {
        Some(endpoint.trim_end_matches('/').to_string())
    } else {
        return Err(reader.invalid("s3.endpoint", "must start with http:// or https://"));
    };
    let access_key = reader.string("s3.aws-access-key")?;
    let secret_key = reader.string("s3.aws-secret-key")?;
    let credentials_file = reader.string("s3.credentials-file")?;
    let credentials = match (access_key.is_empty(), secret_key.is_empty()) {
        (false, false) => Credentials::Static {
            access_key,
            secret_key: Secret::new(secret_key),
            session_token: None,
        },
        (true, true) if !credentials_file.is_empty() => {
            let profile = reader.non_empty("s3.credentials-profile")?;
            read_credentials_file(&resolve(base, &credentials_file), &profile)
                .map_err(|reason| reader.invalid("s3.credentials-file", reason))?
        }
        (true, true) => Credentials::Environment,
        (false, true) => {
            return Err(reader.invalid("s3.aws-secret-key", "required with s3.aws-access-key"))
        }
        (true, false) => {
            return Err(reader.invalid("s3.aws-access-key", "required with s3.aws-secret-key"))
        }
    };
    let ca_file = reader.string("s3.tls.ca-file")?;
    let ca_file = (!ca_file.is_empty()).then(|| resolve(base, &ca_file));
    if let Some(path) = &ca_file {
        if !path.is_file() {
            return Err(reader.invalid("s3.tls.ca-file", format!("no file {}", path.display())));
        }
    }
    Ok(S3Profile {
        bucket,
        prefix,
        endpoint,
        region: reader.non_empty("s3.region")?,
        path_style: reader.bool("s3.path-style-access")?,
        credentials,
        ca_file,
    })
}

/// The credentials under `[profile]` of an AWS shared credentials file.
fn read_credentials_file(path: &Path, profile: &str) -> Result<Credentials, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let mut section = None::<String>;
    let mut values = BTreeMap::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = Some(name.trim().to_string());
            continue;
        }
        if section.as_deref() != Some(profile) {
            continue;
        }
        if let Some((key, value)) = line.split_once('=') {
            values.insert(key.trim().to_string(), value.trim().to_string());
        }
    }
    let take = |key: &str| values.get(key).filter(|v| !v.is_empty()).cloned();
    match (take("aws_access_key_id"), take("aws_secret_access_key")) {
        (Some(access_key), Some(secret)) => Ok(Credentials::Static {
            access_key,
            secret_key: Secret::new(secret),
            session_token: take("aws_session_token").map(Secret::new),
        }),
        _ => Err(format!(
            "{} has no aws_access_key_id and aws_secret_access_key under [{profile}]",
            path.display()
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn profile(text: &str, base: &Path) -> Result<Profile, ConfigError> {
        let file = PropertiesFile::parse(Path::new("etc/filesystem/p.properties"), text)?;
        Profile::read("p", &file, base)
    }

    #[test]
    fn s3_profiles_read_their_keys_and_hide_secrets() {
        let dir = tempfile::TempDir::new().expect("dir");
        let p = profile(
            "fs.client.type=s3\ns3.bucket=warehouse\ns3.prefix=/a/b/\ns3.endpoint=http://127.0.0.1:9000/\n\
             s3.path-style-access=true\ns3.aws-access-key=AK\ns3.aws-secret-key=very-secret\n",
            dir.path(),
        )
        .expect("profile");
        let ProfileKind::S3(s3) = &p.kind else {
            panic!("not s3: {p:?}")
        };
        assert_eq!(s3.prefix, "a/b");
        assert_eq!(s3.endpoint.as_deref(), Some("http://127.0.0.1:9000"));
        assert!(s3.path_style);
        assert!(!format!("{p:?}").contains("very-secret"));
    }

    #[test]
    fn credentials_come_from_a_file_or_the_environment() {
        let dir = tempfile::TempDir::new().expect("dir");
        std::fs::write(
            dir.path().join("creds"),
            "[other]\naws_access_key_id=X\naws_secret_access_key=Y\n[shoal]\naws_access_key_id = AK\naws_secret_access_key = SK\n",
        )
        .expect("file");
        let p = profile(
            "fs.client.type=s3\ns3.bucket=bkt\ns3.credentials-file=creds\ns3.credentials-profile=shoal\n",
            dir.path(),
        )
        .expect("profile");
        let ProfileKind::S3(s3) = p.kind else {
            panic!("not s3")
        };
        assert!(matches!(
            s3.credentials,
            Credentials::Static { ref access_key, ref secret_key, .. }
                if access_key == "AK" && secret_key.expose() == "SK"
        ));
        let p = profile("fs.client.type=s3\ns3.bucket=bkt\n", dir.path()).expect("profile");
        assert!(matches!(
            p.kind,
            ProfileKind::S3(S3Profile {
                credentials: Credentials::Environment,
                ..
            })
        ));
    }

    #[test]
    fn bad_profiles_are_refused_with_the_key() {
        let dir = tempfile::TempDir::new().expect("dir");
        for (text, key) in [
            ("fs.client.type=s3\n", "s3.bucket"),
            ("fs.client.type=s3\ns3.bucket=A_B\n", "s3.bucket"),
            (
                "fs.client.type=s3\ns3.bucket=bkt\ns3.prefix=a/../b\n",
                "s3.prefix",
            ),
            (
                "fs.client.type=s3\ns3.bucket=bkt\ns3.endpoint=localhost:9000\n",
                "s3.endpoint",
            ),
            (
                "fs.client.type=s3\ns3.bucket=bkt\ns3.aws-access-key=AK\n",
                "s3.aws-secret-key",
            ),
            ("fs.client.type=local\ns3.bucket=bkt\n", "s3.bucket"),
            ("fs.client.type=hdfs\n", "fs.client.type"),
        ] {
            let error = profile(text, dir.path()).expect_err(text);
            assert_eq!(error.key.as_deref(), Some(key), "{text}: {error}");
        }
    }
}
