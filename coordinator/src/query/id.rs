//! Query ids, unique across coordinators: creation time, a per-coordinator sequence, the
//! coordinator's id and a random suffix, e.g. `20261123_140501_00007_c2_k3x9q`.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;

const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";

/// Random lower-case letters and digits (not for secrets).
/// A number in `0..ceiling` (0 when `ceiling` is 0), not predictable across calls.
pub fn random_below(ceiling: u64) -> u64 {
    if ceiling == 0 {
        return 0;
    }
    let mut hasher = RandomState::new().build_hasher();
    hasher.write_u128(
        SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    hasher.finish() % ceiling
}

pub fn random_token(length: usize) -> String {
    let mut out = String::with_capacity(length);
    let mut hasher = RandomState::new().build_hasher();
    hasher.write_u128(
        SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    let mut bits = hasher.finish();
    for _ in 0..length {
        if bits < ALPHABET.len() as u64 {
            let mut next = RandomState::new().build_hasher();
            next.write_u64(bits);
            bits = next.finish();
        }
        out.push(ALPHABET[(bits % ALPHABET.len() as u64) as usize] as char);
        bits /= ALPHABET.len() as u64;
    }
    out
}

pub struct QueryIds {
    coordinator: u64,
    sequence: AtomicU64,
}

impl QueryIds {
    pub fn new(coordinator: u64) -> Self {
        QueryIds {
            coordinator,
            sequence: AtomicU64::new(0),
        }
    }

    pub fn next(&self) -> String {
        let sequence = self.sequence.fetch_add(1, Ordering::SeqCst) % 100_000;
        let now = humantime::format_rfc3339_seconds(SystemTime::now()).to_string();
        let stamp: String = now.chars().filter(char::is_ascii_digit).collect();
        let (date, time) = stamp.split_at(8.min(stamp.len()));
        format!(
            "{date}_{time}_{sequence:05}_c{}_{}",
            self.coordinator,
            random_token(5)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique_and_well_formed() {
        let ids = QueryIds::new(3);
        let a = ids.next();
        let b = ids.next();
        assert_ne!(a, b);
        assert!(
            a.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'),
            "{a}"
        );
        assert!(
            a.contains("_00000_c3_") && b.contains("_00001_c3_"),
            "{a} {b}"
        );
        assert_eq!(a.len(), "20261123_140501_00000_c3_abcde".len());
    }
}
