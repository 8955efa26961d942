//! Decisions on compiled rules: which catalog access, schema ownership and table privileges a
//! statement needs, following Trino's `FileBasedSystemAccessControl`.
//!
//! - A catalog rule gives `all`, `read-only` or `none`; reading needs `read-only`, anything that
//!   writes data or metadata (and schema ownership) needs `all`.
//! - Creating or dropping a schema needs ownership of it; creating or dropping a table needs the
//!   `OWNERSHIP` privilege on that table (not on its schema).
//! - Tables in `information_schema` are exempt from table rules (the catalog rule still applies).
//! - Visibility is looser than access: any rule that could give something inside a catalog or
//!   schema makes it visible, not only the first matching one.

use crate::rules::{matches, Rules};
use crate::Identity;

pub(crate) const INFORMATION_SCHEMA: &str = "information_schema";

/// The access a catalog rule grants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CatalogAccess {
    All,
    ReadOnly,
    None,
}

impl CatalogAccess {
    pub(crate) fn parse(value: &str) -> Option<Self> {
        match value.to_ascii_lowercase().as_str() {
            "all" => Some(CatalogAccess::All),
            "read-only" => Some(CatalogAccess::ReadOnly),
            "none" => Some(CatalogAccess::None),
            _ => None,
        }
    }

    fn implies(self, needed: CatalogAccess) -> bool {
        self == needed || (self == CatalogAccess::All && needed == CatalogAccess::ReadOnly)
    }
}

/// A set of table privileges.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Privileges(u8);

impl Privileges {
    pub const NONE: Privileges = Privileges(0);
    pub const SELECT: Privileges = Privileges(1);
    pub const INSERT: Privileges = Privileges(1 << 1);
    pub const DELETE: Privileges = Privileges(1 << 2);
    pub const UPDATE: Privileges = Privileges(1 << 3);
    pub const OWNERSHIP: Privileges = Privileges(1 << 4);
    pub const GRANT_SELECT: Privileges = Privileges(1 << 5);
    pub const ALL: Privileges = Privileges(0b11_1111);

    /// A privilege name, in any case (Trino reads enums case-insensitively).
    pub(crate) fn parse(name: &str) -> Option<Self> {
        match name.to_ascii_uppercase().as_str() {
            "SELECT" => Some(Self::SELECT),
            "INSERT" => Some(Self::INSERT),
            "DELETE" => Some(Self::DELETE),
            "UPDATE" => Some(Self::UPDATE),
            "OWNERSHIP" => Some(Self::OWNERSHIP),
            "GRANT_SELECT" => Some(Self::GRANT_SELECT),
            _ => None,
        }
    }

    pub(crate) fn with(self, other: Privileges) -> Privileges {
        Privileges(self.0 | other.0)
    }

    pub(crate) fn contains(self, other: Privileges) -> bool {
        self.0 & other.0 == other.0
    }

    pub(crate) fn is_empty(self) -> bool {
        self.0 == 0
    }
}

/// A set of query permissions: `execute`, `view`, `kill`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct QueryModes(u8);

impl QueryModes {
    pub const NONE: QueryModes = QueryModes(0);
    pub const EXECUTE: QueryModes = QueryModes(1);
    pub const VIEW: QueryModes = QueryModes(1 << 1);
    pub const KILL: QueryModes = QueryModes(1 << 2);

    pub(crate) fn parse(name: &str) -> Option<Self> {
        match name.to_ascii_lowercase().as_str() {
            "execute" => Some(Self::EXECUTE),
            "view" => Some(Self::VIEW),
            "kill" => Some(Self::KILL),
            _ => None,
        }
    }

    pub(crate) fn with(self, other: QueryModes) -> QueryModes {
        QueryModes(self.0 | other.0)
    }

    pub(crate) fn contains(self, other: QueryModes) -> bool {
        self.0 & other.0 == other.0
    }
}

impl Rules {
    /// The first matching catalog rule decides; no match: no access.
    pub(crate) fn catalog_allows(
        &self,
        who: &Identity,
        catalog: &str,
        needed: CatalogAccess,
    ) -> bool {
        self.catalogs
            .iter()
            .find(|rule| rule.subject.matches(who) && matches(&rule.catalog, catalog))
            .is_some_and(|rule| rule.access.implies(needed))
    }

    pub(crate) fn is_schema_owner(&self, who: &Identity, catalog: &str, schema: &str) -> bool {
        self.catalog_allows(who, catalog, CatalogAccess::All)
            && self
                .schemas
                .iter()
                .find(|rule| {
                    rule.subject.matches(who)
                        && matches(&rule.catalog, catalog)
                        && matches(&rule.schema, schema)
                })
                .is_some_and(|rule| rule.owner)
    }

    /// The first matching table rule's privileges; `None` when no rule matches.
    pub(crate) fn table_privileges(
        &self,
        who: &Identity,
        catalog: &str,
        schema: &str,
        table: &str,
    ) -> Option<(Privileges, &[String])> {
        self.tables
            .iter()
            .find(|rule| {
                rule.subject.matches(who)
                    && matches(&rule.catalog, catalog)
                    && matches(&rule.schema, schema)
                    && matches(&rule.table, table)
            })
            .map(|rule| (rule.privileges, rule.denied_columns.as_slice()))
    }

    /// The catalog access `needed` and a table privilege passing `test`.
    pub(crate) fn table_check(
        &self,
        who: &Identity,
        [catalog, schema, table]: [&str; 3],
        needed: CatalogAccess,
        test: impl Fn(Privileges, &[String]) -> bool,
    ) -> bool {
        if !self.catalog_allows(who, catalog, needed) {
            return false;
        }
        if schema == INFORMATION_SCHEMA {
            return true;
        }
        self.table_privileges(who, catalog, schema, table)
            .is_some_and(|(privileges, denied)| test(privileges, denied))
    }

    pub(crate) fn has_privilege(
        &self,
        who: &Identity,
        name: [&str; 3],
        privilege: Privileges,
    ) -> bool {
        let needed = if privilege == Privileges::SELECT || privilege == Privileges::GRANT_SELECT {
            CatalogAccess::ReadOnly
        } else {
            CatalogAccess::All
        };
        self.table_check(who, name, needed, |granted, _| granted.contains(privilege))
    }

    pub(crate) fn can_select(&self, who: &Identity, name: [&str; 3], columns: &[&str]) -> bool {
        self.table_check(who, name, CatalogAccess::ReadOnly, |granted, denied| {
            (granted.contains(Privileges::SELECT) || granted.contains(Privileges::GRANT_SELECT))
                && !columns.iter().any(|c| denied.iter().any(|d| d == c))
        })
    }

    /// Whether some schema or table rule could give `who` anything in `catalog`.
    pub(crate) fn any_catalog_permission(&self, who: &Identity, catalog: &str) -> bool {
        let schema_rule = self
            .schemas
            .iter()
            .any(|rule| rule.owner && rule.subject.matches(who) && matches(&rule.catalog, catalog));
        let table_rule = self.tables.iter().any(|rule| {
            !rule.privileges.is_empty()
                && rule.subject.matches(who)
                && matches(&rule.catalog, catalog)
        });
        schema_rule || table_rule || !self.catalog_session_rules
    }

    /// Whether some schema or table rule could give `who` anything in `catalog.schema`.
    pub(crate) fn any_schema_permission(
        &self,
        who: &Identity,
        catalog: &str,
        schema: &str,
    ) -> bool {
        let schema_rule = self.schemas.iter().any(|rule| {
            rule.owner
                && rule.subject.matches(who)
                && matches(&rule.catalog, catalog)
                && matches(&rule.schema, schema)
        });
        schema_rule
            || self.tables.iter().any(|rule| {
                !rule.privileges.is_empty()
                    && rule.subject.matches(who)
                    && matches(&rule.catalog, catalog)
                    && matches(&rule.schema, schema)
            })
    }

    /// `owner` is `None` for the right to run queries at all: rules naming a `queryOwner` do
    /// not apply to it.
    pub(crate) fn query_allows(
        &self,
        who: &Identity,
        owner: Option<&str>,
        mode: QueryModes,
    ) -> bool {
        let Some(rules) = &self.queries else {
            return true;
        };
        rules
            .iter()
            .find(|rule| {
                rule.subject.matches(who)
                    && match owner {
                        None => rule.owner.is_none(),
                        Some(owner) => matches(&rule.owner, owner),
                    }
            })
            .is_some_and(|rule| rule.allow.contains(mode))
    }
}
