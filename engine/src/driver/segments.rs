//! Pages for a client of the spooling protocol: one reply hands out every ready page from the
//! requested token on (up to a limit), each as a segment in the spool, which the client
//! downloads from any coordinator, or inline, encoded as the client asked.

use std::path::PathBuf;
use std::sync::atomic::Ordering;

use base64::Engine;
use shoal_proto::client::QueryError;
use shoal_proto::segments::{self, Encoding};

use super::Driver;
use crate::errors;
use crate::pages::{Away, Buffer, InSpool, PageReply, PageSegment};
use crate::spool::SpooledSegment;

/// Most pages one reply hands out.
const MAX_SEGMENTS: usize = 32;

/// Most bytes of JSON one reply carries inline (beyond its first page).
const MAX_INLINE_BYTES: usize = 1 << 20;

/// A page chosen for a reply, and where its rows are.
pub(crate) enum Pick {
    Spooled(u64, SpooledSegment),
    Inline(Place, String),
    Disk(Place, PathBuf),
    /// In a spool written as plain pages.
    PlainSpool(Place),
}

/// A page's token, its first row's position in the result and its row count.
#[derive(Clone, Copy)]
pub(crate) struct Place {
    token: u64,
    offset: u64,
    rows: u64,
}

impl Buffer {
    /// The ready pages from `token` on (the page at `token` is), in order, for one reply.
    pub(crate) fn pick_segments(&self, token: u64) -> Vec<Pick> {
        let mut picks = Vec::new();
        let mut inline_bytes = 0;
        for (at, page) in self.pages.range(token..) {
            if *at != token + picks.len() as u64 || picks.len() >= MAX_SEGMENTS {
                break;
            }
            let first = picks.is_empty();
            let place = Place {
                token: *at,
                offset: page.offset,
                rows: page.rows,
            };
            let pick = match (page.spool, page.json()) {
                (InSpool::Segment(segment), _) => Pick::Spooled(*at, segment),
                (_, Some(json)) if first || inline_bytes + json.len() <= MAX_INLINE_BYTES => {
                    inline_bytes += json.len();
                    Pick::Inline(place, json.to_string())
                }
                (_, None) if first => match page.away() {
                    Away::Disk(path) => Pick::Disk(place, path),
                    Away::Spool => Pick::PlainSpool(place),
                },
                _ => break,
            };
            picks.push(pick);
        }
        picks
    }
}

impl Driver {
    /// `reply` with the segments of `picks`; the spooled ones are the client's now.
    pub(super) async fn segments(&self, mut reply: PageReply, picks: Vec<Pick>) -> PageReply {
        let encoding = self.encoding.unwrap_or(Encoding::Json);
        let mut referenced = Vec::new();
        for pick in picks {
            let segment = match pick {
                Pick::Spooled(token, segment) => {
                    referenced.push(token);
                    Ok(PageSegment::Spooled(segment))
                }
                Pick::Inline(place, json) => inline(encoding, place, json.as_bytes()),
                Pick::Disk(place, path) => match tokio::fs::read(&path).await {
                    Ok(json) => inline(encoding, place, &json),
                    Err(e) => Err(errors::internal(&format!(
                        "cannot read spilled results {}: {e}",
                        path.display()
                    ))),
                },
                Pick::PlainSpool(place) => match &self.spool {
                    Some(spool) => match spool.read_page(place.token).await {
                        Ok(rows) => serde_json::to_vec(&rows)
                            .map_err(|e| errors::internal(&e.to_string()))
                            .and_then(|json| inline(encoding, place, &json)),
                        Err(e) => Err(e),
                    },
                    None => Err(errors::internal("a spooled page without a spool")),
                },
            };
            match segment {
                Ok(segment) => reply.segments.push(segment),
                Err(error) => {
                    self.fail_reply(&mut reply, error);
                    reply.segments.clear();
                    return reply;
                }
            }
        }
        if !referenced.is_empty() {
            self.with_buffer(|b| b.mark_referenced(&referenced));
            self.referenced.store(true, Ordering::SeqCst);
        }
        reply
    }
}

fn inline(encoding: Encoding, place: Place, json: &[u8]) -> Result<PageSegment, QueryError> {
    let encoded = segments::encode(encoding, json).map_err(|e| errors::internal(&e.to_string()))?;
    Ok(PageSegment::Inline {
        offset: place.offset,
        rows: place.rows,
        size: encoded.bytes.len() as u64,
        uncompressed: encoded.uncompressed,
        data: base64::engine::general_purpose::STANDARD.encode(&encoded.bytes),
    })
}
