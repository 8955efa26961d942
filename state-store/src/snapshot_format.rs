//! The snapshot stream: a fixed header (magic, stream version, revision, entry count), one
//! length-prefixed bincode record per key, and a fixed trailer (entry count and a checksum of
//! everything before it). Each record is limited on its own, so a snapshot as a whole has no
//! size limit, and a truncated or damaged stream is refused before any of it is used.

use serde::{Deserialize, Serialize};

use crate::codec;
use crate::error::{StoreError, StoreResult};
use crate::kv::StoredValue;

/// The first bytes of every snapshot stream.
const MAGIC: &[u8; 8] = b"SHOALSNP";
/// The version of the stream layout this build writes and reads.
pub const STREAM_VERSION: u32 = 1;
/// Magic, version, revision, entry count.
const HEADER_LEN: usize = 8 + 4 + 8 + 8;
/// Where the entry count sits in the header, patched once every entry is written.
const COUNT_AT: usize = 8 + 4 + 8;
/// Entry count, checksum.
const TRAILER_LEN: usize = 8 + 8;
/// Every record starts with its length as a little-endian u32.
const LEN_PREFIX: usize = 4;

/// Name of the snapshot in errors about its contents.
const KEYSPACE: &str = "snapshot";

/// What the header of a snapshot says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamHeader {
    pub revision: u64,
    pub entries: u64,
}

/// The body of a snapshot in the on-disk format 1: the whole key space as one bincode value.
/// Still read, from directories being upgraded and from members running an older build.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct LegacyBody {
    pub revision: u64,
    pub entries: Vec<(String, StoredValue)>,
}

/// FNV-1a (64 bits): any change of a single byte changes it.
fn checksum(bytes: &[u8]) -> u64 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    bytes.iter().fold(OFFSET, |hash, byte| {
        (hash ^ u64::from(*byte)).wrapping_mul(PRIME)
    })
}

fn u64_at(bytes: &[u8], at: usize) -> u64 {
    let mut array = [0u8; 8];
    if let Some(slice) = bytes.get(at..at + 8) {
        array.copy_from_slice(slice);
    }
    u64::from_le_bytes(array)
}

/// Writes a snapshot stream into memory, one record per entry, in the order given.
pub struct StreamWriter {
    out: Vec<u8>,
    entries: u64,
    limit: u64,
}

impl StreamWriter {
    /// A stream of the state at `revision` whose records may each have up to `limit` bytes.
    pub fn new(revision: u64, limit: u64) -> Self {
        let mut out = Vec::with_capacity(HEADER_LEN + TRAILER_LEN);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&STREAM_VERSION.to_le_bytes());
        out.extend_from_slice(&revision.to_le_bytes());
        out.extend_from_slice(&0u64.to_le_bytes());
        StreamWriter {
            out,
            entries: 0,
            limit: limit.min(u64::from(u32::MAX)),
        }
    }

    pub fn push(&mut self, key: &str, value: &StoredValue) -> StoreResult<()> {
        let start = self.out.len();
        self.out.extend_from_slice(&[0; LEN_PREFIX]);
        if let Err(e) = codec::encode_limited_into(&mut self.out, &(key, value), self.limit) {
            self.out.truncate(start);
            return Err(StoreError::InvalidArgument(format!(
                "cannot encode the snapshot record of key {key:?} within {} bytes: {e}",
                self.limit
            )));
        }
        // The limit keeps the record below u32::MAX bytes.
        let len = (self.out.len() - start - LEN_PREFIX) as u32;
        self.out[start..start + LEN_PREFIX].copy_from_slice(&len.to_le_bytes());
        self.entries += 1;
        Ok(())
    }

    /// The finished stream: the entry count in the header, then the trailer.
    pub fn finish(mut self) -> Vec<u8> {
        self.out[COUNT_AT..COUNT_AT + 8].copy_from_slice(&self.entries.to_le_bytes());
        let sum = checksum(&self.out);
        self.out.extend_from_slice(&self.entries.to_le_bytes());
        self.out.extend_from_slice(&sum.to_le_bytes());
        self.out
    }
}

enum Body<'a> {
    /// The records, between the header and the trailer.
    Records(&'a [u8]),
    Legacy(Vec<(String, StoredValue)>),
}

/// A snapshot whose framing and checksum were checked; its records are decoded one by one.
pub struct SnapshotStream<'a> {
    header: StreamHeader,
    body: Body<'a>,
    limit: u64,
    id: &'a str,
}

fn corrupt(id: &str, reason: String) -> StoreError {
    StoreError::Corrupt {
        keyspace: KEYSPACE,
        key: id.to_string(),
        reason,
    }
}

impl<'a> SnapshotStream<'a> {
    /// Check the header, trailer and checksum of the snapshot `id`; a body without the magic
    /// is read as a format-1 body, which carries no checksum but must decode exactly.
    pub fn open(data: &'a [u8], limit: u64, id: &'a str) -> StoreResult<Self> {
        if !data.starts_with(MAGIC) {
            return Self::open_legacy(data, limit, id);
        }
        if data.len() < HEADER_LEN + TRAILER_LEN {
            return Err(corrupt(
                id,
                format!("a snapshot of {} bytes is truncated", data.len()),
            ));
        }
        let version = u32::from_le_bytes([data[8], data[9], data[10], data[11]]);
        if version != STREAM_VERSION {
            return Err(corrupt(
                id,
                format!("snapshot stream version {version}; this build reads {STREAM_VERSION}"),
            ));
        }
        let trailer_at = data.len() - TRAILER_LEN;
        let (covered, trailer) = data.split_at(trailer_at);
        let expected = u64_at(trailer, 8);
        let actual = checksum(covered);
        if actual != expected {
            return Err(corrupt(
                id,
                format!(
                    "checksum {actual:016x} instead of {expected:016x}: the snapshot is truncated \
                     or damaged"
                ),
            ));
        }
        let header = StreamHeader {
            revision: u64_at(data, 12),
            entries: u64_at(data, COUNT_AT),
        };
        let trailer_entries = u64_at(trailer, 0);
        if trailer_entries != header.entries {
            return Err(corrupt(
                id,
                format!(
                    "the header counts {} entries, the trailer {trailer_entries}",
                    header.entries
                ),
            ));
        }
        Ok(SnapshotStream {
            header,
            body: Body::Records(&covered[HEADER_LEN..]),
            limit: limit.min(u64::from(u32::MAX)),
            id,
        })
    }

    fn open_legacy(data: &'a [u8], limit: u64, id: &'a str) -> StoreResult<Self> {
        let body: LegacyBody = codec::decode(data).map_err(|e| {
            corrupt(
                id,
                format!("neither a snapshot stream nor a format-1 snapshot: {e}"),
            )
        })?;
        Ok(SnapshotStream {
            header: StreamHeader {
                revision: body.revision,
                entries: body.entries.len() as u64,
            },
            body: Body::Legacy(body.entries),
            limit,
            id,
        })
    }

    pub fn header(&self) -> StreamHeader {
        self.header
    }

    /// Hand every entry to `visit`, in stream order; a record that does not decode, or bytes
    /// left over after the last one, are an error.
    pub fn for_each_entry(
        self,
        mut visit: impl FnMut(String, StoredValue) -> StoreResult<()>,
    ) -> StoreResult<()> {
        let mut rest = match self.body {
            Body::Legacy(entries) => {
                return entries
                    .into_iter()
                    .try_for_each(|(key, value)| visit(key, value))
            }
            Body::Records(records) => records,
        };
        for index in 0..self.header.entries {
            let damaged = |reason: String| corrupt(self.id, format!("record {index}: {reason}"));
            let Some((prefix, after)) = rest.split_first_chunk::<LEN_PREFIX>() else {
                return Err(damaged("missing".into()));
            };
            let len = u64::from(u32::from_le_bytes(*prefix));
            if len > self.limit {
                return Err(damaged(format!(
                    "{len} bytes, more than the limit of {}",
                    self.limit
                )));
            }
            let Some((record, after)) = after.split_at_checked(len as usize) else {
                return Err(damaged(format!("{len} bytes announced, fewer present")));
            };
            let (key, value): (String, StoredValue) = codec::decode_limited(record, self.limit)
                .map_err(|e| damaged(format!("undecodable: {e}")))?;
            visit(key, value)?;
            rest = after;
        }
        if !rest.is_empty() {
            return Err(corrupt(
                self.id,
                format!("{} bytes after the last record", rest.len()),
            ));
        }
        Ok(())
    }
}

/// Re-encode a format-1 snapshot body as a stream.
pub fn legacy_to_stream(data: &[u8], limit: u64, id: &str) -> StoreResult<Vec<u8>> {
    let stream = SnapshotStream::open_legacy(data, limit, id)?;
    let mut writer = StreamWriter::new(stream.header().revision, limit);
    stream.for_each_entry(|key, value| writer.push(&key, &value))?;
    Ok(writer.finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value(n: u64) -> StoredValue {
        StoredValue {
            value: vec![n as u8; 100],
            create_revision: n,
            mod_revision: n + 1,
            version: 2,
        }
    }

    fn stream(entries: u64) -> Vec<u8> {
        let mut writer = StreamWriter::new(77, 1024);
        for n in 0..entries {
            writer.push(&format!("key/{n}"), &value(n)).expect("push");
        }
        writer.finish()
    }

    fn entries_of(data: &[u8]) -> StoreResult<(StreamHeader, Vec<(String, StoredValue)>)> {
        let stream = SnapshotStream::open(data, 1024, "test")?;
        let header = stream.header();
        let mut out = Vec::new();
        stream.for_each_entry(|key, value| {
            out.push((key, value));
            Ok(())
        })?;
        Ok((header, out))
    }

    #[test]
    fn a_stream_reads_back_its_entries_in_order() {
        let (header, entries) = entries_of(&stream(50)).expect("read");
        assert_eq!(
            header,
            StreamHeader {
                revision: 77,
                entries: 50
            }
        );
        assert_eq!(entries.len(), 50);
        assert_eq!(entries[49], ("key/49".to_string(), value(49)));
        let (header, entries) = entries_of(&stream(0)).expect("empty stream");
        assert_eq!((header.entries, entries.len()), (0, 0));
    }

    #[test]
    fn a_record_larger_than_the_limit_is_refused_when_written() {
        let mut writer = StreamWriter::new(1, 64);
        let error = writer.push("big", &value(1)).expect_err("over the limit");
        assert!(matches!(error, StoreError::InvalidArgument(_)), "{error}");
        writer
            .push(
                "small",
                &StoredValue {
                    value: vec![1],
                    ..value(1)
                },
            )
            .expect("small record");
        assert_eq!(entries_of(&writer.finish()).expect("read").1.len(), 1);
    }

    #[test]
    fn every_truncation_and_every_flipped_byte_is_refused() {
        let data = stream(3);
        for len in 0..data.len() {
            let error = entries_of(&data[..len]).expect_err("truncated");
            assert!(
                matches!(error, StoreError::Corrupt { .. }),
                "{len}: {error}"
            );
        }
        for at in 0..data.len() {
            let mut damaged = data.clone();
            damaged[at] ^= 0x20;
            let error = entries_of(&damaged).expect_err("damaged");
            assert!(matches!(error, StoreError::Corrupt { .. }), "{at}: {error}");
        }
        let mut longer = data.clone();
        longer.push(0);
        assert!(entries_of(&longer).is_err(), "a trailing byte is refused");
    }

    #[test]
    fn a_format_1_body_is_read_and_converted() {
        let legacy = LegacyBody {
            revision: 9,
            entries: vec![("a".into(), value(1)), ("b".into(), value(2))],
        };
        let bytes = codec::encode(&legacy).expect("encode");
        let (header, entries) = entries_of(&bytes).expect("legacy body");
        assert_eq!((header.revision, entries), (9, legacy.entries.clone()));
        let converted = legacy_to_stream(&bytes, 1024, "test").expect("convert");
        assert!(converted.starts_with(MAGIC));
        assert_eq!(entries_of(&converted).expect("read").1, legacy.entries);
    }
}
