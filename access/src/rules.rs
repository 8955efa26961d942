//! The JSON rules file in Trino's shape, compiled into rules whose regexes match whole names.
//!
//! Sections Shoal has no checks for (`impersonation`, `system_information`, session property,
//! function and procedure rules, ...) are accepted and ignored so that a Trino file loads; an
//! unknown section or field is an error, as in Trino. Row filters and column masks are refused
//! rather than ignored: ignoring them would show data the file means to hide.

use regex::Regex;
use serde::Deserialize;
use serde_json::Value;

use crate::decide::{CatalogAccess, Privileges, QueryModes};
use crate::raw::{RawAllow, RawCatalogRule, RawQueryRule, RawRules, RawSchemaRule, RawTableRule};
use crate::{AccessError, Identity};

/// Who a rule is for. A `role` condition never matches: Shoal has no roles.
#[derive(Debug, Default)]
pub(crate) struct Subject {
    user: Option<Regex>,
    role: Option<Regex>,
    group: Option<Regex>,
}

impl Subject {
    pub(crate) fn matches(&self, who: &Identity) -> bool {
        self.role.is_none()
            && matches(&self.user, &who.user)
            && self
                .group
                .as_ref()
                .is_none_or(|group| who.groups.iter().any(|g| group.is_match(g)))
    }
}

/// An absent pattern matches everything.
pub(crate) fn matches(pattern: &Option<Regex>, name: &str) -> bool {
    pattern.as_ref().is_none_or(|regex| regex.is_match(name))
}

#[derive(Debug)]
pub(crate) struct CatalogRule {
    pub subject: Subject,
    pub catalog: Option<Regex>,
    pub access: CatalogAccess,
}

#[derive(Debug, Default)]
pub(crate) struct SchemaRule {
    pub subject: Subject,
    pub catalog: Option<Regex>,
    pub schema: Option<Regex>,
    pub owner: bool,
}

#[derive(Debug, Default)]
pub(crate) struct TableRule {
    pub subject: Subject,
    pub catalog: Option<Regex>,
    pub schema: Option<Regex>,
    pub table: Option<Regex>,
    pub privileges: Privileges,
    /// Columns with `"allow": false`.
    pub denied_columns: Vec<String>,
}

#[derive(Debug)]
pub(crate) struct QueryRule {
    pub subject: Subject,
    pub owner: Option<Regex>,
    pub allow: QueryModes,
}

/// A whole rules file, with Trino's defaults for the sections it leaves out.
#[derive(Debug)]
pub(crate) struct Rules {
    pub catalogs: Vec<CatalogRule>,
    pub schemas: Vec<SchemaRule>,
    pub tables: Vec<TableRule>,
    /// `None`: no `queries` section, every query may be run, viewed and killed.
    pub queries: Option<Vec<QueryRule>>,
    /// Whether a `catalog_session_properties` section is given (without one, setting session
    /// properties of any catalog is allowed, which makes every readable catalog visible).
    pub catalog_session_rules: bool,
}

impl Rules {
    pub(crate) fn allow_all() -> Self {
        Rules {
            catalogs: vec![CatalogRule::everyone(CatalogAccess::All, None)],
            schemas: vec![SchemaRule {
                owner: true,
                ..SchemaRule::default()
            }],
            tables: vec![TableRule {
                privileges: Privileges::ALL,
                ..TableRule::default()
            }],
            queries: None,
            catalog_session_rules: false,
        }
    }

    pub(crate) fn read_only() -> Self {
        Rules {
            catalogs: vec![CatalogRule::everyone(CatalogAccess::ReadOnly, None)],
            ..Rules::allow_all()
        }
    }

    /// Parse rules text; `file` names it in errors, `pointer` (RFC 6901, empty for the whole
    /// document) selects the object holding the rules.
    pub(crate) fn parse(text: &str, file: &str, pointer: &str) -> Result<Self, AccessError> {
        let json_error = |reason: String| AccessError::Json {
            file: file.to_string(),
            reason,
        };
        let raw: RawRules = if pointer.is_empty() {
            serde_json::from_str(text).map_err(|e| json_error(e.to_string()))?
        } else {
            let document: Value =
                serde_json::from_str(text).map_err(|e| json_error(e.to_string()))?;
            let selected = document
                .pointer(pointer)
                .ok_or_else(|| json_error(format!("JSON pointer {pointer:?} selects nothing")))?;
            RawRules::deserialize(selected).map_err(|e| json_error(e.to_string()))?
        };
        Compiler { file }.rules(raw)
    }
}

impl CatalogRule {
    fn everyone(access: CatalogAccess, catalog: Option<Regex>) -> Self {
        CatalogRule {
            subject: Subject::default(),
            catalog,
            access,
        }
    }
}

struct Compiler<'a> {
    file: &'a str,
}

impl Compiler<'_> {
    fn rules(&self, raw: RawRules) -> Result<Rules, AccessError> {
        let defaults = Rules::allow_all();
        let catalogs = match raw.catalogs {
            None => defaults.catalogs,
            Some(list) => {
                let mut rules = list
                    .into_iter()
                    .enumerate()
                    .map(|(i, rule)| self.catalog(i, rule))
                    .collect::<Result<Vec<_>, _>>()?;
                // As in Trino: the `system` catalog stays reachable unless a rule says otherwise.
                rules.push(CatalogRule::everyone(
                    CatalogAccess::All,
                    anchored("system").ok(),
                ));
                rules
            }
        };
        let schemas = match raw.schemas {
            None => defaults.schemas,
            Some(list) => list
                .into_iter()
                .enumerate()
                .map(|(i, rule)| self.schema(i, rule))
                .collect::<Result<_, _>>()?,
        };
        let tables = match raw.tables {
            None => defaults.tables,
            Some(list) => list
                .into_iter()
                .enumerate()
                .map(|(i, rule)| self.table(i, rule))
                .collect::<Result<_, _>>()?,
        };
        let queries = match raw.queries {
            None => None,
            Some(list) => Some(
                list.into_iter()
                    .enumerate()
                    .map(|(i, rule)| self.query(i, rule))
                    .collect::<Result<_, _>>()?,
            ),
        };
        Ok(Rules {
            catalogs,
            schemas,
            tables,
            queries,
            catalog_session_rules: raw.catalog_session_properties.is_some(),
        })
    }

    fn catalog(&self, index: usize, raw: RawCatalogRule) -> Result<CatalogRule, AccessError> {
        let place = format!("catalogs[{index}]");
        let access = match raw.allow {
            RawAllow::Flag(true) => CatalogAccess::All,
            RawAllow::Flag(false) => CatalogAccess::None,
            RawAllow::Mode(mode) => CatalogAccess::parse(&mode)
                .ok_or_else(|| self.invalid(&place, format!("allow: unknown value {mode:?}, expected \"all\", \"read-only\" or \"none\"")))?,
        };
        Ok(CatalogRule {
            subject: self.subject(&place, raw.user, raw.role, raw.group)?,
            catalog: self.pattern(&place, "catalog", raw.catalog)?,
            access,
        })
    }

    fn schema(&self, index: usize, raw: RawSchemaRule) -> Result<SchemaRule, AccessError> {
        let place = format!("schemas[{index}]");
        Ok(SchemaRule {
            subject: self.subject(&place, raw.user, raw.role, raw.group)?,
            catalog: self.pattern(&place, "catalog", raw.catalog)?,
            schema: self.pattern(&place, "schema", raw.schema)?,
            owner: raw.owner,
        })
    }

    fn table(&self, index: usize, raw: RawTableRule) -> Result<TableRule, AccessError> {
        let place = format!("tables[{index}]");
        if raw.filter.is_some() {
            return Err(self.invalid(&place, "filter: row filters are not supported by Shoal"));
        }
        let mut privileges = Privileges::NONE;
        for name in &raw.privileges {
            privileges = privileges.with(Privileges::parse(name).ok_or_else(|| {
                self.invalid(
                    &place,
                    format!(
                        "privileges: unknown privilege {name:?}, expected SELECT, INSERT, \
                         DELETE, UPDATE, OWNERSHIP or GRANT_SELECT"
                    ),
                )
            })?);
        }
        let mut denied_columns = Vec::new();
        for column in raw.columns.unwrap_or_default() {
            if column.mask.is_some() {
                return Err(self.invalid(
                    &place,
                    format!(
                        "columns: {}: column masks are not supported by Shoal",
                        column.name
                    ),
                ));
            }
            if column.allow == Some(false) {
                denied_columns.push(column.name);
            }
        }
        Ok(TableRule {
            subject: self.subject(&place, raw.user, raw.role, raw.group)?,
            catalog: self.pattern(&place, "catalog", raw.catalog)?,
            schema: self.pattern(&place, "schema", raw.schema)?,
            table: self.pattern(&place, "table", raw.table)?,
            privileges,
            denied_columns,
        })
    }

    fn query(&self, index: usize, raw: RawQueryRule) -> Result<QueryRule, AccessError> {
        let place = format!("queries[{index}]");
        let mut allow = QueryModes::NONE;
        for name in &raw.allow {
            allow = allow.with(QueryModes::parse(name).ok_or_else(|| {
                self.invalid(
                    &place,
                    format!("allow: unknown value {name:?}, expected execute, view or kill"),
                )
            })?);
        }
        if raw.query_owner.is_some() && allow.contains(QueryModes::EXECUTE) {
            return Err(self.invalid(&place, "a rule with queryOwner cannot allow execute"));
        }
        Ok(QueryRule {
            subject: self.subject(&place, raw.user, raw.role, raw.group)?,
            owner: self.pattern(&place, "queryOwner", raw.query_owner)?,
            allow,
        })
    }

    fn subject(
        &self,
        place: &str,
        user: Option<String>,
        role: Option<String>,
        group: Option<String>,
    ) -> Result<Subject, AccessError> {
        Ok(Subject {
            user: self.pattern(place, "user", user)?,
            role: self.pattern(place, "role", role)?,
            group: self.pattern(place, "group", group)?,
        })
    }

    fn pattern(
        &self,
        place: &str,
        field: &str,
        pattern: Option<String>,
    ) -> Result<Option<Regex>, AccessError> {
        let Some(pattern) = pattern else {
            return Ok(None);
        };
        anchored(&pattern)
            .map(Some)
            .map_err(|reason| AccessError::Regex {
                file: self.file.to_string(),
                place: format!("{place}.{field}"),
                pattern,
                reason,
            })
    }

    fn invalid(&self, place: &str, reason: impl Into<String>) -> AccessError {
        AccessError::Rule {
            file: self.file.to_string(),
            place: place.to_string(),
            reason: reason.into(),
        }
    }
}

/// `pattern` compiled to match only whole names, as Java's `Matcher.matches()` does.
pub(crate) fn anchored(pattern: &str) -> Result<Regex, String> {
    // Compiled alone first so that a pattern such as `a)|(b` is refused, not silently rewrapped.
    Regex::new(pattern).map_err(|e| e.to_string())?;
    Regex::new(&format!("^(?:{pattern})$")).map_err(|e| e.to_string())
}
