//! Trino's spooling protocol: the result encodings a client may ask for
//! (`X-Trino-Query-Data-Encoding`), the segments a `QueryResults` carries instead of a `data`
//! array, and the compression of a segment's payload (a JSON array of rows).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The request and response header naming the encoding.
pub const ENCODING_HEADER: &str = "x-trino-query-data-encoding";

/// Payloads smaller than this go uncompressed (their metadata has no `uncompressedSize`).
pub const COMPRESS_FROM: usize = 8 * 1024;

/// A result encoding of the spooling protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Encoding {
    #[serde(rename = "json")]
    Json,
    #[serde(rename = "json+zstd")]
    JsonZstd,
    #[serde(rename = "json+lz4")]
    JsonLz4,
}

impl Encoding {
    pub fn as_str(self) -> &'static str {
        match self {
            Encoding::Json => "json",
            Encoding::JsonZstd => "json+zstd",
            Encoding::JsonLz4 => "json+lz4",
        }
    }

    pub fn parse(name: &str) -> Option<Encoding> {
        match name.trim().to_ascii_lowercase().as_str() {
            "json" => Some(Encoding::Json),
            "json+zstd" => Some(Encoding::JsonZstd),
            "json+lz4" => Some(Encoding::JsonLz4),
            _ => None,
        }
    }

    /// The first encoding of a client's comma-separated list of preferences that Shoal
    /// speaks; None when it speaks none of them (the client then gets a `data` array).
    pub fn choose(preferences: &str) -> Option<Encoding> {
        preferences.split(',').find_map(Encoding::parse)
    }

    /// How this encoding compresses a payload.
    pub fn codec(self) -> Codec {
        match self {
            Encoding::Json => Codec::None,
            Encoding::JsonZstd => Codec::Zstd,
            Encoding::JsonLz4 => Codec::Lz4,
        }
    }
}

/// How one payload is compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Codec {
    None,
    /// A standard zstd frame (it names its decompressed size).
    Zstd,
    /// A raw LZ4 block, decompressed knowing the uncompressed size.
    Lz4,
}

/// A payload ready to send or store: its bytes and, when they are compressed, the size of
/// the JSON they hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Encoded {
    pub bytes: Vec<u8>,
    pub uncompressed: Option<u64>,
}

impl Encoded {
    pub fn codec(&self, encoding: Encoding) -> Codec {
        match self.uncompressed {
            Some(_) => encoding.codec(),
            None => Codec::None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SegmentError {
    #[error("cannot compress a segment: {0}")]
    Compress(String),
    #[error("cannot decompress a segment: {0}")]
    Decompress(String),
    #[error("a segment holds {got} bytes, its metadata says {expected}")]
    Size { expected: u64, got: u64 },
    #[error("a segment is not a JSON array of rows: {0}")]
    Json(String),
}

/// Encode `json` (a JSON array of rows) as `encoding` says; small payloads stay as they are.
pub fn encode(encoding: Encoding, json: &[u8]) -> Result<Encoded, SegmentError> {
    if json.len() < COMPRESS_FROM || encoding == Encoding::Json {
        return Ok(Encoded {
            bytes: json.to_vec(),
            uncompressed: None,
        });
    }
    let bytes = match encoding.codec() {
        Codec::None => json.to_vec(),
        // Level 1: results are compressed while they stream, speed matters more than ratio.
        Codec::Zstd => {
            zstd::bulk::compress(json, 1).map_err(|e| SegmentError::Compress(e.to_string()))?
        }
        Codec::Lz4 => lz4_flex::block::compress(json),
    };
    Ok(Encoded {
        bytes,
        uncompressed: Some(json.len() as u64),
    })
}

/// The JSON a payload compressed with `codec` holds; `uncompressed` is the size its metadata
/// names (None for an uncompressed payload).
pub fn decode(
    codec: Codec,
    bytes: &[u8],
    uncompressed: Option<u64>,
) -> Result<Vec<u8>, SegmentError> {
    let Some(expected) = uncompressed else {
        return Ok(bytes.to_vec());
    };
    let json = match codec {
        Codec::None => bytes.to_vec(),
        Codec::Zstd => zstd::bulk::decompress(bytes, expected as usize)
            .map_err(|e| SegmentError::Decompress(e.to_string()))?,
        Codec::Lz4 => lz4_flex::block::decompress(bytes, expected as usize)
            .map_err(|e| SegmentError::Decompress(e.to_string()))?,
    };
    if json.len() as u64 != expected {
        return Err(SegmentError::Size {
            expected,
            got: json.len() as u64,
        });
    }
    Ok(json)
}

/// The rows of one segment's payload, as a client decodes them: `payload` is the inline data
/// (base64 decoded) or the downloaded bytes.
pub fn decode_rows(
    encoding: Encoding,
    metadata: &SegmentMetadata,
    payload: &[u8],
) -> Result<Vec<Vec<Value>>, SegmentError> {
    let json = decode_json(encoding, metadata, payload)?;
    serde_json::from_slice(&json).map_err(|e| SegmentError::Json(e.to_string()))
}

/// The JSON text of a segment's rows (`[[…],…]`), its size checked and decompressed.
pub fn decode_json(
    encoding: Encoding,
    metadata: &SegmentMetadata,
    payload: &[u8],
) -> Result<Vec<u8>, SegmentError> {
    if metadata.uncompressed_size.is_some() && payload.len() as u64 != metadata.segment_size {
        return Err(SegmentError::Size {
            expected: metadata.segment_size,
            got: payload.len() as u64,
        });
    }
    decode(encoding.codec(), payload, metadata.uncompressed_size)
}

/// `data` of a `QueryResults`: rows, or the segments of the spooling protocol.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ResultData {
    Rows(Vec<Vec<Value>>),
    Segments(SegmentedData),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SegmentedData {
    pub encoding: Encoding,
    pub segments: Vec<Segment>,
}

/// One segment of a result: its payload inline (base64) or a URI to download it from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum Segment {
    Inline {
        /// The payload, base64.
        data: String,
        metadata: SegmentMetadata,
    },
    Spooled {
        uri: String,
        #[serde(rename = "ackUri")]
        ack_uri: String,
        /// Headers to send with the download.
        #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
        headers: BTreeMap<String, Vec<String>>,
        metadata: SegmentMetadata,
    },
}

impl Segment {
    pub fn metadata(&self) -> &SegmentMetadata {
        match self {
            Segment::Inline { metadata, .. } | Segment::Spooled { metadata, .. } => metadata,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SegmentMetadata {
    /// The position of the segment's first row in the result.
    pub row_offset: u64,
    pub rows_count: u64,
    /// Bytes of the payload as sent.
    pub segment_size: u64,
    /// Bytes of the JSON a compressed payload holds; absent when it is not compressed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uncompressed_size: Option<u64>,
    /// When a spooled segment may be gone (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(count: usize) -> Vec<u8> {
        let rows: Vec<Value> = (0..count)
            .map(|i| serde_json::json!([i, format!("row {i}"), null]))
            .collect();
        serde_json::to_vec(&rows).expect("rows encode")
    }

    #[test]
    fn the_first_encoding_shoal_speaks_is_chosen() {
        assert_eq!(
            Encoding::choose("arrow+zstd, json+lz4,json"),
            Some(Encoding::JsonLz4)
        );
        assert_eq!(Encoding::choose("json+zstd"), Some(Encoding::JsonZstd));
        assert_eq!(Encoding::choose("protobuf"), None);
        assert_eq!(Encoding::choose(""), None);
    }

    #[test]
    fn large_payloads_are_compressed_and_decode_to_the_same_json() {
        let json = rows(2000);
        for encoding in [Encoding::JsonZstd, Encoding::JsonLz4] {
            let encoded = encode(encoding, &json).expect("encode");
            assert_eq!(encoded.uncompressed, Some(json.len() as u64));
            assert!(encoded.bytes.len() < json.len());
            let back =
                decode(encoding.codec(), &encoded.bytes, encoded.uncompressed).expect("decode");
            assert_eq!(back, json);
            // A size that does not match is refused, not truncated or padded.
            assert!(decode(
                encoding.codec(),
                &encoded.bytes,
                Some(json.len() as u64 + 1)
            )
            .is_err());
        }
    }

    #[test]
    fn small_payloads_and_plain_json_stay_as_they_are() {
        let small = rows(3);
        let encoded = encode(Encoding::JsonZstd, &small).expect("encode");
        assert_eq!(
            encoded,
            Encoded {
                bytes: small.clone(),
                uncompressed: None
            }
        );
        let large = rows(2000);
        let plain = encode(Encoding::Json, &large).expect("encode");
        assert_eq!(plain.bytes, large);
        assert_eq!(plain.uncompressed, None);
    }

    #[test]
    fn segments_read_as_trino_writes_them() {
        let text = r#"{"encoding":"json+zstd","segments":[
            {"type":"inline","data":"W1sxXV0=","metadata":{"rowOffset":0,"rowsCount":1,"segmentSize":5}},
            {"type":"spooled","uri":"http://c/v1/spooled/download/x","ackUri":"http://c/v1/spooled/ack/x",
             "headers":{"h":["v"]},"metadata":{"rowOffset":1,"rowsCount":9,"segmentSize":40,"uncompressedSize":90}}]}"#;
        let data: ResultData = serde_json::from_str(text).expect("segments parse");
        let ResultData::Segments(data) = data else {
            panic!("read as rows: {data:?}");
        };
        assert_eq!(data.encoding, Encoding::JsonZstd);
        assert_eq!(data.segments[1].metadata().uncompressed_size, Some(90));
        let rows: ResultData = serde_json::from_str("[[1,\"a\"]]").expect("rows parse");
        assert!(matches!(rows, ResultData::Rows(_)));
    }
}
