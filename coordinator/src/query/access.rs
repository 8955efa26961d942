//! Access control of statements: each statement's user is checked against the cluster's rules
//! (Trino's file-based system access control, `etc/access-control.properties`) before it reads
//! or changes anything, and catalog listings show only what the user may see. A refusal is
//! Trino's `PERMISSION_DENIED` with Trino's message ("Access Denied: Cannot drop table ...").

use std::collections::BTreeSet;

use shoal_access::{AccessDenied, Identity};
use shoal_proto::client::QueryError;
use shoal_state_store::ReadConsistency;

use crate::catalog::provider::CATALOG;
use crate::catalog::views::{self, ViewSecurity};
use crate::catalog::{CatalogSnapshot, Reads};
use crate::protocol::errors;
use crate::query::statements::{catalog_error, StatementContext};
use crate::query::views::MAX_DEPTH;

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
        let on_owners = self.definer_reads();
        for (schema, table) in &reads.tables {
            if on_owners.contains(&(schema.clone(), table.clone())) {
                continue;
            }
            access
                .check_can_select_from_table(&who, CATALOG, schema, table)
                .map_err(denied)?;
        }
        Ok(())
    }

    /// The tables this statement reads only through SECURITY DEFINER views: its user reads
    /// them, but sees them in no listing.
    pub(crate) fn definer_reads(&self) -> BTreeSet<(String, String)> {
        // A poisoned set is an empty one: every table is then checked for the user.
        self.definer_reads
            .lock()
            .map(|reads| reads.clone())
            .unwrap_or_default()
    }

    /// Check the views `sql` reads: its user may read each view it names; what a view reads
    /// is checked for the view's owner (SECURITY DEFINER, Trino's default) or for whoever
    /// reads the view (INVOKER), nested views alike. The tables read on owners' authority
    /// only are noted, so that they are not checked for the user again once the views are
    /// expanded into the statement.
    pub(crate) async fn authorize_views(&self, sql: &str) -> Result<(), QueryError> {
        let user = self.session.user.clone();
        let access = &self.node.access;
        let mut on_owners = BTreeSet::new();
        let mut by_user = BTreeSet::new();
        let mut pending = vec![(sql.to_string(), user.clone(), 0)];
        while let Some((text, reader, depth)) = pending.pop() {
            if depth > MAX_DEPTH {
                return Err(errors::user(format!(
                    "views nest more than {MAX_DEPTH} deep (or a view reads itself)"
                )));
            }
            let who = access.identity(&reader);
            for (schema, name) in self.reads_of_sql(&text).tables {
                let view = views::view(&self.store, &schema, &name, ReadConsistency::Local)
                    .await
                    .map_err(catalog_error)?;
                match view {
                    Some(view) => {
                        access
                            .check_can_select_from_table(&who, CATALOG, &schema, &name)
                            .map_err(denied)?;
                        let runs_as = match view.security {
                            ViewSecurity::Definer => view.owner,
                            ViewSecurity::Invoker => reader.clone(),
                        };
                        pending.push((view.sql, runs_as, depth + 1));
                    }
                    None if reader == user => {
                        by_user.insert((schema, name));
                    }
                    None => {
                        access
                            .check_can_select_from_table(&who, CATALOG, &schema, &name)
                            .map_err(denied)?;
                        on_owners.insert((schema, name));
                    }
                }
            }
        }
        if let Ok(mut noted) = self.definer_reads.lock() {
            noted.extend(on_owners.difference(&by_user).cloned());
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
    pub(crate) fn visible(&self, snapshot: CatalogSnapshot) -> CatalogSnapshot {
        self.visible_and(snapshot, &BTreeSet::new())
    }

    /// What the statement may read of `snapshot`: what its user may see, and the tables it
    /// reads through SECURITY DEFINER views (which no listing shows it).
    pub(crate) fn readable(&self, snapshot: CatalogSnapshot) -> CatalogSnapshot {
        self.visible_and(snapshot, &self.definer_reads())
    }

    fn visible_and(
        &self,
        mut snapshot: CatalogSnapshot,
        also: &BTreeSet<(String, String)>,
    ) -> CatalogSnapshot {
        let who = self.identity();
        let access = &self.node.access;
        snapshot.tables.retain(|(schema, table), _| {
            access.can_see_table(&who, CATALOG, schema, table)
                || also.contains(&(schema.clone(), table.clone()))
        });
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
