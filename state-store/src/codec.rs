//! The one binary encoding of the store (bincode with a size limit and no trailing bytes), used
//! for values on disk and for internal RPC bodies alike.

use bincode::Options;
use serde::de::DeserializeOwned;
use serde::Serialize;

/// The largest value or RPC body the store decodes; anything larger is refused, not allocated.
pub const MAX_ENCODED_LEN: u64 = 256 * 1024 * 1024;

fn options() -> impl Options {
    bincode::DefaultOptions::new().with_limit(MAX_ENCODED_LEN)
}

pub fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, bincode::Error> {
    options().serialize(value)
}

pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, bincode::Error> {
    options().deserialize(bytes)
}
