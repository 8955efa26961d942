//! Changes of an existing table, each one transaction of the state store: a new name (the
//! table keeps its id, so its files stay where they are), and columns added (existing rows
//! read NULL for them), dropped (the files keep them; reads no longer see them) or renamed
//! (the files keep their name for it, which the record remembers).

use datafusion::arrow::datatypes::{Field, Schema};
use shoal_engine::catalog::{file_column, FILE_COLUMN};
use shoal_state_store::{Condition, Op, ReadConsistency, StateStore, TxnRequest};

use super::{
    check_name, decode, encode, schema_key, table_key, CatalogError, CatalogResult, TableRecord,
};

/// What happens to a table's columns.
#[derive(Debug, Clone)]
pub enum ColumnChange {
    Add {
        field: Field,
        if_not_exists: bool,
    },
    Drop {
        name: String,
        if_exists: bool,
    },
    /// The column keeps its values: its files' name for it stays (see `FILE_COLUMN`).
    Rename {
        from: String,
        to: String,
    },
}

/// Rename table `schema.name` to `to_schema.to_name`; false when there is no such table.
pub async fn rename_table(
    store: &StateStore,
    (schema, name): (&str, &str),
    (to_schema, to_name): (&str, &str),
) -> CatalogResult<bool> {
    check_name("table", to_name)?;
    let key = table_key(schema, name);
    let Some(kv) = store.get(&key, ReadConsistency::Linearizable).await? else {
        return Ok(false);
    };
    let mut record: TableRecord = decode(&kv.value)?;
    record.schema = to_schema.to_string();
    record.name = to_name.to_string();
    let to_key = table_key(to_schema, to_name);
    let request = TxnRequest {
        conditions: vec![
            Condition::ModRevision {
                key: key.clone(),
                revision: kv.mod_revision,
            },
            Condition::ModRevision {
                key: to_key.clone(),
                revision: 0,
            },
            Condition::Exists {
                key: schema_key(to_schema),
                exists: true,
            },
        ],
        success: vec![
            Op::Delete { key },
            Op::Put {
                key: to_key.clone(),
                value: encode(&record)?,
            },
        ],
        failure: Vec::new(),
    };
    if store.txn(request).await?.succeeded {
        return Ok(true);
    }
    if store
        .get(&to_key, ReadConsistency::Linearizable)
        .await?
        .is_some()
    {
        return Err(CatalogError::TableExists(to_schema.into(), to_name.into()));
    }
    if store
        .get(&schema_key(to_schema), ReadConsistency::Linearizable)
        .await?
        .is_none()
    {
        return Err(CatalogError::SchemaNotFound(to_schema.into()));
    }
    Err(CatalogError::DroppedWhileWriting(
        schema.into(),
        name.into(),
    ))
}

/// Apply `change` to the columns of table `schema.name`, retried over concurrent commits;
/// false when there is no such table.
pub async fn change_columns(
    store: &StateStore,
    schema: &str,
    name: &str,
    change: &ColumnChange,
) -> CatalogResult<bool> {
    let key = table_key(schema, name);
    loop {
        let Some(kv) = store.get(&key, ReadConsistency::Linearizable).await? else {
            return Ok(false);
        };
        let mut record: TableRecord = decode(&kv.value)?;
        let fields = record.arrow_schema.fields();
        let position = |column: &str| fields.iter().position(|f| f.name() == column);
        let mut columns: Vec<Field> = fields.iter().map(|f| f.as_ref().clone()).collect();
        match change {
            ColumnChange::Add {
                field,
                if_not_exists,
            } => {
                if position(field.name()).is_some() {
                    if *if_not_exists {
                        return Ok(true);
                    }
                    return Err(CatalogError::Invalid(format!(
                        "Column '{}' already exists",
                        field.name()
                    )));
                }
                let mut field = field.clone().with_nullable(true);
                // Files written before may hold a dropped column of this name: the new one
                // gets a name of its own in files written from now on.
                if record.managed && record.version > 0 {
                    let in_files = format!("{}#{}", field.name(), kv.mod_revision);
                    field = field.with_metadata([(FILE_COLUMN.to_string(), in_files)].into());
                }
                columns.push(field);
            }
            ColumnChange::Rename { from, to } => {
                check_name("column", to)?;
                let Some(at) = position(from) else {
                    return Err(CatalogError::Invalid(format!(
                        "Column '{from}' does not exist"
                    )));
                };
                if position(to).is_some() {
                    return Err(CatalogError::Invalid(format!(
                        "Column '{to}' already exists"
                    )));
                }
                let old = &columns[at];
                let in_files = file_column(old).to_string();
                let mut renamed = Field::new(to, old.data_type().clone(), old.is_nullable());
                if in_files != *to {
                    renamed = renamed.with_metadata([(FILE_COLUMN.to_string(), in_files)].into());
                }
                columns[at] = renamed;
            }
            ColumnChange::Drop {
                name: column,
                if_exists,
            } => match position(column) {
                None if *if_exists => return Ok(true),
                None => {
                    return Err(CatalogError::Invalid(format!(
                        "Column '{column}' does not exist"
                    )))
                }
                Some(_) if columns.len() == 1 => {
                    return Err(CatalogError::Invalid(
                        "Cannot drop the only column in a table".into(),
                    ))
                }
                Some(at) => {
                    columns.remove(at);
                }
            },
        }
        record.arrow_schema = Schema::new(columns);
        let request = TxnRequest {
            conditions: vec![Condition::ModRevision {
                key: key.clone(),
                revision: kv.mod_revision,
            }],
            success: vec![Op::Put {
                key: key.clone(),
                value: encode(&record)?,
            }],
            failure: Vec::new(),
        };
        if store.txn(request).await?.succeeded {
            return Ok(true);
        }
        tracing::debug!(table = %key, "the table changed while its columns did; trying again");
    }
}
