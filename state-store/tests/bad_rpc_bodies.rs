//! Property test: any bytes as an internal RPC body decode to a value or to an error, never a
//! panic or a huge allocation, for every message type the store's routes take.

use proptest::prelude::*;
use shoal_state_store::server::decode;
use shoal_state_store::types::{Command, TxnRequest, TypeConfig};

fn decode_all(bytes: &[u8]) {
    let _ = decode::<Command>(bytes);
    let _ = decode::<TxnRequest>(bytes);
    let _ = decode::<openraft::raft::AppendEntriesRequest<TypeConfig>>(bytes);
    let _ = decode::<openraft::raft::VoteRequest<u64>>(bytes);
    let _ = decode::<openraft::raft::InstallSnapshotRequest<TypeConfig>>(bytes);
    let _ = decode::<String>(bytes);
    let _ = decode::<Vec<String>>(bytes);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]

    #[test]
    fn any_body_decodes_or_is_refused(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        decode_all(&bytes);
    }

    #[test]
    fn huge_declared_lengths_are_refused_not_allocated(len in (1u64 << 33)..u64::MAX, tail in prop::collection::vec(any::<u8>(), 0..16)) {
        // bincode's varint length prefix for a huge sequence, then a few bytes.
        let mut bytes = vec![253u8];
        bytes.extend_from_slice(&len.to_le_bytes());
        bytes.extend_from_slice(&tail);
        decode_all(&bytes);
        prop_assert!(decode::<Vec<String>>(&bytes).is_err());
    }
}
