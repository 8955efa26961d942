//! A query's result spool on the cluster's shared storage (a local directory or an S3 prefix):
//! once a result is larger than its first page, its driver writes every page there as it
//! produces it (and the columns beside them), so that after the driver finished, any
//! coordinator can serve the rest of the result without it. A result of one page is never
//! written: once the driver has finished, the record alone answers what follows it. Pages
//! are not synced to disk: the spool has to outlive its driver (on NFS a file is on the
//! server once closed; S3 acknowledges stored objects), not a crash of the machine that
//! holds the storage.

use std::path::Path;

use bytes::Bytes;
use serde_json::Value;
use shoal_proto::client::{Column, QueryError};
use shoal_storage::{Location, Storage};
use tokio::sync::OnceCell;

use crate::errors;

const COLUMNS: &str = "columns.json";

/// The object holding page `token`.
fn page_name(token: u64) -> String {
    format!("page-{token}.json")
}

/// The spool of one attempt of one query, opened on first use.
pub struct Spool {
    storage: Storage,
    url: String,
    dir: OnceCell<Location>,
}

impl std::fmt::Debug for Spool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Spool").field(&self.url).finish()
    }
}

fn failed(url: &str, what: &str, e: impl std::fmt::Display) -> QueryError {
    errors::internal(&format!("cannot {what} the result spool {url}: {e}"))
}

impl Spool {
    /// The spool at `url` (a directory or `s3://` prefix one of `storage`'s profiles reaches).
    pub fn new(storage: Storage, url: String) -> Self {
        Spool {
            storage,
            url,
            dir: OnceCell::new(),
        }
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    async fn dir(&self) -> Result<&Location, QueryError> {
        self.dir
            .get_or_try_init(|| async {
                self.storage
                    .location(&self.url, Path::new("/"))
                    .map_err(|e| failed(&self.url, "open", e))
            })
            .await
    }

    pub async fn write_columns(&self, columns: &[Column]) -> Result<(), QueryError> {
        let json = serde_json::to_vec(columns).map_err(|e| errors::internal(&e.to_string()))?;
        self.dir()
            .await?
            .put_unsynced(COLUMNS, Bytes::from(json))
            .await
            .map_err(|e| failed(&self.url, "write", e))
    }

    /// Write page `token`, its rows as JSON.
    pub async fn write_page(&self, token: u64, json: &str) -> Result<(), QueryError> {
        self.dir()
            .await?
            .put_unsynced(&page_name(token), Bytes::from(json.to_string()))
            .await
            .map_err(|e| failed(&self.url, "write", e))
    }

    pub async fn read_page(&self, token: u64) -> Result<Vec<Vec<Value>>, QueryError> {
        read_page(self.dir().await?, token).await
    }

    /// Remove pages `tokens` (the client has them).
    pub async fn remove_pages(&self, tokens: &[u64]) {
        let Ok(dir) = self.dir().await else {
            return;
        };
        for token in tokens {
            if let Err(e) = dir.delete(&page_name(*token)).await {
                tracing::debug!(spool = %self.url, token, error = %e, "cannot remove a read page from the spool");
            }
        }
    }

    /// Remove the spool (the client read it, or the query was abandoned or failed).
    pub async fn remove(&self) {
        let removed = match self.dir().await {
            Ok(dir) => dir
                .delete_all()
                .await
                .map(|_| ())
                .map_err(|e| e.to_string()),
            Err(e) => Err(e.message),
        };
        if let Err(e) = removed {
            tracing::warn!(spool = %self.url, error = %e, "cannot remove a result spool; the sweep removes it");
        }
    }
}

/// Page `token` of the spool at `dir`.
pub async fn read_page(dir: &Location, token: u64) -> Result<Vec<Vec<Value>>, QueryError> {
    let url = dir.url();
    match dir.get(&page_name(token)).await {
        Ok(Some(bytes)) => serde_json::from_slice(&bytes).map_err(|e| failed(&url, "read", e)),
        Ok(None) => Err(failed(&url, "read", format!("page {token} is missing"))),
        Err(e) => Err(failed(&url, "read", e)),
    }
}

/// The columns of the result spooled at `dir`.
pub async fn read_columns(dir: &Location) -> Result<Vec<Column>, QueryError> {
    let url = dir.url();
    match dir.get(COLUMNS).await {
        Ok(Some(bytes)) => serde_json::from_slice(&bytes).map_err(|e| failed(&url, "read", e)),
        Ok(None) => Err(failed(&url, "read", "its columns are missing")),
        Err(e) => Err(failed(&url, "read", e)),
    }
}

/// The name of one attempt's spool below the spool root.
pub fn spool_name(query_id: &str, attempt: u32) -> String {
    format!("{query_id}.{attempt}")
}

/// The query id and attempt a spool's name holds.
pub fn parse_spool_name(name: &str) -> Option<(&str, u32)> {
    let (query, attempt) = name.rsplit_once('.')?;
    Some((query, attempt.parse().ok()?))
}
