//! TPC-H for the tests: the sample data and queries, and the same tables in a single-process
//! DataFusion session to compare against.

use std::path::Path;

pub use shoal_sample_data::tpch::{generate, QUERIES, TABLES};

/// Schema `tpch` with a table over each TPC-H table's Parquet files generated under `dir`.
pub fn create_tables(
    client: &mut crate::trino::TrinoClient,
    dir: &Path,
) -> Result<(), crate::trino::TrinoError> {
    create_tables_at(client, &dir.display().to_string())
}

/// Schema `tpch` with a table over each TPC-H table's Parquet files under `base`, a
/// directory or an `s3://bucket/prefix` URL.
pub fn create_tables_at(
    client: &mut crate::trino::TrinoClient,
    base: &str,
) -> Result<(), crate::trino::TrinoError> {
    client.execute("CREATE SCHEMA tpch")?;
    for table in TABLES {
        client.execute(&format!(
            "CREATE TABLE tpch.{table} WITH (format = 'PARQUET', location = '{base}/{table}/')"
        ))?;
    }
    Ok(())
}

/// Register the tables generated under `dir` in a single-process DataFusion `context`.
pub async fn register_tables(
    context: &datafusion::prelude::SessionContext,
    dir: &Path,
) -> anyhow::Result<()> {
    for table in TABLES {
        let path = dir.join(table).join("part-0.parquet");
        let path = path
            .to_str()
            .ok_or_else(|| anyhow::anyhow!("path is not UTF-8"))?;
        context
            .register_parquet(
                table,
                path,
                datafusion::prelude::ParquetReadOptions::default(),
            )
            .await?;
    }
    Ok(())
}
