//! Statements that change tables: CREATE TABLE (empty, over existing files, or AS SELECT),
//! INSERT and DROP TABLE. A managed table's files go under `<warehouse>/<table id>/`, each
//! write in a directory of its own attempt, committed once through `catalog::commit`; a write
//! that fails removes its files. External tables may point only inside the operator's
//! `catalog.external-locations`, and their files are never written or deleted.

use std::path::Path;

use datafusion::arrow::datatypes::Field;
use datafusion::arrow::datatypes::Schema;
use datafusion::prelude::DataFrame;
use datafusion::sql::sqlparser::ast::{
    AlterTable, AlterTableOperation, ColumnDef, Ident, ObjectName, RenameTableNameKind,
};
use shoal_proto::client::QueryError;
use shoal_storage::is_within;

use crate::catalog::alter::{self, ColumnChange};
use crate::catalog::commit::{self, Committed, Writer};
use crate::catalog::warehouse::{new_table_id, Warehouse};
use crate::catalog::writer::{by_columns, conform, write_parquet};
use crate::catalog::{self, FileBatch, TableFormat, TableRecord};
use crate::protocol::errors;
use crate::query::access::Change;
use crate::query::statements::{
    catalog_error, infer_schema, name_of, nullable, plan, update, Prepared, StatementContext,
};
use crate::query::table_options::TableOptions;

/// A new managed table's record: a fresh id, its directory inside the warehouse, no data.
pub fn managed_record(
    warehouse: &Warehouse,
    schema: &str,
    table: &str,
    arrow_schema: Schema,
) -> Result<TableRecord, QueryError> {
    let id = new_table_id();
    let dir = warehouse
        .table_dir(&id)
        .map_err(|e| errors::internal(&e.to_string()))?;
    Ok(TableRecord {
        id,
        schema: schema.to_string(),
        name: table.to_string(),
        format: TableFormat::Parquet,
        location: dir.url().trim_end_matches('/').to_string(),
        managed: true,
        csv_header: false,
        arrow_schema,
        files: Vec::new(),
        version: 0,
        rows: 0,
        bytes: 0,
        created_ms: shoal_seed_store::publisher::now_ms(),
    })
}

/// `location` if the operator allows external tables there: under one of `allowed` and
/// neither inside the warehouse nor holding it. A local location must exist and is taken with
/// links resolved, with a trailing `/` for a directory; an `s3://` one is checked by its
/// segments (no `.` or `..`).
pub fn external_location(
    location: &str,
    allowed: &[String],
    warehouse: &Warehouse,
) -> Result<String, QueryError> {
    let denied = || {
        let list = if allowed.is_empty() {
            "it is empty".to_string()
        } else {
            allowed.join(", ")
        };
        errors::permission_denied(format!(
            "Access Denied: Cannot create table over location '{location}': only locations inside catalog.external-locations may be read ({list})"
        ))
    };
    if location.contains('\0') {
        return Err(errors::user(
            "a location must not contain the NUL character",
        ));
    }
    let root = warehouse.root().url();
    let overlaps_warehouse = |name: &str| is_within(name, &root) || is_within(&root, name);
    if let Some(split) = shoal_storage::split_s3_url(location) {
        split.map_err(|reason| errors::user(format!("location {reason}")))?;
        if overlaps_warehouse(location) || !allowed.iter().any(|a| is_within(location, a)) {
            return Err(denied());
        }
        return Ok(location.to_string());
    }
    let text = location.strip_prefix("file://").unwrap_or(location);
    if text.contains("://") {
        return Err(errors::not_supported(format!(
            "location '{location}': only local paths and s3:// locations are supported"
        )));
    }
    let path = Path::new(text);
    if !path.is_absolute() {
        return Err(errors::user(format!(
            "location '{location}' must be an absolute path or an s3:// URL"
        )));
    }
    let local_allowed: Vec<&Path> = allowed
        .iter()
        .filter(|a| !a.starts_with("s3://"))
        .map(Path::new)
        .collect();
    let Ok(resolved) = path.canonicalize() else {
        // Whether a path outside the allowed ones exists is not the user's business.
        if !local_allowed.iter().any(|a| path.starts_with(a)) {
            return Err(denied());
        }
        return Err(errors::user(format!(
            "location '{location}' does not exist"
        )));
    };
    if overlaps_warehouse(&resolved.display().to_string()) {
        return Err(denied());
    }
    let inside = local_allowed
        .iter()
        .filter_map(|a| a.canonicalize().ok())
        .any(|a| resolved.starts_with(&a));
    if !inside {
        return Err(denied());
    }
    let mut text = resolved.display().to_string();
    if resolved.is_dir() && !text.ends_with('/') {
        text.push('/');
    }
    Ok(text)
}

impl StatementContext {
    /// `ALTER TABLE t RENAME TO u`, `ADD COLUMN [IF NOT EXISTS] c type`, `DROP COLUMN [IF
    /// EXISTS] c`, `RENAME COLUMN c TO d`: one change per statement, each one commit of the
    /// catalog.
    pub(crate) async fn alter_table(&self, alter: &AlterTable) -> Result<Prepared, QueryError> {
        let (schema, table) = self.table_name(&alter.name)?;
        // Changing a table takes what dropping it takes.
        self.authorize(Change::DropTable(&schema, &table))?;
        let [operation] = alter.operations.as_slice() else {
            return Err(errors::not_supported(
                "ALTER TABLE makes one change at a time",
            ));
        };
        let (found, update_type) = match operation {
            AlterTableOperation::RenameTable {
                table_name: RenameTableNameKind::To(to) | RenameTableNameKind::As(to),
            } => {
                // A bare new name stays in the table's schema.
                let (to_schema, to_table) = match to.0.as_slice() {
                    [only] => (
                        schema.clone(),
                        only.as_ident().map(name_of).unwrap_or_default(),
                    ),
                    _ => self.table_name(to)?,
                };
                self.authorize(Change::CreateTable(&to_schema, &to_table))?;
                let renamed =
                    alter::rename_table(&self.store, (&schema, &table), (&to_schema, &to_table))
                        .await;
                (renamed, "RENAME TABLE")
            }
            AlterTableOperation::AddColumn {
                if_not_exists,
                column_def,
                ..
            } => {
                let field = self.column_field(column_def).await?;
                let change = ColumnChange::Add {
                    field,
                    if_not_exists: *if_not_exists,
                };
                let added = alter::change_columns(&self.store, &schema, &table, &change).await;
                (added, "ADD COLUMN")
            }
            AlterTableOperation::DropColumn {
                column_names,
                if_exists,
                ..
            } => {
                let [column] = column_names.as_slice() else {
                    return Err(errors::not_supported(
                        "DROP COLUMN drops one column at a time",
                    ));
                };
                let change = ColumnChange::Drop {
                    name: name_of(column),
                    if_exists: *if_exists,
                };
                let dropped = alter::change_columns(&self.store, &schema, &table, &change).await;
                (dropped, "DROP COLUMN")
            }
            AlterTableOperation::RenameColumn {
                old_column_name,
                new_column_name,
            } => {
                let change = ColumnChange::Rename {
                    from: name_of(old_column_name),
                    to: name_of(new_column_name),
                };
                let renamed = alter::change_columns(&self.store, &schema, &table, &change).await;
                (renamed, "RENAME COLUMN")
            }
            other => {
                return Err(errors::not_supported(format!(
                    "ALTER TABLE {other} is not supported"
                )))
            }
        };
        let found = found.map_err(catalog_error)?;
        if !found && !alter.if_exists {
            return Err(catalog_error(catalog::CatalogError::TableNotFound(
                schema, table,
            )));
        }
        Ok(update(update_type, None))
    }

    /// The column `def` declares, as a field of the type DataFusion gives its SQL type.
    async fn column_field(&self, def: &ColumnDef) -> Result<Field, QueryError> {
        let context = self.session_context(&catalog::Reads::default()).await?;
        let sql = format!(
            "SELECT CAST(NULL AS {}) AS \"{}\"",
            def.data_type,
            name_of(&def.name).replace('"', "\"\"")
        );
        let frame = plan(&context, &sql).await?;
        Ok(frame
            .schema()
            .as_arrow()
            .field(0)
            .clone()
            .with_nullable(true))
    }

    fn writer(&self) -> Writer {
        Writer {
            query_id: self.query_id.clone(),
            attempt: self.attempt,
        }
    }

    pub(crate) async fn drop_table(
        &self,
        name: &ObjectName,
        if_exists: bool,
    ) -> Result<(), QueryError> {
        let (schema, table) = self.table_name(name)?;
        self.authorize(Change::DropTable(&schema, &table))?;
        // The files stay until no query that may read them runs (see `catalog::cleanup`).
        match commit::drop_table(&self.store, &schema, &table)
            .await
            .map_err(catalog_error)?
        {
            Some(_) => Ok(()),
            None if if_exists => Ok(()),
            None => Err(catalog_error(catalog::CatalogError::TableNotFound(
                schema, table,
            ))),
        }
    }

    pub(crate) async fn create_table_as(
        &self,
        schema: &str,
        table: &str,
        query: &str,
        if_not_exists: bool,
        options: TableOptions,
    ) -> Result<Prepared, QueryError> {
        if options.location.is_some() || options.format.is_some_and(|f| f != TableFormat::Parquet) {
            return Err(errors::not_supported("CREATE TABLE AS writes Parquet into the warehouse; format and location cannot be chosen"));
        }
        catalog::check_name("schema", schema).map_err(catalog_error)?;
        catalog::check_name("table", table).map_err(catalog_error)?;
        let existing = catalog::table(&self.store, schema, table)
            .await
            .map_err(|e| catalog_error(e.into()))?;
        if existing.is_some() {
            if if_not_exists {
                return Ok(update("CREATE TABLE", Some(0)));
            }
            return Err(catalog_error(catalog::CatalogError::TableExists(
                schema.into(),
                table.into(),
            )));
        }
        let reads = self.reads_of_sql(query);
        self.authorize_reads(&reads)?;
        let snapshot = self.resolve(&reads).await?;
        let context = self.write_context(&snapshot, &reads, query)?;
        let frame = plan(&context, query).await?;
        let arrow_schema = nullable(frame.schema().as_arrow());
        let record = managed_record(&self.node.warehouse, schema, table, arrow_schema)?;
        let rows = self
            .write_and_commit(&record, frame, Some(if_not_exists))
            .await?;
        Ok(update("CREATE TABLE", Some(rows)))
    }

    pub(crate) async fn create_table(
        &self,
        schema: &str,
        table: &str,
        columns: &[ColumnDef],
        if_not_exists: bool,
        options: TableOptions,
    ) -> Result<Prepared, QueryError> {
        catalog::check_name("schema", schema).map_err(catalog_error)?;
        catalog::check_name("table", table).map_err(catalog_error)?;
        let context = self.session_context(&catalog::Reads::default()).await?;
        let declared = if columns.is_empty() {
            None
        } else {
            let select: Vec<String> = columns
                .iter()
                .map(|c| {
                    format!(
                        "CAST(NULL AS {}) AS \"{}\"",
                        c.data_type,
                        name_of(&c.name).replace('"', "\"\"")
                    )
                })
                .collect();
            let frame = plan(&context, &format!("SELECT {}", select.join(", "))).await?;
            Some(nullable(frame.schema().as_arrow()))
        };
        let record = match options.location {
            None => {
                let Some(arrow_schema) = declared else {
                    return Err(errors::user(
                        "CREATE TABLE needs columns, a location, or AS SELECT",
                    ));
                };
                if options.format.is_some_and(|f| f != TableFormat::Parquet) {
                    return Err(errors::not_supported(
                        "tables Shoal writes are stored as Parquet",
                    ));
                }
                managed_record(&self.node.warehouse, schema, table, arrow_schema)?
            }
            Some(location) => {
                let location = external_location(
                    &location,
                    &self.node.config.external_locations,
                    &self.node.warehouse,
                )?;
                let format = options.format.unwrap_or(TableFormat::Parquet);
                let arrow_schema = match declared {
                    Some(schema) => schema,
                    None => infer_schema(&context, &location, format, options.csv_header).await?,
                };
                TableRecord {
                    format,
                    location,
                    managed: false,
                    csv_header: options.csv_header,
                    ..managed_record(&self.node.warehouse, schema, table, arrow_schema)?
                }
            }
        };
        commit::create_table(&self.store, &record, if_not_exists)
            .await
            .map_err(catalog_error)?;
        Ok(update("CREATE TABLE", None))
    }

    pub(crate) async fn insert(
        &self,
        schema: &str,
        table: &str,
        query: &str,
        columns: &[Ident],
    ) -> Result<Prepared, QueryError> {
        let mut reads = self.reads_of_sql(query);
        self.authorize_reads(&reads)?;
        reads.tables.push((schema.to_string(), table.to_string()));
        let snapshot = self.resolve(&reads).await?;
        let Some(record) = snapshot
            .tables
            .get(&(schema.to_string(), table.to_string()))
            .cloned()
        else {
            return Err(catalog_error(catalog::CatalogError::TableNotFound(
                schema.into(),
                table.into(),
            )));
        };
        if !record.managed {
            return Err(errors::not_supported(format!(
                "table shoal.{schema}.{table} reads existing files and cannot be written"
            )));
        }
        let context = self.write_context(&snapshot, &reads, query)?;
        let mut frame = plan(&context, query).await?;
        if !columns.is_empty() {
            frame = by_columns(frame, &record, columns)?;
        }
        let frame = conform(frame, &record)?;
        let rows = self.write_and_commit(&record, frame, None).await?;
        Ok(update("INSERT", Some(rows)))
    }

    /// Write `frame` into this attempt's own directory of the table and commit it: as the next
    /// version of `record`'s table, or (`create`: Some(if_not_exists)) as a new table with its
    /// data. Files of a write that did not commit are removed, unless the outcome stayed
    /// unknown (the cleanup sweep decides then, from the commit marker).
    async fn write_and_commit(
        &self,
        record: &TableRecord,
        frame: DataFrame,
        create: Option<bool>,
    ) -> Result<u64, QueryError> {
        let warehouse = &self.node.warehouse;
        let dir = warehouse
            .write_dir(&record.id, &self.query_id, self.attempt)
            .map_err(|e| errors::internal(&e.to_string()))?;
        // A table created by this write has nothing else in its directory.
        let dir = &dir;
        let remove = |why: &'static str| async move {
            warehouse.discard(dir, why).await;
            if create.is_some() {
                if let Ok(table_dir) = warehouse.table_dir(&record.id) {
                    warehouse.discard(&table_dir, why).await;
                }
            }
        };
        let (files, rows) = match write_parquet(frame, warehouse, dir).await {
            Ok(written) => written,
            Err(error) => {
                remove("write failed").await;
                return Err(error);
            }
        };
        let batch = FileBatch {
            removed: Vec::new(),
            removed_collected: false,
            version: record.version + 1,
            query_id: self.query_id.clone(),
            attempt: self.attempt,
            bytes: files.iter().map(|f| f.bytes).sum(),
            files,
            rows,
        };
        let writer = self.writer();
        let outcome = match create {
            Some(if_not_exists) => {
                commit::create_table_with_data(&self.store, record, &batch, &writer, if_not_exists)
                    .await
            }
            None => {
                commit::append(
                    &self.store,
                    &record.schema,
                    &record.name,
                    &record.id,
                    batch,
                    &writer,
                )
                .await
            }
        };
        match outcome {
            Ok(Committed::Applied { rows }) => Ok(rows),
            Ok(Committed::AlreadyExists) => {
                remove("the table exists").await;
                Ok(0)
            }
            Err(e @ catalog::CatalogError::OutcomeUnknown { .. }) => Err(catalog_error(e)),
            Err(e) => {
                remove("commit refused").await;
                Err(catalog_error(e))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn warehouse() -> (tempfile::TempDir, Warehouse) {
        let dir = tempfile::tempdir().expect("tempdir");
        let warehouse = Warehouse::open(&dir.path().join("warehouse")).expect("open");
        (dir, warehouse)
    }

    proptest! {
        /// Whatever a table and its schema are called, its directory is a fresh id inside the
        /// warehouse, and no part of either name appears in it.
        #[test]
        fn managed_tables_live_inside_the_warehouse(
            schema in "\\PC{1,16}|\\.\\.|/[a-z/.]{0,10}",
            table in "\\PC{1,16}|\\.\\.|\\.\\./\\.\\.|/srv/precious|a/b|\\.",
        ) {
            let (_dir, w) = warehouse();
            let record = managed_record(&w, &schema, &table, Schema::empty()).expect("record");
            let location = std::path::PathBuf::from(&record.location);
            prop_assert!(w.check(&location).is_ok(), "{}", record.location);
            let root = w.root().local_dir().expect("local");
            prop_assert_eq!(location.parent(), Some(root.as_path()));
            let dir = w.write_dir(&record.id, "20261201_103000_00001_c1_abcde", 0).expect("dir");
            prop_assert!(w.check(&dir.local_dir().expect("local")).is_ok());
            prop_assert_eq!(location.file_name().and_then(|n| n.to_str()), Some(record.id.as_str()));
        }
    }

    #[test]
    fn external_locations_need_the_operator() {
        let (dir, w) = warehouse();
        let allowed = dir.path().join("data");
        let inside = allowed.join("t");
        std::fs::create_dir_all(&inside).expect("dir");
        let outside = dir.path().join("secret");
        std::fs::create_dir_all(&outside).expect("dir");
        let list = vec![allowed.display().to_string(), "s3://lake/raw".to_string()];
        let ok = external_location(&inside.display().to_string(), &list, &w).expect("inside");
        assert!(ok.ends_with("/t/"), "{ok}");
        for bad in [
            outside.display().to_string(),
            format!("{}/../secret", allowed.display()),
            w.root().url(),
            dir.path().display().to_string(),
            "/etc/passwd".to_string(),
            "s3://lake/rawer/t".to_string(),
            "s3://lake/other".to_string(),
            "s3://elsewhere/raw/t".to_string(),
        ] {
            let error = external_location(&bad, &list, &w).expect_err(&bad);
            assert_eq!(error.error_name, "PERMISSION_DENIED", "{bad}");
            assert!(
                error.message.contains("catalog.external-locations"),
                "{}",
                error.message
            );
        }
        assert!(external_location(&inside.display().to_string(), &[], &w).is_err());
        assert_eq!(
            external_location("s3://lake/raw/t/", &list, &w).expect("inside"),
            "s3://lake/raw/t/"
        );
        assert!(external_location("s3://lake/raw/../secret", &list, &w).is_err());
        // A link inside the allowed directory that leads out is followed and refused.
        std::os::unix::fs::symlink(&outside, allowed.join("link")).expect("link");
        assert!(external_location(&allowed.join("link").display().to_string(), &list, &w).is_err());
    }
}
