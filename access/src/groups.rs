//! Trino's file group provider: a text file of `group:user1,user2` lines mapping users onto
//! groups, which the `group` conditions of the access rules then match.
//!
//! Blank lines and lines starting with `#` are skipped; names are trimmed; a user listed under
//! several groups has all of them. `etc/group-provider.properties` names the file
//! (`file.group-file`) and how often it is re-read (`file.refresh-period`, 5s by default).

use std::collections::HashMap;
use std::path::Path;

use shoal_proto::properties::{KeySpec, PropertiesFile, Reader};

use crate::load::{resolve, Source};
use crate::{AccessError, GroupMap};

/// The keys of `etc/group-provider.properties`.
pub const GROUP_PROVIDER_KEYS: &[KeySpec] = &[
    KeySpec {
        key: "group-provider.name",
        default: None,
        doc: "Which group provider: only file is supported.",
    },
    KeySpec {
        key: "group-provider.group-case",
        default: Some("keep"),
        doc: "Group names as given (keep), or converted to upper or lower case.",
    },
    KeySpec {
        key: "file.group-file",
        default: None,
        doc: "The group file, lines of group:user1,user2; relative paths are taken from the etc \
              directory's parent.",
    },
    KeySpec {
        key: "file.refresh-period",
        default: Some("5s"),
        doc: "How often the group file is re-read.",
    },
];

/// `group-provider.group-case`: how group names from the provider are presented to the rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum GroupCase {
    #[default]
    Keep,
    Upper,
    Lower,
}

impl GroupCase {
    pub(crate) const NAMES: &'static [&'static str] = &["keep", "upper", "lower"];

    pub(crate) fn parse(value: &str) -> Option<Self> {
        match value {
            "keep" => Some(GroupCase::Keep),
            "upper" => Some(GroupCase::Upper),
            "lower" => Some(GroupCase::Lower),
            _ => None,
        }
    }

    pub(crate) fn apply(self, group: &str) -> String {
        match self {
            GroupCase::Keep => group.to_string(),
            GroupCase::Upper => group.to_uppercase(),
            GroupCase::Lower => group.to_lowercase(),
        }
    }
}

/// Parse a group file's text; `file` names it in errors.
pub(crate) fn parse_group_file(text: &str, file: &str) -> Result<GroupMap, AccessError> {
    let mut groups: GroupMap = HashMap::new();
    for (index, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let error = |reason: &str| AccessError::GroupFile {
            file: file.to_string(),
            line: index + 1,
            reason: reason.to_string(),
        };
        let (group, users) = line
            .split_once(':')
            .ok_or_else(|| error("expected group:user1,user2"))?;
        let group = group.trim();
        if group.is_empty() {
            return Err(error("empty group name"));
        }
        for user in users.split(',').map(str::trim).filter(|u| !u.is_empty()) {
            let entry = groups.entry(user.to_string()).or_default();
            if !entry.iter().any(|g| g == group) {
                entry.push(group.to_string());
            }
        }
    }
    for list in groups.values_mut() {
        list.sort();
    }
    Ok(groups)
}

/// Read `etc/group-provider.properties` if present: the group file (refreshed every
/// `file.refresh-period`) and the group case.
pub(crate) fn load_groups(
    etc: &Path,
    base: &Path,
) -> Result<(Option<Source<GroupMap>>, GroupCase), AccessError> {
    let file = PropertiesFile::load(&etc.join("group-provider.properties"), true)?;
    if file.entries.is_empty() && !file.path.exists() {
        return Ok((None, GroupCase::Keep));
    }
    let reader = Reader::new(&file, GROUP_PROVIDER_KEYS)?;
    reader.choice("group-provider.name", &["file"])?;
    let case = reader.choice("group-provider.group-case", GroupCase::NAMES)?;
    let group_case = GroupCase::parse(&case).unwrap_or_default();
    let group_file = reader.non_empty("file.group-file")?;
    let period = reader.duration("file.refresh-period")?;
    let path = resolve(base, &group_file);
    let shown = path.display().to_string();
    let source = Source::open(
        path,
        Some(period),
        Box::new(move |text| parse_group_file(text, &shown)),
    )?;
    Ok((Some(source), group_case))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_groups_comments_and_spaces() {
        let text = "# admins\nadmin: alice , bob\n\n  analysts:bob,carol,\nempty:\nadmin:alice\n";
        let groups = parse_group_file(text, "etc/group.txt").unwrap();
        assert_eq!(groups["alice"], vec!["admin"]);
        assert_eq!(groups["bob"], vec!["admin", "analysts"]);
        assert_eq!(groups["carol"], vec!["analysts"]);
        assert!(!groups.contains_key(""));
        assert_eq!(groups.len(), 3);
    }

    #[test]
    fn refuses_lines_without_a_group() {
        let error = parse_group_file("admin:alice\njust-a-name\n", "etc/group.txt").unwrap_err();
        assert_eq!(
            error.to_string(),
            "etc/group.txt:2: expected group:user1,user2"
        );
        let error = parse_group_file(" :alice\n", "g.txt").unwrap_err();
        assert_eq!(error.to_string(), "g.txt:1: empty group name");
    }

    #[test]
    fn group_case_transforms_names() {
        assert_eq!(GroupCase::Upper.apply("Admin"), "ADMIN");
        assert_eq!(GroupCase::Lower.apply("Admin"), "admin");
        assert_eq!(GroupCase::Keep.apply("Admin"), "Admin");
        assert_eq!(GroupCase::parse("upper"), Some(GroupCase::Upper));
        assert_eq!(GroupCase::parse("UPPER"), None);
    }
}
