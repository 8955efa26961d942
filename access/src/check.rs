//! The checks Shoal asks before running a statement, each refusing with Trino's message.
//!
//! Catalog access comes first (`read-only` for reading, `all` for writing); then schema
//! ownership (CREATE/DROP SCHEMA) or the first matching table rule's privileges (`OWNERSHIP` for
//! CREATE/DROP TABLE, `SELECT`, `INSERT`, `DELETE`, `UPDATE`). Query rules govern running,
//! viewing and killing queries; users may always view and kill their own.

use crate::decide::{CatalogAccess, Privileges, QueryModes, INFORMATION_SCHEMA};
use crate::{AccessControl, AccessDenied, Identity};

fn deny(allowed: bool, message: impl FnOnce() -> String) -> Result<(), AccessDenied> {
    if allowed {
        Ok(())
    } else {
        Err(AccessDenied(message()))
    }
}

impl AccessControl {
    /// Whether `who` may use `catalog` at all (read-only access is enough).
    pub fn check_can_access_catalog(
        &self,
        who: &Identity,
        catalog: &str,
    ) -> Result<(), AccessDenied> {
        let allowed = self
            .rules()
            .catalog_allows(who, catalog, CatalogAccess::ReadOnly);
        deny(allowed, || format!("Cannot access catalog {catalog}"))
    }

    /// Needs `all` access to the catalog and ownership of the new schema.
    pub fn check_can_create_schema(
        &self,
        who: &Identity,
        catalog: &str,
        schema: &str,
    ) -> Result<(), AccessDenied> {
        let allowed = self.rules().is_schema_owner(who, catalog, schema);
        deny(allowed, || {
            format!("Cannot create schema {catalog}.{schema}")
        })
    }

    pub fn check_can_drop_schema(
        &self,
        who: &Identity,
        catalog: &str,
        schema: &str,
    ) -> Result<(), AccessDenied> {
        let allowed = self.rules().is_schema_owner(who, catalog, schema);
        deny(allowed, || format!("Cannot drop schema {catalog}.{schema}"))
    }

    /// Needs `OWNERSHIP` of the table-to-be (the creator will own it).
    pub fn check_can_create_table(
        &self,
        who: &Identity,
        catalog: &str,
        schema: &str,
        table: &str,
    ) -> Result<(), AccessDenied> {
        let allowed =
            self.rules()
                .has_privilege(who, [catalog, schema, table], Privileges::OWNERSHIP);
        deny(allowed, || {
            format!("Cannot create table {catalog}.{schema}.{table}")
        })
    }

    pub fn check_can_drop_table(
        &self,
        who: &Identity,
        catalog: &str,
        schema: &str,
        table: &str,
    ) -> Result<(), AccessDenied> {
        let allowed =
            self.rules()
                .has_privilege(who, [catalog, schema, table], Privileges::OWNERSHIP);
        deny(allowed, || {
            format!("Cannot drop table {catalog}.{schema}.{table}")
        })
    }

    /// Needs `SELECT` (or `GRANT_SELECT`) on the table, whichever columns are read.
    pub fn check_can_select_from_table(
        &self,
        who: &Identity,
        catalog: &str,
        schema: &str,
        table: &str,
    ) -> Result<(), AccessDenied> {
        self.check_can_select_from_columns(who, catalog, schema, table, &[])
    }

    /// As [`Self::check_can_select_from_table`], also refusing columns the rule marks
    /// `"allow": false`.
    pub fn check_can_select_from_columns(
        &self,
        who: &Identity,
        catalog: &str,
        schema: &str,
        table: &str,
        columns: &[&str],
    ) -> Result<(), AccessDenied> {
        let allowed = self
            .rules()
            .can_select(who, [catalog, schema, table], columns);
        deny(allowed, || {
            format!("Cannot select from table {catalog}.{schema}.{table}")
        })
    }

    pub fn check_can_insert_into_table(
        &self,
        who: &Identity,
        catalog: &str,
        schema: &str,
        table: &str,
    ) -> Result<(), AccessDenied> {
        let allowed = self
            .rules()
            .has_privilege(who, [catalog, schema, table], Privileges::INSERT);
        deny(allowed, || {
            format!("Cannot insert into table {catalog}.{schema}.{table}")
        })
    }

    pub fn check_can_delete_from_table(
        &self,
        who: &Identity,
        catalog: &str,
        schema: &str,
        table: &str,
    ) -> Result<(), AccessDenied> {
        let allowed = self
            .rules()
            .has_privilege(who, [catalog, schema, table], Privileges::DELETE);
        deny(allowed, || {
            format!("Cannot delete from table {catalog}.{schema}.{table}")
        })
    }

    pub fn check_can_update_table(
        &self,
        who: &Identity,
        catalog: &str,
        schema: &str,
        table: &str,
    ) -> Result<(), AccessDenied> {
        let allowed = self
            .rules()
            .has_privilege(who, [catalog, schema, table], Privileges::UPDATE);
        deny(allowed, || {
            format!("Cannot update table {catalog}.{schema}.{table}")
        })
    }

    /// Whether `catalog` shows in SHOW CATALOGS: `all` access, or read-only access and some
    /// rule that could give something inside it.
    pub fn can_see_catalog(&self, who: &Identity, catalog: &str) -> bool {
        let rules = self.rules();
        rules.catalog_allows(who, catalog, CatalogAccess::All)
            || (rules.catalog_allows(who, catalog, CatalogAccess::ReadOnly)
                && rules.any_catalog_permission(who, catalog))
    }

    /// Whether the schema shows in SHOW SCHEMAS: the user could own it or has some privilege on
    /// a table in it (`information_schema`: whenever the catalog is accessible).
    pub fn can_see_schema(&self, who: &Identity, catalog: &str, schema: &str) -> bool {
        let rules = self.rules();
        rules.catalog_allows(who, catalog, CatalogAccess::ReadOnly)
            && (schema == INFORMATION_SCHEMA || rules.any_schema_permission(who, catalog, schema))
    }

    /// Whether the table shows in SHOW TABLES: the user owns its schema or the first matching
    /// table rule grants some privilege.
    pub fn can_see_table(&self, who: &Identity, catalog: &str, schema: &str, table: &str) -> bool {
        let rules = self.rules();
        rules.is_schema_owner(who, catalog, schema)
            || rules.table_check(
                who,
                [catalog, schema, table],
                CatalogAccess::ReadOnly,
                |granted, _| !granted.is_empty(),
            )
    }

    /// Whether the rules have a `queries` section (without one, Trino lets every user view and
    /// kill every query; callers with a stricter default of their own keep it then).
    pub fn has_query_rules(&self) -> bool {
        self.rules().queries.is_some()
    }

    /// Whether `who` may run queries at all.
    pub fn check_can_execute_query(&self, who: &Identity) -> Result<(), AccessDenied> {
        let allowed = self.rules().query_allows(who, None, QueryModes::EXECUTE);
        deny(allowed, || "Cannot execute query".to_string())
    }

    /// Users may always view their own queries.
    pub fn check_can_view_query_owned_by(
        &self,
        who: &Identity,
        owner: &str,
    ) -> Result<(), AccessDenied> {
        let allowed = who.user == owner
            || self
                .rules()
                .query_allows(who, Some(owner), QueryModes::VIEW);
        deny(allowed, || format!("Cannot view query owned by {owner}"))
    }

    /// Users may always kill their own queries.
    pub fn check_can_kill_query_owned_by(
        &self,
        who: &Identity,
        owner: &str,
    ) -> Result<(), AccessDenied> {
        let allowed = who.user == owner
            || self
                .rules()
                .query_allows(who, Some(owner), QueryModes::KILL);
        deny(allowed, || format!("Cannot kill query owned by {owner}"))
    }
}
