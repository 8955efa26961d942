//! Catalog `system`, schema `runtime`: the cluster's state as tables, built from the state
//! store when a query reads them: `queries` (the replicated query history), `nodes`, and
//! `coordinators` (every coordinator's synchronisation status); schema `metadata` as tools
//! read it, and `jdbc` (see `jdbc`).

use std::sync::Arc;

use datafusion::arrow::array::{
    ArrayRef, BooleanArray, Int64Array, StringArray, TimestampMillisecondArray,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::catalog::{
    CatalogProvider, MemoryCatalogProvider, MemorySchemaProvider, SchemaProvider,
};
use datafusion::datasource::MemTable;
use datafusion::error::{DataFusionError, Result};
use datafusion::prelude::SessionContext;
use shoal_state_store::ReadConsistency;

use crate::node::Coordinator;
use crate::query::record;
use crate::registry;
use crate::sync_status;

fn text(values: Vec<Option<String>>) -> ArrayRef {
    Arc::new(StringArray::from(values))
}

fn long(values: Vec<Option<i64>>) -> ArrayRef {
    Arc::new(Int64Array::from(values))
}

fn table(fields: Vec<(&str, DataType)>, columns: Vec<ArrayRef>) -> Result<Arc<MemTable>> {
    let schema = Arc::new(Schema::new(
        fields
            .into_iter()
            .map(|(name, kind)| Field::new(name, kind, true))
            .collect::<Vec<_>>(),
    ));
    let batch = RecordBatch::try_new(schema.clone(), columns)?;
    Ok(Arc::new(MemTable::try_new(schema, vec![vec![batch]])?))
}

fn failed(e: impl std::fmt::Display) -> DataFusionError {
    DataFusionError::External(format!("cannot read the cluster state: {e}").into())
}

/// The query history as `viewer` may see it: their own, everyone's for an admin, and what
/// the access-control `queries` rules allow.
async fn queries(node: &Coordinator, viewer: &str) -> Result<Arc<MemTable>> {
    let mut records = record::list(&node.store).await.map_err(failed)?;
    records.retain(|r| node.may_view_query(viewer, &r.user));
    let millis = |v: Vec<Option<i64>>| -> ArrayRef {
        Arc::new(TimestampMillisecondArray::from(v).with_timezone("UTC"))
    };
    table(
        vec![
            ("query_id", DataType::Utf8),
            ("state", DataType::Utf8),
            ("user", DataType::Utf8),
            ("source", DataType::Utf8),
            ("query", DataType::Utf8),
            ("coordinator", DataType::Int64),
            ("driver", DataType::Utf8),
            ("attempt", DataType::Int64),
            (
                "created",
                DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())),
            ),
            (
                "end",
                DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())),
            ),
            ("rows", DataType::Int64),
            ("bytes", DataType::Int64),
            ("error_code", DataType::Utf8),
            ("error_message", DataType::Utf8),
        ],
        vec![
            text(records.iter().map(|r| Some(r.id.clone())).collect()),
            text(
                records
                    .iter()
                    .map(|r| Some(r.state.as_str().to_string()))
                    .collect(),
            ),
            text(records.iter().map(|r| Some(r.user.clone())).collect()),
            text(records.iter().map(|r| r.source.clone()).collect()),
            text(records.iter().map(|r| Some(r.sql.clone())).collect()),
            long(records.iter().map(|r| Some(r.coordinator as i64)).collect()),
            text(
                records
                    .iter()
                    .map(|r| Some(r.driver_url.clone()).filter(|u| !u.is_empty()))
                    .collect(),
            ),
            long(records.iter().map(|r| Some(r.attempt as i64)).collect()),
            millis(records.iter().map(|r| Some(r.created_ms as i64)).collect()),
            millis(
                records
                    .iter()
                    .map(|r| r.ended_ms.map(|v| v as i64))
                    .collect(),
            ),
            long(records.iter().map(|r| Some(r.rows as i64)).collect()),
            long(records.iter().map(|r| Some(r.bytes as i64)).collect()),
            text(
                records
                    .iter()
                    .map(|r| r.error.as_ref().map(|e| e.error_name.clone()))
                    .collect(),
            ),
            text(
                records
                    .iter()
                    .map(|r| r.error.as_ref().map(|e| e.message.clone()))
                    .collect(),
            ),
        ],
    )
}

async fn nodes(node: &Coordinator) -> Result<Arc<MemTable>> {
    let coordinators = registry::list(&node.store, ReadConsistency::Local)
        .await
        .map_err(failed)?;
    let version = env!("CARGO_PKG_VERSION").to_string();
    let mut rows: Vec<(String, String, String, bool, String)> = coordinators
        .iter()
        .map(|r| {
            (
                r.id.to_string(),
                r.client_url.clone(),
                version.clone(),
                true,
                r.mode.as_str().to_string(),
            )
        })
        .collect();
    rows.extend(node.workers.live().into_iter().map(|w| {
        let beat = w.heartbeat;
        (
            beat.id,
            beat.internal_url,
            beat.version,
            false,
            "active".to_string(),
        )
    }));
    table(
        vec![
            ("node_id", DataType::Utf8),
            ("http_uri", DataType::Utf8),
            ("node_version", DataType::Utf8),
            ("coordinator", DataType::Boolean),
            ("state", DataType::Utf8),
        ],
        vec![
            text(rows.iter().map(|r| Some(r.0.clone())).collect()),
            text(rows.iter().map(|r| Some(r.1.clone())).collect()),
            text(rows.iter().map(|r| Some(r.2.clone())).collect()),
            Arc::new(BooleanArray::from(
                rows.iter().map(|r| Some(r.3)).collect::<Vec<_>>(),
            )),
            text(rows.iter().map(|r| Some(r.4.clone())).collect()),
        ],
    )
}

async fn coordinators(node: &Coordinator) -> Result<Arc<MemTable>> {
    let rows = sync_status::collect(node).await.map_err(failed)?;
    table(
        vec![
            ("node_id", DataType::Int64),
            ("client_url", DataType::Utf8),
            ("raft_role", DataType::Utf8),
            ("term", DataType::Int64),
            ("matched_index", DataType::Int64),
            ("lag", DataType::Int64),
            ("summary_state", DataType::Utf8),
            ("detail_state", DataType::Utf8),
            ("last_contact", DataType::Utf8),
            ("voter", DataType::Boolean),
            ("mode", DataType::Utf8),
        ],
        vec![
            long(rows.iter().map(|r| Some(r.node_id as i64)).collect()),
            text(rows.iter().map(|r| r.client_url.clone()).collect()),
            text(rows.iter().map(|r| Some(r.raft_role.clone())).collect()),
            long(rows.iter().map(|r| r.term.map(|v| v as i64)).collect()),
            long(
                rows.iter()
                    .map(|r| r.matched_index.map(|v| v as i64))
                    .collect(),
            ),
            long(rows.iter().map(|r| r.lag.map(|v| v as i64)).collect()),
            text(rows.iter().map(|r| Some(r.summary_state.clone())).collect()),
            text(rows.iter().map(|r| Some(r.detail_state.clone())).collect()),
            text(rows.iter().map(|r| r.last_contact.clone()).collect()),
            Arc::new(BooleanArray::from(
                rows.iter().map(|r| Some(r.voter)).collect::<Vec<_>>(),
            )),
            text(rows.iter().map(|r| r.mode.clone()).collect()),
        ],
    )
}

/// The catalogs a client can name.
pub const CATALOGS: [&str; 2] = ["shoal", "system"];

/// The schemas of catalog `system` and their tables.
pub const SCHEMAS: [(&str, &[&str]); 4] = [
    (
        shoal_engine::information_schema::SCHEMA,
        &["columns", "schemata", "tables", "views"],
    ),
    (
        "jdbc",
        &[
            "catalogs",
            "columns",
            "procedures",
            "pseudo_columns",
            "schemas",
            "super_tables",
            "table_types",
            "tables",
            "types",
            "udts",
        ],
    ),
    (
        "metadata",
        &[
            "catalogs",
            "materialized_views",
            "schema_properties",
            "table_comments",
            "table_properties",
        ],
    ),
    ("runtime", &["coordinators", "nodes", "queries"]),
];

/// `system.metadata`, as tools read it: the catalogs, and no table comments or materialized
/// views (Shoal has neither yet; the tables exist so that SQLAlchemy and dbt can ask).
fn metadata() -> Result<Arc<MemorySchemaProvider>> {
    let schema = MemorySchemaProvider::new();
    let catalogs = CATALOGS
        .iter()
        .map(|n| Some(n.to_string()))
        .collect::<Vec<_>>();
    schema.register_table(
        "catalogs".into(),
        text_table(
            &["catalog_name", "connector_id", "connector_name"],
            vec![catalogs.clone(), catalogs.clone(), catalogs],
        )?,
    )?;
    schema.register_table(
        "table_comments".into(),
        text_table(
            &["catalog_name", "schema_name", "table_name", "comment"],
            vec![Vec::new(); 4],
        )?,
    )?;
    // Shoal's catalogs take no schema or table properties yet.
    for properties in ["schema_properties", "table_properties"] {
        schema.register_table(
            properties.into(),
            text_table(
                &[
                    "catalog_name",
                    "property_name",
                    "default_value",
                    "type",
                    "description",
                ],
                vec![Vec::new(); 5],
            )?,
        )?;
    }
    schema.register_table(
        "materialized_views".into(),
        text_table(
            &[
                "catalog_name",
                "schema_name",
                "name",
                "storage_catalog",
                "storage_schema",
                "storage_table",
                "freshness",
                "owner",
                "comment",
                "definition",
            ],
            vec![Vec::new(); 10],
        )?,
    )?;
    Ok(Arc::new(schema))
}

/// A table of text columns `names` holding `columns`.
fn text_table(names: &[&str], columns: Vec<Vec<Option<String>>>) -> Result<Arc<MemTable>> {
    let schema = Arc::new(Schema::new(
        names
            .iter()
            .map(|n| Field::new(*n, DataType::Utf8, true))
            .collect::<Vec<_>>(),
    ));
    let arrays: Vec<ArrayRef> = columns
        .into_iter()
        .map(|c| Arc::new(StringArray::from(c)) as ArrayRef)
        .collect();
    let batch = RecordBatch::try_new(schema.clone(), arrays)?;
    Ok(Arc::new(MemTable::try_new(schema, vec![vec![batch]])?))
}

/// Register catalog `system` in `context` (for a query that reads it, as its parsed table
/// references say); `user` sees only their own queries unless an admin, and the tables of
/// `snapshot` (what they may see) in `system.jdbc`.
pub async fn register(
    context: &SessionContext,
    node: &Coordinator,
    user: &str,
    snapshot: &crate::catalog::CatalogSnapshot,
) -> Result<()> {
    let runtime = MemorySchemaProvider::new();
    runtime.register_table("queries".into(), queries(node, user).await?)?;
    runtime.register_table("nodes".into(), nodes(node).await?)?;
    runtime.register_table("coordinators".into(), coordinators(node).await?)?;
    let schemas: [(&str, Arc<dyn SchemaProvider>); 3] = [
        ("jdbc", crate::catalog::jdbc::schema(snapshot, &CATALOGS)?),
        ("metadata", metadata()?),
        ("runtime", Arc::new(runtime)),
    ];
    // Its information_schema lists these schemas and their tables, as Trino's does.
    let mut listing = Vec::with_capacity(schemas.len());
    for (name, schema) in &schemas {
        let mut tables = Vec::new();
        let mut names = schema.table_names();
        names.sort_unstable();
        for table in names {
            if let Some(provider) = schema.table(&table).await? {
                tables.push((table, provider.schema()));
            }
        }
        listing.push((*name, tables));
    }
    let catalog = MemoryCatalogProvider::new();
    catalog.register_schema(
        shoal_engine::information_schema::SCHEMA,
        shoal_engine::information_schema::of_tables("system", &listing)?,
    )?;
    for (name, schema) in schemas {
        catalog.register_schema(name, schema)?;
    }
    context.register_catalog("system", Arc::new(catalog));
    Ok(())
}
