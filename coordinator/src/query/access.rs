//! Access control of statements: each statement's user is checked against the cluster's rules
//! (Trino's file-based system access control, `etc/access-control.properties`) before it reads
//! or changes anything, and catalog listings show only what the user may see. A refusal is
//! Trino's `PERMISSION_DENIED` with Trino's message ("Access Denied: Cannot drop table ...").

use shoal_access::{AccessDenied, Identity};
use shoal_proto::client::QueryError;

use crate::catalog::provider::CATALOG;
use crate::catalog::{CatalogSnapshot, Reads};
use crate::protocol::errors;
use crate::query::statements::StatementContext;

fn denied(e: AccessDenied) -> QueryError {
    errors::permission_denied(e.to_string())
}

/// A change a statement makes, for [`StatementContext::authorize`].
#[derive(Debug, Clone, Copy)]
pub enum Change<'a> {
    CreateSchema(&'a str),
    DropSchema(&'a str),
    CreateTable(&'a str, &'a str),
    DropTable(&'a str, &'a str),
    Insert(&'a str, &'a str),
    Delete(&'a str, &'a str),
    Update(&'a str, &'a str),
}

impl StatementContext {
    fn identity(&self) -> Identity {
        self.node.access.identity(&self.session.user)
    }

    /// The user may read every table of `reads` (and the `system` catalog if it is read).
    pub(crate) fn authorize_reads(&self, reads: &Reads) -> Result<(), QueryError> {
        let who = self.identity();
        let access = &self.node.access;
        access
            .check_can_access_catalog(&who, CATALOG)
            .map_err(denied)?;
        if reads.system {
            access
                .check_can_access_catalog(&who, "system")
                .map_err(denied)?;
        }
        for (schema, table) in &reads.tables {
            access
                .check_can_select_from_table(&who, CATALOG, schema, table)
                .map_err(denied)?;
        }
        Ok(())
    }

    /// The user may make `change`.
    pub(crate) fn authorize(&self, change: Change<'_>) -> Result<(), QueryError> {
        let who = self.identity();
        let access = &self.node.access;
        match change {
            Change::CreateSchema(schema) => access.check_can_create_schema(&who, CATALOG, schema),
            Change::DropSchema(schema) => access.check_can_drop_schema(&who, CATALOG, schema),
            Change::CreateTable(schema, table) => {
                access.check_can_create_table(&who, CATALOG, schema, table)
            }
            Change::DropTable(schema, table) => {
                access.check_can_drop_table(&who, CATALOG, schema, table)
            }
            Change::Insert(schema, table) => {
                access.check_can_insert_into_table(&who, CATALOG, schema, table)
            }
            Change::Delete(schema, table) => {
                access.check_can_delete_from_table(&who, CATALOG, schema, table)
            }
            Change::Update(schema, table) => {
                access.check_can_update_table(&who, CATALOG, schema, table)
            }
        }
        .map_err(denied)
    }

    /// Leave out of `snapshot` what the user may not see (for `information_schema`, SHOW).
    pub(crate) fn visible(&self, mut snapshot: CatalogSnapshot) -> CatalogSnapshot {
        let who = self.identity();
        let access = &self.node.access;
        snapshot
            .tables
            .retain(|(schema, table), _| access.can_see_table(&who, CATALOG, schema, table));
        snapshot
            .views
            .retain(|(schema, view), _| access.can_see_table(&who, CATALOG, schema, view));
        let tables = &snapshot.tables;
        snapshot.schemas.retain(|schema, _| {
            access.can_see_schema(&who, CATALOG, schema) || tables.keys().any(|(s, _)| s == schema)
        });
        snapshot
    }
}
