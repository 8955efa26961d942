//! The rules file as serde reads it: Trino's section and field names, nothing compiled yet.
//!
//! Unknown sections and fields are refused (as Trino does); sections Shoal has no checks for are
//! read as opaque JSON and ignored.

use serde::Deserialize;
use serde_json::Value;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRules {
    pub(crate) catalogs: Option<Vec<RawCatalogRule>>,
    pub(crate) schemas: Option<Vec<RawSchemaRule>>,
    pub(crate) tables: Option<Vec<RawTableRule>>,
    pub(crate) queries: Option<Vec<RawQueryRule>>,
    pub(crate) catalog_session_properties: Option<Value>,
    #[serde(rename = "impersonation")]
    _impersonation: Option<Value>,
    #[serde(rename = "principals")]
    _principals: Option<Value>,
    #[serde(rename = "system_information")]
    _system_information: Option<Value>,
    #[serde(rename = "system_session_properties")]
    _system_session_properties: Option<Value>,
    #[serde(rename = "functions")]
    _functions: Option<Value>,
    #[serde(rename = "procedures")]
    _procedures: Option<Value>,
    #[serde(rename = "authorization")]
    _authorization: Option<Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawCatalogRule {
    pub(crate) user: Option<String>,
    pub(crate) role: Option<String>,
    pub(crate) group: Option<String>,
    pub(crate) catalog: Option<String>,
    pub(crate) allow: RawAllow,
}

/// `all`, `read-only`, `none`, or the legacy booleans.
#[derive(Deserialize)]
#[serde(untagged)]
pub(crate) enum RawAllow {
    Flag(bool),
    Mode(String),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSchemaRule {
    pub(crate) user: Option<String>,
    pub(crate) role: Option<String>,
    pub(crate) group: Option<String>,
    pub(crate) catalog: Option<String>,
    pub(crate) schema: Option<String>,
    #[serde(default)]
    pub(crate) owner: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawTableRule {
    pub(crate) user: Option<String>,
    pub(crate) role: Option<String>,
    pub(crate) group: Option<String>,
    pub(crate) catalog: Option<String>,
    pub(crate) schema: Option<String>,
    pub(crate) table: Option<String>,
    pub(crate) privileges: Vec<String>,
    pub(crate) columns: Option<Vec<RawColumn>>,
    pub(crate) filter: Option<String>,
    #[serde(rename = "filter_environment")]
    _filter_environment: Option<Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawColumn {
    pub(crate) name: String,
    pub(crate) allow: Option<bool>,
    pub(crate) mask: Option<String>,
    #[serde(rename = "mask_environment")]
    _mask_environment: Option<Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawQueryRule {
    pub(crate) user: Option<String>,
    pub(crate) role: Option<String>,
    pub(crate) group: Option<String>,
    #[serde(rename = "queryOwner")]
    pub(crate) query_owner: Option<String>,
    pub(crate) allow: Vec<String>,
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use crate::{AccessControl, Identity};

    fn user(name: &str) -> Identity {
        Identity::new(name, Vec::<String>::new())
    }

    #[test]
    fn invalid_rules_are_refused() {
        let error = |json: &str| {
            AccessControl::from_rules_json(json)
                .unwrap_err()
                .to_string()
        };
        assert!(error(r#"{"catalogs": [{"allow": "maybe"}]}"#).contains("catalogs[0]: allow"));
        assert!(error(r#"{"tables": [{"privileges": ["READ"]}]}"#).contains("unknown privilege"));
        assert!(
            error(r#"{"tables": [{"user": "(", "privileges": []}]}"#).contains("tables[0].user")
        );
        assert!(
            error(r#"{"catalogs": [{"catalog": "a)|(b", "allow": "all"}]}"#)
                .contains("invalid regular")
        );
        assert!(error(r#"{"table": []}"#).contains("unknown field `table`"));
        assert!(
            error(r#"{"tables": [{"privileges": [], "filter": "x = 1"}]}"#)
                .contains("not supported")
        );
        assert!(
            error(r#"{"queries": [{"queryOwner": "a", "allow": ["execute"]}]}"#)
                .contains("queryOwner")
        );
        assert!(error(r#"{"catalogs": [{"catalog": "x"}]}"#).contains("missing field `allow`"));
        // Sections Shoal does not check are accepted.
        let trino = r#"{"impersonation": [{"original_user": "a", "new_user": "b"}],
                        "system_information": [{"user": "a", "allow": ["read"]}],
                        "system_session_properties": [], "functions": [], "procedures": []}"#;
        assert!(AccessControl::from_rules_json(trino).is_ok());
    }

    proptest! {
        #[test]
        fn a_literal_user_pattern_matches_only_that_user(name in "[a-z.]{1,8}", other in "[a-z.]{0,9}") {
            let json = format!(
                r#"{{"catalogs": [{{"user": {:?}, "allow": "all"}}]}}"#,
                regex::escape(&name)
            );
            let ac = AccessControl::from_rules_json(&json).unwrap();
            prop_assert!(ac.check_can_access_catalog(&user(&name), "c").is_ok());
            prop_assert_eq!(ac.check_can_access_catalog(&user(&other), "c").is_ok(), other == name);
        }
    }
}
