//! Reading `access-control.properties` and `group-provider.properties`, and refreshing the files
//! they name.
//!
//! A refreshed file is re-read at most once per refresh period, by the first check after the
//! period ends, and re-parsed only when its text changed. A file that became unreadable or
//! invalid leaves the previous contents in force; the error is kept for
//! [`AccessControl::last_reload_error`](crate::AccessControl::last_reload_error).

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use shoal_proto::properties::{KeySpec, PropertiesFile, Reader};

use crate::groups::load_groups;
use crate::rules::Rules;
use crate::{AccessControl, AccessError};

/// The keys of `etc/access-control.properties`.
pub const ACCESS_CONTROL_KEYS: &[KeySpec] = &[
    KeySpec {
        key: "access-control.name",
        default: None,
        doc: "Which access control: file (rules from security.config-file), allow-all, or \
              read-only (every catalog read-only).",
    },
    KeySpec {
        key: "security.config-file",
        default: Some(""),
        doc: "The JSON rules file of access-control.name=file; relative paths are taken from \
              the etc directory's parent, as etc/rules.json in Trino's examples.",
    },
    KeySpec {
        key: "security.refresh-period",
        default: Some(""),
        doc: "How often the rules file is re-read, such as 1s or 5m; unset: read once at start.",
    },
    KeySpec {
        key: "security.json-pointer",
        default: Some(""),
        doc: "JSON pointer (RFC 6901) to the object holding the rules inside the file, such as \
              /data; empty: the whole file.",
    },
];

pub(crate) type Parser<T> = Box<dyn Fn(&str) -> Result<T, AccessError> + Send + Sync>;

/// Contents read from a file (or given), refreshed from the file when a period is set.
pub(crate) struct Source<T> {
    reload: Option<Reload<T>>,
    state: RwLock<State<T>>,
}

struct Reload<T> {
    path: PathBuf,
    period: Duration,
    parse: Parser<T>,
}

struct State<T> {
    value: Arc<T>,
    checked: Instant,
    /// The text last read; `None` after a failed read, so that any readable text is parsed.
    text: Option<String>,
    error: Option<String>,
}

impl<T> Source<T> {
    pub(crate) fn fixed(value: T) -> Self {
        Source {
            reload: None,
            state: RwLock::new(State {
                value: Arc::new(value),
                checked: Instant::now(),
                text: None,
                error: None,
            }),
        }
    }

    /// Read and parse `path` now (any problem is an error); re-read every `period` if given.
    pub(crate) fn open(
        path: PathBuf,
        period: Option<Duration>,
        parse: Parser<T>,
    ) -> Result<Self, AccessError> {
        let text = std::fs::read_to_string(&path).map_err(|source| AccessError::Io {
            file: path.display().to_string(),
            source,
        })?;
        let value = parse(&text)?;
        Ok(Source {
            state: RwLock::new(State {
                value: Arc::new(value),
                checked: Instant::now(),
                text: Some(text),
                error: None,
            }),
            reload: period.map(|period| Reload {
                path,
                period,
                parse,
            }),
        })
    }

    /// Where the contents come from, for debugging output.
    pub(crate) fn origin(&self) -> String {
        match &self.reload {
            Some(reload) => format!("{} (every {:?})", reload.path.display(), reload.period),
            None => "fixed".to_string(),
        }
    }

    /// The contents in force, refreshing them first if the period has passed.
    pub(crate) fn current(&self) -> Arc<T> {
        let Some(reload) = &self.reload else {
            return Arc::clone(&self.read().value);
        };
        {
            let state = self.read();
            if state.checked.elapsed() < reload.period {
                return Arc::clone(&state.value);
            }
        }
        let mut state = self.state.write().unwrap_or_else(|e| e.into_inner());
        // Another thread may have refreshed while this one waited for the lock.
        if state.checked.elapsed() >= reload.period {
            state.checked = Instant::now();
            match std::fs::read_to_string(&reload.path) {
                Err(e) => {
                    state.text = None;
                    state.error = Some(format!("{}: cannot read: {e}", reload.path.display()));
                }
                Ok(text) if state.text.as_deref() == Some(text.as_str()) => {}
                Ok(text) => {
                    match (reload.parse)(&text) {
                        Ok(value) => {
                            state.value = Arc::new(value);
                            state.error = None;
                        }
                        Err(e) => state.error = Some(e.to_string()),
                    }
                    state.text = Some(text);
                }
            }
        }
        Arc::clone(&state.value)
    }

    pub(crate) fn last_error(&self) -> Option<String> {
        self.read().error.clone()
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, State<T>> {
        self.state.read().unwrap_or_else(|e| e.into_inner())
    }
}

/// `path` as given if absolute, else relative to `base`.
pub(crate) fn resolve(base: &Path, path: &str) -> PathBuf {
    let path = PathBuf::from(path);
    if path.is_absolute() {
        path
    } else {
        base.join(path)
    }
}

/// An optional duration: the empty default means "not set".
fn optional_duration(reader: &Reader<'_>, key: &str) -> Result<Option<Duration>, AccessError> {
    if reader.string(key)?.is_empty() {
        Ok(None)
    } else {
        Ok(Some(reader.duration(key)?))
    }
}

pub(crate) fn load(etc: &Path) -> Result<AccessControl, AccessError> {
    // Relative file names are taken from the etc directory's parent, as elsewhere in Shoal.
    let base = etc
        .canonicalize()
        .ok()
        .and_then(|p| p.parent().map(Path::to_path_buf))
        .unwrap_or_else(|| etc.join(".."));
    let rules = load_rules(etc, &base)?;
    let (groups, group_case) = load_groups(etc, &base)?;
    Ok(AccessControl::from_parts(rules, groups, group_case))
}

fn load_rules(etc: &Path, base: &Path) -> Result<Source<Rules>, AccessError> {
    let file = PropertiesFile::load(&etc.join("access-control.properties"), true)?;
    if file.entries.is_empty() && !file.path.exists() {
        return Ok(Source::fixed(Rules::allow_all()));
    }
    let reader = Reader::new(&file, ACCESS_CONTROL_KEYS)?;
    let name = reader.choice("access-control.name", &["file", "allow-all", "read-only"])?;
    let config_file = reader.string("security.config-file")?;
    let period = optional_duration(&reader, "security.refresh-period")?;
    let pointer = reader.string("security.json-pointer")?;
    if name != "file" {
        for key in [
            "security.config-file",
            "security.refresh-period",
            "security.json-pointer",
        ] {
            if !reader.string(key)?.is_empty() {
                return Err(reader
                    .invalid(key, "only used with access-control.name=file")
                    .into());
            }
        }
        let rules = if name == "read-only" {
            Rules::read_only()
        } else {
            Rules::allow_all()
        };
        return Ok(Source::fixed(rules));
    }
    if config_file.is_empty() {
        return Err(reader
            .invalid(
                "security.config-file",
                "required with access-control.name=file",
            )
            .into());
    }
    if !pointer.is_empty() && !pointer.starts_with('/') {
        return Err(reader
            .invalid("security.json-pointer", "must be empty or start with /")
            .into());
    }
    let path = resolve(base, &config_file);
    let shown = path.display().to_string();
    Source::open(
        path,
        period,
        Box::new(move |text| Rules::parse(text, &shown, &pointer)),
    )
}
