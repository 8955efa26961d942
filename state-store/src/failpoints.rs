//! Faults tests inject into the store (the `failpoints` feature, `SHOAL_FAILPOINTS`): the
//! moments a kill cannot be aimed at. Without the feature every check here is a no-op.

use crate::types::{Command, Entry, Op};
use openraft::EntryPayload;

/// The argument of failpoint `name` when it is set to `return(ARG)`.
fn argument(name: &str) -> Option<String> {
    // `fail_point!` returns from the function it is in with the argument.
    let read = |name: &str| -> Option<String> {
        fail::fail_point!(name, |argument| argument);
        let _ = name;
        None
    };
    read(name)
}

fn puts(command: &Command, value: &str) -> bool {
    command.txns.iter().any(|txn| {
        txn.success
            .iter()
            .any(|op| matches!(op, Op::Put { value: v, .. } if v.as_slice() == value.as_bytes()))
    })
}

/// `state-machine-apply-stall=return(VALUE)`: the entry that puts VALUE is applied a minute
/// late here (a member that committed an entry dies before applying it).
pub(crate) fn stall_apply(command: &Command) {
    if let Some(value) = argument("state-machine-apply-stall") {
        if puts(command, &value) {
            tracing::warn!(%value, "failpoint state-machine-apply-stall");
            std::thread::sleep(std::time::Duration::from_secs(60));
        }
    }
}

/// `raft-append-refused=return(VALUE)`: this member refuses every append that carries the
/// entry putting VALUE (it stays behind the leader on that entry).
pub(crate) fn refuse_append(entries: &[Entry]) -> bool {
    let Some(value) = argument("raft-append-refused") else {
        return false;
    };
    let refused = entries.iter().any(|entry| match &entry.payload {
        EntryPayload::Normal(command) => puts(command, &value),
        _ => false,
    });
    if refused {
        tracing::warn!(%value, "failpoint raft-append-refused");
    }
    refused
}
