//! A query's result spool on the cluster's shared storage (a local directory or an S3 prefix):
//! once a result is larger than its first page, its driver writes every page there as it
//! produces it (and the columns beside them), so that after the driver finished, any
//! coordinator can serve the rest of the result without it. A result of one page is never
//! written: once the driver has finished, the record alone answers what follows it. Pages
//! are not synced to disk: the spool has to outlive its driver (on NFS a file is on the
//! server once closed; S3 acknowledges stored objects), not a crash of the machine that
//! holds the storage.
//!
//! A query whose client asked for a spooled encoding (Trino's spooling protocol) has its pages
//! written as segments instead: each encoded as the client will download it, under a name
//! that says where it is in the result ([`SegmentName`]), so a coordinator serves the bytes
//! as they are and can list what is left without the driver.

use std::path::Path;

use bytes::Bytes;
use serde_json::Value;
use shoal_proto::client::{Column, QueryError};
use shoal_proto::segments::{self, Codec, Encoding};
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
    /// Pages are written as segments of this encoding; None writes `page-N.json`.
    encoding: Option<Encoding>,
}

/// Where one segment is in its result, and how it is compressed: the name of its object in
/// the spool (`seg-TOKEN-OFFSET-ROWS-UNCOMPRESSED.EXT`), also the last part of its download
/// and acknowledgement URIs. Parsed, never used as a path: the object name is made again
/// from the parts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SegmentName {
    pub token: u64,
    /// The position of its first row in the result.
    pub offset: u64,
    pub rows: u64,
    /// Bytes of the JSON a compressed segment holds; None when it is not compressed.
    pub uncompressed: Option<u64>,
    pub codec: Codec,
}

impl SegmentName {
    pub fn object(&self) -> String {
        let extension = match self.codec {
            Codec::None => "json",
            Codec::Zstd => "zst",
            Codec::Lz4 => "lz4",
        };
        format!(
            "seg-{}-{}-{}-{}.{extension}",
            self.token,
            self.offset,
            self.rows,
            self.uncompressed.unwrap_or(0)
        )
    }

    pub fn parse(name: &str) -> Option<SegmentName> {
        let (stem, extension) = name.strip_prefix("seg-")?.split_once('.')?;
        let codec = match extension {
            "json" => Codec::None,
            "zst" => Codec::Zstd,
            "lz4" => Codec::Lz4,
            _ => return None,
        };
        let mut parts = stem.split('-').map(|p| p.parse::<u64>().ok());
        let (token, offset, rows, uncompressed) = (
            parts.next()??,
            parts.next()??,
            parts.next()??,
            parts.next()??,
        );
        if parts.next().is_some() || (codec == Codec::None) != (uncompressed == 0) {
            return None;
        }
        let parsed = SegmentName {
            token,
            offset,
            rows,
            uncompressed: (codec != Codec::None).then_some(uncompressed),
            codec,
        };
        // One spelling per segment: "007" or "+7" name no object.
        (parsed.object() == name).then_some(parsed)
    }
}

/// A segment in a spool: its name and the bytes of its object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SpooledSegment {
    pub name: SegmentName,
    pub size: u64,
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
            encoding: None,
        }
    }

    /// Write pages as segments of `encoding` (the client asked for the spooling protocol).
    pub fn with_encoding(mut self, encoding: Option<Encoding>) -> Self {
        self.encoding = encoding;
        self
    }

    pub fn encoding(&self) -> Option<Encoding> {
        self.encoding
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

    /// Write page `token` (`rows` rows from row `offset`, as JSON) as a segment of the
    /// spool's encoding; for a spool without one, as `page-N.json` (and None is returned).
    pub async fn write(
        &self,
        token: u64,
        offset: u64,
        rows: u64,
        json: &str,
    ) -> Result<Option<SpooledSegment>, QueryError> {
        let Some(encoding) = self.encoding else {
            self.write_page(token, json).await?;
            return Ok(None);
        };
        let encoded = segments::encode(encoding, json.as_bytes())
            .map_err(|e| failed(&self.url, "encode a page for", e))?;
        let name = SegmentName {
            token,
            offset,
            rows,
            uncompressed: encoded.uncompressed,
            codec: encoded.codec(encoding),
        };
        let size = encoded.bytes.len() as u64;
        self.dir()
            .await?
            .put_unsynced(&name.object(), Bytes::from(encoded.bytes))
            .await
            .map_err(|e| failed(&self.url, "write", e))?;
        Ok(Some(SpooledSegment { name, size }))
    }

    /// Remove the objects `names` (pages the client moved past without needing them here).
    pub async fn remove_objects(&self, names: &[String]) {
        let Ok(dir) = self.dir().await else {
            return;
        };
        for name in names {
            if let Err(e) = dir.delete(name).await {
                tracing::debug!(spool = %self.url, object = %name, error = %e, "cannot remove a read page from the spool");
            }
        }
    }

    pub async fn read_page(&self, token: u64) -> Result<Vec<Vec<Value>>, QueryError> {
        read_page(self.dir().await?, token).await
    }

    /// The object name of page `token` in a spool without an encoding.
    pub fn page_object(token: u64) -> String {
        page_name(token)
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

/// The segments at `dir` from token `from` on, in order.
pub async fn list_segments(dir: &Location, from: u64) -> Result<Vec<SpooledSegment>, QueryError> {
    let entries = dir
        .list()
        .await
        .map_err(|e| failed(&dir.url(), "list", e))?;
    let mut segments: Vec<SpooledSegment> = entries
        .iter()
        .filter_map(|entry| {
            let name = SegmentName::parse(&entry.name)?;
            (name.token >= from).then_some(SpooledSegment {
                name,
                size: entry.size,
            })
        })
        .collect();
    segments.sort_by_key(|s| s.name.token);
    Ok(segments)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segment_names_say_where_a_segment_is_and_parse_back() {
        let name = SegmentName {
            token: 3,
            offset: 12288,
            rows: 4096,
            uncompressed: Some(700_001),
            codec: Codec::Zstd,
        };
        assert_eq!(name.object(), "seg-3-12288-4096-700001.zst");
        assert_eq!(SegmentName::parse(&name.object()), Some(name));
        let plain = SegmentName {
            uncompressed: None,
            codec: Codec::None,
            ..name
        };
        assert_eq!(SegmentName::parse(&plain.object()), Some(plain));
        for bad in [
            "seg-3-12288-4096-0.zst",
            "seg-3-12288-4096-5.json",
            "seg-03-12288-4096-5.zst",
            "seg-3-1-2-3-4.zst",
            "seg-3-1-2.zst",
            "seg-../x-1-2-3.lz4",
            "page-3.json",
            "seg-3-1-2-3.lz4/../../etc",
        ] {
            assert_eq!(SegmentName::parse(bad), None, "{bad}");
        }
    }
}
