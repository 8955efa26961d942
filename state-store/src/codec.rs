//! The one binary encoding of the store (bincode with a size limit and no trailing bytes), used
//! for values on disk and for internal RPC bodies alike.

use bincode::Options;
use serde::de::DeserializeOwned;
use serde::Serialize;

/// The largest value or RPC body the store decodes; anything larger is refused, not allocated.
/// A snapshot is not one value: each of its records is limited on its own.
pub const MAX_ENCODED_LEN: u64 = 256 * 1024 * 1024;

fn options(limit: u64) -> impl Options {
    bincode::DefaultOptions::new().with_limit(limit)
}

pub fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, bincode::Error> {
    encode_limited(value, MAX_ENCODED_LEN)
}

pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, bincode::Error> {
    decode_limited(bytes, MAX_ENCODED_LEN)
}

/// Encode `value`, refusing it if its encoding would exceed `limit` bytes.
pub fn encode_limited<T: Serialize + ?Sized>(
    value: &T,
    limit: u64,
) -> Result<Vec<u8>, bincode::Error> {
    options(limit).serialize(value)
}

/// Append the encoding of `value` to `out`, refusing it if it would exceed `limit` bytes.
pub fn encode_limited_into<T: Serialize + ?Sized>(
    out: &mut Vec<u8>,
    value: &T,
    limit: u64,
) -> Result<(), bincode::Error> {
    options(limit).serialize_into(out, value)
}

/// Decode `bytes`, refusing values whose encoding is larger than `limit` bytes.
pub fn decode_limited<T: DeserializeOwned>(bytes: &[u8], limit: u64) -> Result<T, bincode::Error> {
    options(limit).deserialize(bytes)
}
