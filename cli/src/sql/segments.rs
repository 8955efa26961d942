//! Results as segments of the spooling protocol for `shoal sql`: inline segments are decoded
//! at once, spooled ones are downloaded several at a time (from the server in use, else from
//! the next ones) and decoded where they arrive (straight into CSV lines when that is the
//! output); their rows are handed on in result order and each spooled segment is
//! acknowledged once decoded.

use std::collections::VecDeque;

use base64::Engine;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use serde_json::Value;
use shoal_proto::segments::{self, Encoding, ResultData, Segment, SegmentMetadata};
use tokio::task::JoinHandle;

use super::client::SqlError;
use crate::http::HttpClient;

/// Spooled segments downloaded at once.
pub const IN_FLIGHT: usize = 6;

/// The rows of a segment, decoded.
pub enum Decoded {
    Rows(Vec<Vec<Value>>),
    /// Already written as CSV lines.
    Csv(Vec<u8>),
}

/// The segments of one statement not yet handed on, in result order.
pub struct Segments {
    http: HttpClient,
    /// Segments are written as CSV where they are decoded.
    csv: bool,
    pending: VecDeque<JoinHandle<Result<Decoded, SqlError>>>,
}

impl Segments {
    pub fn new(http: HttpClient, csv: bool) -> Self {
        Segments {
            http,
            csv,
            pending: VecDeque::new(),
        }
    }

    /// Start on the rows of `data`; `servers` are the coordinators to download from, the one
    /// in use first.
    pub fn add(&mut self, data: ResultData, servers: Vec<String>) {
        let data = match data {
            ResultData::Rows(rows) => {
                self.pending
                    .push_back(tokio::spawn(async move { Ok(Decoded::Rows(rows)) }));
                return;
            }
            ResultData::Segments(data) => data,
        };
        let encoding = data.encoding;
        let csv = self.csv;
        for segment in data.segments {
            let http = self.http.clone();
            let servers = servers.clone();
            self.pending.push_back(tokio::spawn(async move {
                match segment {
                    Segment::Inline { data, metadata } => {
                        let payload = base64::engine::general_purpose::STANDARD
                            .decode(data)
                            .map_err(|e| SqlError::Protocol(format!("bad inline segment: {e}")))?;
                        decode(encoding, &metadata, &payload, csv)
                    }
                    Segment::Spooled {
                        uri,
                        ack_uri,
                        headers,
                        metadata,
                    } => {
                        let headers: Vec<(String, String)> = headers
                            .into_iter()
                            .filter_map(|(name, values)| Some((name, values.into_iter().next()?)))
                            .collect();
                        let (payload, server) = download(&http, &servers, &uri, &headers).await?;
                        let rows = decode(encoding, &metadata, &payload, csv)?;
                        acknowledge(&http, &server, &ack_uri).await;
                        Ok(rows)
                    }
                }
            }));
        }
    }

    /// Hand on the rows of the segments done, in order; while more than [`IN_FLIGHT`] are
    /// under way (or, with `all`, until none is), wait for the first.
    pub async fn hand_on(
        &mut self,
        all: bool,
        mut on_rows: impl FnMut(&Decoded),
    ) -> Result<(), SqlError> {
        while let Some(first) = self.pending.front() {
            if !(all || first.is_finished() || self.pending.len() > IN_FLIGHT) {
                break;
            }
            let Some(first) = self.pending.pop_front() else {
                break;
            };
            let rows = first
                .await
                .map_err(|e| SqlError::Protocol(format!("a segment download failed: {e}")))??;
            on_rows(&rows);
        }
        Ok(())
    }

    /// Stop every download (the statement failed or was cancelled).
    pub fn abort(&mut self) {
        for task in self.pending.drain(..) {
            task.abort();
        }
    }
}

fn decode(
    encoding: Encoding,
    metadata: &SegmentMetadata,
    payload: &[u8],
    csv: bool,
) -> Result<Decoded, SqlError> {
    let protocol = |e: &dyn std::fmt::Display| SqlError::Protocol(e.to_string());
    if !csv {
        let rows = segments::decode_rows(encoding, metadata, payload).map_err(|e| protocol(&e))?;
        return Ok(Decoded::Rows(rows));
    }
    let json = segments::decode_json(encoding, metadata, payload).map_err(|e| protocol(&e))?;
    let mut text = Vec::with_capacity(json.len());
    let rows = super::csv::rows_to_csv(&json, &mut text).map_err(|e| protocol(&e))?;
    if rows != metadata.rows_count {
        return Err(SqlError::Protocol(format!(
            "a segment of {} rows holds {rows}",
            metadata.rows_count
        )));
    }
    Ok(Decoded::Csv(text))
}

/// `uri`'s path and query on `server`.
fn on(server: &str, uri: &str) -> Option<String> {
    let path = uri.splitn(4, '/').nth(3)?;
    Some(format!("{server}/{path}"))
}

/// The payload at `uri`, from the first of `servers` that answers, and that server.
async fn download(
    http: &HttpClient,
    servers: &[String],
    uri: &str,
    headers: &[(String, String)],
) -> Result<(Bytes, String), SqlError> {
    let mut last = String::new();
    for server in servers {
        let url = on(server, uri)
            .ok_or_else(|| SqlError::Protocol(format!("not an absolute URI: {uri}")))?;
        let mut request = http::Request::get(&url);
        for (name, value) in headers {
            request = request.header(name, value);
        }
        let request = request
            .body(Full::new(Bytes::new()))
            .map_err(|e| SqlError::Protocol(format!("bad request to {url}: {e}")))?;
        let response = match http.request(request).await {
            Ok(response) => response,
            Err(e) => {
                last = crate::http::describe(&e);
                continue;
            }
        };
        let status = response.status();
        let body = match response.into_body().collect().await {
            Ok(body) => body.to_bytes(),
            Err(e) => {
                last = e.to_string();
                continue;
            }
        };
        if status.is_server_error() {
            last = format!("answered {status}");
            continue;
        }
        if !status.is_success() {
            let text = String::from_utf8_lossy(&body);
            return Err(SqlError::Protocol(format!(
                "{url} answered {status}: {text}"
            )));
        }
        return Ok((body, server.clone()));
    }
    Err(SqlError::Connection(format!(
        "no coordinator serves segment {uri} (last: {last})"
    )))
}

/// Tell `server` the segment at `ack_uri` was read; the coordinators' sweep removes it if
/// this does not arrive.
async fn acknowledge(http: &HttpClient, server: &str, ack_uri: &str) {
    let Some(url) = on(server, ack_uri) else {
        return;
    };
    if let Ok(request) = http::Request::get(&url).body(Full::new(Bytes::new())) {
        let _ = http.request(request).await;
    }
}
