//! Trino's file-based system access control and file group provider, as a library.
//!
//! [`AccessControl::load`] reads `etc/access-control.properties` (with `access-control.name=file`
//! and `security.config-file` naming a JSON rules file) and `etc/group-provider.properties` (with
//! `group-provider.name=file` and `file.group-file`), the way Trino does. Each rule section
//! (`catalogs`, `schemas`, `tables`, `queries`) is read top to bottom and the first rule whose
//! regexes all match the whole names decides; a section left out allows everything it governs.
//! Checks return [`AccessDenied`] carrying Trino's message, e.g. `Access Denied: Cannot drop table
//! shoal.s.t`.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use shoal_proto::properties::ConfigError;

mod check;
mod decide;
mod groups;
mod load;
mod raw;
mod rules;

pub use groups::{GroupCase, GROUP_PROVIDER_KEYS};
pub use load::ACCESS_CONTROL_KEYS;

use load::Source;
use rules::Rules;

/// Who runs a statement: the user name and the groups the group provider gives it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Identity {
    pub user: String,
    pub groups: Vec<String>,
}

impl Identity {
    pub fn new<G: Into<String>>(
        user: impl Into<String>,
        groups: impl IntoIterator<Item = G>,
    ) -> Self {
        Identity {
            user: user.into(),
            groups: groups.into_iter().map(Into::into).collect(),
        }
    }
}

/// A refusal, displayed in Trino's words, e.g. "Access Denied: Cannot drop table shoal.s.t".
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("Access Denied: {0}")]
pub struct AccessDenied(pub String);

/// A problem with the access control configuration; each names the file it is about.
#[derive(Debug, thiserror::Error)]
pub enum AccessError {
    /// A `.properties` file: unknown key, bad value, missing key (file, line and key included).
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("{file}: cannot read: {source}")]
    Io {
        file: String,
        #[source]
        source: std::io::Error,
    },
    /// The rules file is not valid JSON or does not have the shape of Trino's rules.
    #[error("{file}: invalid rules: {reason}")]
    Json { file: String, reason: String },
    /// A `user`, `group`, `catalog`, ... value is not a valid regular expression.
    #[error("{file}: {place}: invalid regular expression {pattern:?}: {reason}")]
    Regex {
        file: String,
        place: String,
        pattern: String,
        reason: String,
    },
    /// A rule that parses but cannot be used (an unknown privilege, an unsupported feature).
    #[error("{file}: {place}: {reason}")]
    Rule {
        file: String,
        place: String,
        reason: String,
    },
    /// A line of the group file that is not `group:user1,user2`.
    #[error("{file}:{line}: {reason}")]
    GroupFile {
        file: String,
        line: usize,
        reason: String,
    },
}

/// Users mapped to their groups, as read from a group file.
pub(crate) type GroupMap = HashMap<String, Vec<String>>;

/// The access control of a cluster: rules (possibly refreshed from their file) and groups.
///
/// Cloning is cheap (the state is shared), and it may be used from any thread.
#[derive(Clone)]
pub struct AccessControl {
    inner: Arc<Inner>,
}

struct Inner {
    rules: Arc<Source<Rules>>,
    groups: Option<Arc<Source<GroupMap>>>,
    group_case: GroupCase,
}

impl std::fmt::Debug for AccessControl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccessControl")
            .field("rules", &self.inner.rules.origin())
            .field(
                "groups",
                &self.inner.groups.as_ref().map(|groups| groups.origin()),
            )
            .finish()
    }
}

impl AccessControl {
    /// No rules: everything allowed (the default without a file).
    pub fn allow_all() -> Self {
        Self::with_rules(Rules::allow_all())
    }

    /// Every catalog read-only, everything else allowed (Trino's `read-only` access control).
    pub fn read_only() -> Self {
        Self::with_rules(Rules::read_only())
    }

    /// Build from JSON rules text directly (for tests and embedding).
    pub fn from_rules_json(json: &str) -> Result<Self, AccessError> {
        Ok(Self::with_rules(Rules::parse(json, "<rules>", "")?))
    }

    /// Read the access control of the etc directory `etc`: see the crate documentation and
    /// [`ACCESS_CONTROL_KEYS`], [`GROUP_PROVIDER_KEYS`]. Without `access-control.properties`
    /// everything is allowed; without `group-provider.properties` users have no groups.
    pub fn load(etc: &Path) -> Result<Self, AccessError> {
        load::load(etc)
    }

    /// Use `groups` (user to groups) as a fixed group provider instead of the current one.
    pub fn with_groups(self, groups: HashMap<String, Vec<String>>) -> Self {
        AccessControl {
            inner: Arc::new(Inner {
                rules: Arc::clone(&self.inner.rules),
                groups: Some(Arc::new(Source::fixed(groups))),
                group_case: GroupCase::Keep,
            }),
        }
    }

    fn with_rules(rules: Rules) -> Self {
        AccessControl {
            inner: Arc::new(Inner {
                rules: Arc::new(Source::fixed(rules)),
                groups: None,
                group_case: GroupCase::Keep,
            }),
        }
    }

    pub(crate) fn from_parts(
        rules: Source<Rules>,
        groups: Option<Source<GroupMap>>,
        group_case: GroupCase,
    ) -> Self {
        AccessControl {
            inner: Arc::new(Inner {
                rules: Arc::new(rules),
                groups: groups.map(Arc::new),
                group_case,
            }),
        }
    }

    /// The identity of `user`, groups from the group provider (sorted, without duplicates).
    pub fn identity(&self, user: &str) -> Identity {
        let mut groups: Vec<String> = match &self.inner.groups {
            Some(source) => source
                .current()
                .get(user)
                .map(|groups| {
                    groups
                        .iter()
                        .map(|group| self.inner.group_case.apply(group))
                        .collect()
                })
                .unwrap_or_default(),
            None => Vec::new(),
        };
        groups.sort();
        groups.dedup();
        Identity {
            user: user.to_string(),
            groups,
        }
    }

    /// Why the last refresh of the rules or group file failed, while the previous contents stay
    /// in force; `None` once a refresh succeeds again (or when nothing is refreshed).
    pub fn last_reload_error(&self) -> Option<String> {
        self.inner.rules.last_error().or_else(|| {
            self.inner
                .groups
                .as_ref()
                .and_then(|groups| groups.last_error())
        })
    }

    pub(crate) fn rules(&self) -> Arc<Rules> {
        self.inner.rules.current()
    }
}

#[cfg(test)]
mod load_tests;
#[cfg(test)]
mod tests;
