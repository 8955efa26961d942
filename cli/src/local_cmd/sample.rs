//! The sample data of `shoal local`: TPC-H tables generated once into the data directory and
//! registered in schema `tpch` of catalog `shoal`.

use std::path::Path;

use anyhow::Context;
use shoal_sample_data::tpch::{generate, TABLES};

use crate::http::http_client;
use crate::sql::client::{Session, StatementClient};

/// Generate the tables (unless an earlier run did) and create them in the catalog (unless they
/// exist).
pub async fn load(
    data_dir: &Path,
    scale: f64,
    servers: &[String],
    in_bucket: bool,
) -> anyhow::Result<()> {
    // In the bucket, the generator writes straight into the server's directory of it (s3s-fs
    // keeps one file per object), and the tables name the objects by s3:// URL.
    let (dir, location) = if in_bucket {
        (
            super::s3::Server::bucket_dir(data_dir)
                .join("sample")
                .join("tpch"),
            format!("s3://{}/sample/tpch", super::s3::BUCKET),
        )
    } else {
        let dir = data_dir.join("sample").join("tpch");
        let location = dir.display().to_string();
        (dir, location)
    };
    if !dir.join("lineitem").join("part-0.parquet").is_file() {
        let target = dir.clone();
        tokio::task::spawn_blocking(move || generate(&target, scale))
            .await
            .context("the generator stopped")??;
    }
    let mut client = StatementClient::new(
        servers.to_vec(),
        Session {
            user: "shoal".into(),
            catalog: Some("shoal".into()),
            schema: None,
        },
        http_client(None).map_err(anyhow::Error::msg)?,
        None,
    );
    let mut statements = vec!["CREATE SCHEMA IF NOT EXISTS tpch".to_string()];
    for table in TABLES {
        statements.push(format!(
            "CREATE TABLE IF NOT EXISTS tpch.{table} WITH (format = 'PARQUET', location = '{location}/{table}/')"
        ));
    }
    for sql in statements {
        client
            .execute(&sql, false, |_| {}, |_| {}, std::future::pending::<()>())
            .await
            .with_context(|| format!("{sql} failed"))?;
    }
    Ok(())
}
