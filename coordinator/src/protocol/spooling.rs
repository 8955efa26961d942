//! Trino's spooling protocol on the client port: the rows of a query whose client asked for
//! an encoding go out as segments (inline, or spooled with a `uri` and an `ackUri`), and any
//! coordinator serves and removes spooled segments. The URIs hold the query's slug, the
//! secret its `nextUri` holds too, so a download needs no other credentials (Trino's clients
//! send none to segment URIs).

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use base64::Engine;
use shoal_engine::pages::{PageReply, PageSegment};
use shoal_engine::spool::SegmentName;
use shoal_proto::segments::{self, Encoding, ResultData, Segment, SegmentMetadata, SegmentedData};

use crate::node::Coordinator;
use crate::query::spooled;

pub fn router(node: Arc<Coordinator>) -> Router {
    Router::new()
        .route(
            "/v1/spooled/download/{id}/{slug}/{attempt}/{segment}",
            get(download),
        )
        .route(
            "/v1/spooled/ack/{id}/{slug}/{attempt}/{segment}",
            get(acknowledge).delete(acknowledge),
        )
        .with_state(node)
}

/// Where the segments of one answer are downloaded from.
pub struct SegmentUris<'a> {
    pub base: &'a str,
    pub id: &'a str,
    pub slug: &'a str,
    pub attempt: u32,
    /// How long a spooled segment waits for its client.
    pub ttl: Duration,
}

/// The `data` of `reply` for a client reading `encoding`: its segments, and its rows (those a
/// coordinator answered itself) as one more inline segment.
pub fn data(encoding: Encoding, reply: &mut PageReply, at: &SegmentUris) -> Option<ResultData> {
    let mut out = Vec::with_capacity(reply.segments.len() + 1);
    if !reply.rows.is_empty() {
        let rows = std::mem::take(&mut reply.rows);
        match serde_json::to_vec(&rows) {
            Ok(json) => match segments::encode(encoding, &json) {
                Ok(encoded) => out.push(Segment::Inline {
                    metadata: SegmentMetadata {
                        row_offset: reply.row_offset,
                        rows_count: rows.len() as u64,
                        segment_size: encoded.bytes.len() as u64,
                        uncompressed_size: encoded.uncompressed,
                        expires_at: None,
                    },
                    data: base64::engine::general_purpose::STANDARD.encode(&encoded.bytes),
                }),
                // Encoding plain JSON cannot fail; a compressor that does leaves the rows
                // as a `data` array, which every client reads.
                Err(e) => {
                    tracing::warn!(error = %e, "cannot encode rows as a segment");
                    return Some(ResultData::Rows(rows));
                }
            },
            Err(e) => {
                tracing::warn!(error = %e, "cannot encode rows as a segment");
                return Some(ResultData::Rows(rows));
            }
        }
    }
    let expires_at = humantime::format_rfc3339_seconds(SystemTime::now() + at.ttl).to_string();
    for segment in std::mem::take(&mut reply.segments) {
        out.push(match segment {
            PageSegment::Inline {
                offset,
                rows,
                size,
                uncompressed,
                data,
            } => Segment::Inline {
                data,
                metadata: SegmentMetadata {
                    row_offset: offset,
                    rows_count: rows,
                    segment_size: size,
                    uncompressed_size: uncompressed,
                    expires_at: None,
                },
            },
            PageSegment::Spooled(segment) => {
                let path = format!(
                    "{}/{}/{}/{}",
                    at.id,
                    at.slug,
                    at.attempt,
                    segment.name.object()
                );
                Segment::Spooled {
                    uri: format!("{}/v1/spooled/download/{path}", at.base),
                    ack_uri: format!("{}/v1/spooled/ack/{path}", at.base),
                    headers: Default::default(),
                    metadata: SegmentMetadata {
                        row_offset: segment.name.offset,
                        rows_count: segment.name.rows,
                        segment_size: segment.size,
                        uncompressed_size: segment.name.uncompressed,
                        expires_at: Some(expires_at.clone()),
                    },
                }
            }
        });
    }
    (!out.is_empty()).then_some(ResultData::Segments(SegmentedData {
        encoding,
        segments: out,
    }))
}

fn not_found(what: &str) -> Response {
    (StatusCode::NOT_FOUND, what.to_string()).into_response()
}

/// The object of a segment URI's parts, when they name one of a query the slug opens.
async fn locate(
    node: &Coordinator,
    (id, slug, attempt, segment): &(String, String, u32, String),
) -> Result<(shoal_storage::Location, SegmentName), Response> {
    let Some(name) = SegmentName::parse(segment) else {
        return Err(not_found("no such segment"));
    };
    match spooled::segment_dir(node, id, slug, *attempt).await {
        Ok(Some(dir)) => Ok((dir, name)),
        Ok(None) => Err(not_found("no such segment")),
        Err(e) => Err((StatusCode::SERVICE_UNAVAILABLE, e).into_response()),
    }
}

async fn download(
    State(node): State<Arc<Coordinator>>,
    Path(parts): Path<(String, String, u32, String)>,
) -> Response {
    let (dir, name) = match locate(&node, &parts).await {
        Ok(found) => found,
        Err(response) => return response,
    };
    match dir.get(&name.object()).await {
        Ok(Some(bytes)) => {
            ([(header::CONTENT_TYPE, "application/octet-stream")], bytes).into_response()
        }
        Ok(None) => not_found("the segment is gone: it was acknowledged or it expired"),
        Err(e) => {
            tracing::warn!(query = %parts.0, segment = %parts.3, error = %e, "cannot read a spooled segment");
            (StatusCode::SERVICE_UNAVAILABLE, e.to_string()).into_response()
        }
    }
}

async fn acknowledge(
    State(node): State<Arc<Coordinator>>,
    Path(parts): Path<(String, String, u32, String)>,
) -> Response {
    let (dir, name) = match locate(&node, &parts).await {
        Ok(found) => found,
        Err(response) => return response,
    };
    match dir.delete(&name.object()).await {
        Ok(()) => StatusCode::OK.into_response(),
        Err(e) => {
            tracing::debug!(query = %parts.0, segment = %parts.3, error = %e, "cannot remove an acknowledged segment; the sweep removes it");
            (StatusCode::SERVICE_UNAVAILABLE, e.to_string()).into_response()
        }
    }
}
