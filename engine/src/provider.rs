//! A query's view of the catalog for DataFusion: catalog `shoal` with every schema and table of
//! one catalog snapshot, each table read from exactly the files of its resolved version.

use std::collections::BTreeSet;
use std::sync::Arc;

use datafusion::catalog::{
    CatalogProvider, MemoryCatalogProvider, MemorySchemaProvider, SchemaProvider,
};
use datafusion::common::Column;
use datafusion::datasource::empty::EmptyTable;
use datafusion::datasource::file_format::csv::CsvFormat;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::file_format::FileFormat;
use datafusion::datasource::listing::{
    ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl,
};
use datafusion::datasource::{provider_as_source, TableProvider, ViewTable};
use datafusion::error::Result;
use datafusion::execution::object_store::{DefaultObjectStoreRegistry, ObjectStoreRegistry};
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::execution::SessionStateBuilder;
use datafusion::logical_expr::{Expr, LogicalPlanBuilder};
use datafusion::prelude::{SessionConfig, SessionContext};

use crate::catalog::{file_column, CatalogSnapshot, TableFormat, TableRecord};
use crate::checked::{CheckedTable, Required};
use crate::distributed::{distribute, Distribution};
use crate::options::QueryOptions;

pub const CATALOG: &str = "shoal";

/// The object stores a process reads and writes tables through: local files, and the S3
/// buckets of its file-system profiles.
pub type ObjectStores = Arc<dyn ObjectStoreRegistry>;

/// The object stores of `storage`'s profiles, for every session of this process.
pub fn object_stores(storage: &shoal_storage::Storage) -> ObjectStores {
    let registry = DefaultObjectStoreRegistry::new();
    for (url, store) in storage.object_stores() {
        registry.register_store(&url, store);
    }
    Arc::new(registry)
}

pub fn file_format(format: TableFormat, csv_header: bool) -> Arc<dyn FileFormat> {
    match format {
        TableFormat::Parquet => Arc::new(ParquetFormat::default()),
        TableFormat::Csv => Arc::new(CsvFormat::default().with_has_header(csv_header)),
    }
}

/// Listing options for a table's format.
pub fn listing_options(format: TableFormat, csv_header: bool) -> ListingOptions {
    ListingOptions::new(file_format(format, csv_header)).with_file_extension(format.extension())
}

/// The provider DataFusion reads `table` through: its files (managed) or its location.
pub fn table_provider(table: &TableRecord) -> Result<Arc<dyn TableProvider>> {
    let (urls, required) = if table.managed {
        let urls: Vec<ListingTableUrl> = table
            .files
            .iter()
            .map(|f| ListingTableUrl::parse(&f.path))
            .collect::<Result<_>>()?;
        (urls.clone(), Required::Files(urls))
    } else {
        let url = ListingTableUrl::parse(&table.location)?;
        (vec![url.clone()], Required::Location(url))
    };
    if urls.is_empty() {
        return Ok(Arc::new(EmptyTable::new(table.schema_ref())));
    }
    let config = ListingTableConfig::new_with_multi_paths(urls)
        .with_listing_options(listing_options(table.format, table.csv_header))
        .with_schema(table.file_schema_ref());
    let name = format!("{CATALOG}.{}.{}", table.schema, table.name);
    let files: Arc<dyn TableProvider> = Arc::new(CheckedTable::new(
        name.clone(),
        required,
        Arc::new(ListingTable::try_new(config)?),
    ));
    if !table.renames_columns() {
        return Ok(files);
    }
    // The files' column names become the table's.
    let columns: Vec<Expr> = table
        .arrow_schema
        .fields()
        .iter()
        .map(|f| Expr::Column(Column::new_unqualified(file_column(f))).alias(f.name()))
        .collect();
    let plan = LogicalPlanBuilder::scan(name, provider_as_source(files), None)?
        .project(columns)?
        .build()?;
    Ok(Arc::new(ViewTable::new(plan, None)))
}

/// A DataFusion session whose catalog `shoal` is `snapshot`, defaulting to `catalog.schema`,
/// run in this process. Its `information_schema` leaves out the tables of `unlisted`, which
/// the session reads but its user may not see (those read through SECURITY DEFINER views).
pub fn session(
    snapshot: &CatalogSnapshot,
    catalog: &str,
    schema: &str,
    options: &QueryOptions,
    stores: &ObjectStores,
    unlisted: &BTreeSet<(String, String)>,
) -> Result<SessionContext> {
    session_with(snapshot, catalog, schema, None, options, stores, unlisted)
}

/// Like [`session`], with stages spread over `workers` when some are given.
pub fn session_on(
    snapshot: &CatalogSnapshot,
    catalog: &str,
    schema: &str,
    distribution: Option<Distribution>,
    options: &QueryOptions,
    stores: &ObjectStores,
) -> Result<SessionContext> {
    session_with(
        snapshot,
        catalog,
        schema,
        distribution,
        options,
        stores,
        &BTreeSet::new(),
    )
}

fn session_with(
    snapshot: &CatalogSnapshot,
    catalog: &str,
    schema: &str,
    distribution: Option<Distribution>,
    options: &QueryOptions,
    stores: &ObjectStores,
    unlisted: &BTreeSet<(String, String)>,
) -> Result<SessionContext> {
    let mut config = SessionConfig::new()
        .with_default_catalog_and_schema(catalog, schema)
        .with_create_default_catalog_and_schema(false)
        // Trino's information_schema, not DataFusion's (whose columns and type names differ).
        .with_information_schema(false)
        .set_bool(
            "datafusion.execution.listing_table_ignore_subdirectory",
            false,
        )
        // Trino sorts NULLs last whatever the direction (DataFusion, like Postgres, puts
        // them first when descending).
        .set_str("datafusion.sql_parser.default_null_ordering", "nulls_last");
    if let Some(partitions) = options.target_partitions {
        config = config.with_target_partitions(partitions);
    }
    if let Some(zone) = &options.time_zone {
        config.options_mut().execution.time_zone = Some(zone.clone());
    }
    let mut runtime = RuntimeEnvBuilder::new().with_object_store_registry(stores.clone());
    if let Some(bytes) = options.max_memory_bytes {
        runtime = runtime.with_memory_limit(usize::try_from(bytes).unwrap_or(usize::MAX), 1.0);
    }
    let builder = SessionStateBuilder::new()
        .with_default_features()
        .with_config(config)
        .with_runtime_env(Arc::new(runtime.build()?));
    let builder = match distribution {
        Some(distribution) if !distribution.workers.is_empty() => {
            distribute(builder, distribution, options.max_memory_bytes)?
        }
        _ => builder,
    };
    let context = SessionContext::new_with_state(builder.build());
    crate::functions::register(&context, options, catalog, schema);
    let catalog = MemoryCatalogProvider::new();
    for name in snapshot.schemas.keys() {
        let provider = MemorySchemaProvider::new();
        for ((table_schema, table_name), table) in &snapshot.tables {
            if table_schema == name {
                provider.register_table(table_name.clone(), table_provider(table)?)?;
            }
        }
        catalog.register_schema(name, Arc::new(provider))?;
    }
    catalog.register_schema(
        crate::information_schema::SCHEMA,
        crate::information_schema::provider(snapshot, unlisted)?,
    )?;
    context.register_catalog(CATALOG, Arc::new(catalog));
    Ok(context)
}
