//! A linearizability checker for histories of one register with reads, writes and
//! compare-and-set: the Wing-Gong search with Lowe's memoisation of (linearized set, state),
//! as used by Knossos and Porcupine. Operations whose outcome the client never learned have
//! no completion and may take effect at any point after their invocation, or never.

use std::collections::HashSet;
use std::time::Duration;

/// What a client asked of the register and, where it learned it, what it was told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegisterOp {
    /// A read that returned `saw` (None: the key was absent).
    Read { saw: Option<String> },
    /// An unconditional write.
    Write { value: String },
    /// Write `new` if the register holds `expected` (None: absent); `succeeded` is what the
    /// client was told, None when it never learned.
    Cas {
        expected: Option<String>,
        new: String,
        succeeded: Option<bool>,
    },
}

/// One operation of a history: times are offsets from a common start.
#[derive(Debug, Clone)]
pub struct Operation {
    pub client: usize,
    pub op: RegisterOp,
    pub invoked: Duration,
    /// None when the outcome is unknown (timeout, connection lost): the operation may have
    /// taken effect at any time after its invocation, or not at all.
    pub completed: Option<Duration>,
}

/// Why a history is not accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Linearizable,
    /// No order explains the history; `stuck_after` operations were the longest prefix that
    /// could be linearized.
    NotLinearizable {
        stuck_after: usize,
    },
    /// The search gave up after its step budget.
    Inconclusive,
}

/// The register's state after applying `op` to `state`, or None if `op`'s observed outcome
/// is impossible in `state`.
fn step(state: &Option<String>, op: &RegisterOp) -> Option<Option<String>> {
    match op {
        RegisterOp::Read { saw } => (saw == state).then(|| state.clone()),
        RegisterOp::Write { value } => Some(Some(value.clone())),
        RegisterOp::Cas {
            expected,
            new,
            succeeded,
        } => {
            if state == expected {
                (*succeeded != Some(false)).then(|| Some(new.clone()))
            } else {
                (*succeeded != Some(true)).then(|| state.clone())
            }
        }
    }
}

/// One call or return event in the doubly linked list the search walks.
#[derive(Debug, Clone, Copy)]
struct Entry {
    op: usize,
    is_call: bool,
    /// For a call, the index of its return entry.
    matching: usize,
    prev: usize,
    next: usize,
}

const HEAD: usize = 0;
const NONE: usize = usize::MAX;

fn build_entries(history: &[Operation]) -> Vec<Entry> {
    // (time, is_return, op): on equal times calls sort first, so touching operations count as
    // concurrent rather than ordered.
    let mut events: Vec<(Duration, bool, usize)> = Vec::new();
    for (i, op) in history.iter().enumerate() {
        events.push((op.invoked, false, i));
        events.push((op.completed.unwrap_or(Duration::MAX), true, i));
    }
    events.sort();
    let mut entries = vec![Entry {
        op: NONE,
        is_call: false,
        matching: NONE,
        prev: NONE,
        next: NONE,
    }];
    let mut return_of = vec![NONE; history.len()];
    for (position, (_, is_return, op)) in events.iter().enumerate() {
        let index = position + 1;
        entries.push(Entry {
            op: *op,
            is_call: !is_return,
            matching: NONE,
            prev: index - 1,
            next: if position + 1 < events.len() {
                index + 1
            } else {
                NONE
            },
        });
        if *is_return {
            return_of[*op] = index;
        }
    }
    entries[HEAD].next = if events.is_empty() { NONE } else { 1 };
    for index in 1..entries.len() {
        if entries[index].is_call {
            entries[index].matching = return_of[entries[index].op];
        }
    }
    entries
}

fn unlink(entries: &mut [Entry], index: usize) {
    let Entry { prev, next, .. } = entries[index];
    entries[prev].next = next;
    if next != NONE {
        entries[next].prev = prev;
    }
}

fn relink(entries: &mut [Entry], index: usize) {
    let Entry { prev, next, .. } = entries[index];
    entries[prev].next = index;
    if next != NONE {
        entries[next].prev = index;
    }
}

/// Check that `history` (the operations on one register, starting absent) is linearizable.
/// `budget` bounds the search steps.
pub fn check(history: &[Operation], budget: u64) -> Verdict {
    let mut entries = build_entries(history);
    let words = history.len().div_ceil(64).max(1);
    let mut linearized = vec![0u64; words];
    let mut seen: HashSet<(Vec<u64>, Option<String>)> = HashSet::new();
    let mut stack: Vec<(usize, Option<String>)> = Vec::new();
    let mut state: Option<String> = None;
    let mut deepest = 0;
    let mut cursor = entries[HEAD].next;
    let mut steps = 0u64;
    while entries[HEAD].next != NONE {
        steps += 1;
        if steps > budget {
            return Verdict::Inconclusive;
        }
        let entry = entries[cursor];
        if entry.is_call {
            let next_state = step(&state, &history[entry.op].op);
            let mut tried = false;
            if let Some(next_state) = next_state {
                linearized[entry.op / 64] |= 1 << (entry.op % 64);
                if seen.insert((linearized.clone(), next_state.clone())) {
                    stack.push((cursor, state));
                    state = next_state;
                    unlink(&mut entries, cursor);
                    unlink(&mut entries, entry.matching);
                    deepest = deepest.max(stack.len());
                    cursor = entries[HEAD].next;
                    tried = true;
                } else {
                    linearized[entry.op / 64] &= !(1 << (entry.op % 64));
                }
            }
            if !tried {
                cursor = entry.next;
            }
        } else {
            // A return whose call is not linearized yet: undo the last choice.
            let Some((call, previous)) = stack.pop() else {
                return Verdict::NotLinearizable {
                    stuck_after: deepest,
                };
            };
            let Entry { op, matching, .. } = entries[call];
            relink(&mut entries, matching);
            relink(&mut entries, call);
            linearized[op / 64] &= !(1 << (op % 64));
            state = previous;
            cursor = entries[call].next;
        }
    }
    Verdict::Linearizable
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(client: usize, op: RegisterOp, invoked: u64, completed: Option<u64>) -> Operation {
        Operation {
            client,
            op,
            invoked: Duration::from_millis(invoked),
            completed: completed.map(Duration::from_millis),
        }
    }

    fn write(value: &str) -> RegisterOp {
        RegisterOp::Write {
            value: value.into(),
        }
    }

    fn read(saw: Option<&str>) -> RegisterOp {
        RegisterOp::Read {
            saw: saw.map(String::from),
        }
    }

    fn cas(expected: Option<&str>, new: &str, succeeded: Option<bool>) -> RegisterOp {
        RegisterOp::Cas {
            expected: expected.map(String::from),
            new: new.into(),
            succeeded,
        }
    }

    const BUDGET: u64 = 1_000_000;

    #[test]
    fn sequential_history_is_linearizable() {
        let history = [
            op(0, read(None), 0, Some(1)),
            op(0, write("a"), 2, Some(3)),
            op(1, read(Some("a")), 4, Some(5)),
            op(1, cas(Some("a"), "b", Some(true)), 6, Some(7)),
            op(0, cas(Some("a"), "c", Some(false)), 8, Some(9)),
            op(0, read(Some("b")), 10, Some(11)),
        ];
        assert_eq!(check(&history, BUDGET), Verdict::Linearizable);
    }

    #[test]
    fn a_read_of_a_value_never_written_is_caught() {
        let history = [
            op(0, write("a"), 0, Some(1)),
            op(1, read(Some("z")), 2, Some(3)),
        ];
        assert!(matches!(
            check(&history, BUDGET),
            Verdict::NotLinearizable { .. }
        ));
    }

    #[test]
    fn a_stale_read_is_caught() {
        let history = [
            op(0, write("a"), 0, Some(1)),
            op(0, write("b"), 2, Some(3)),
            op(1, read(Some("a")), 4, Some(5)),
        ];
        assert!(matches!(
            check(&history, BUDGET),
            Verdict::NotLinearizable { .. }
        ));
    }

    #[test]
    fn concurrent_operations_may_take_effect_in_either_order() {
        let history = [
            op(0, write("a"), 0, Some(10)),
            op(1, write("b"), 1, Some(9)),
            op(2, read(Some("a")), 11, Some(12)),
            op(3, read(Some("b")), 2, Some(3)),
        ];
        assert_eq!(check(&history, BUDGET), Verdict::Linearizable);
    }

    #[test]
    fn reads_may_not_flip_back_and_forth() {
        let history = [
            op(0, write("a"), 0, Some(20)),
            op(1, write("b"), 0, Some(20)),
            op(2, read(Some("a")), 1, Some(2)),
            op(2, read(Some("b")), 3, Some(4)),
            op(2, read(Some("a")), 5, Some(6)),
        ];
        assert!(matches!(
            check(&history, BUDGET),
            Verdict::NotLinearizable { .. }
        ));
    }

    #[test]
    fn an_unknown_write_may_take_effect_late_or_never() {
        let seen_late = [
            op(0, write("a"), 0, Some(1)),
            op(1, write("b"), 2, None),
            op(2, read(Some("a")), 3, Some(4)),
            op(2, read(Some("b")), 50, Some(51)),
        ];
        assert_eq!(check(&seen_late, BUDGET), Verdict::Linearizable);
        let never_seen = [
            op(0, write("a"), 0, Some(1)),
            op(1, write("b"), 2, None),
            op(2, read(Some("a")), 50, Some(51)),
        ];
        assert_eq!(check(&never_seen, BUDGET), Verdict::Linearizable);
        let seen_before_invoked = [
            op(2, read(Some("b")), 0, Some(1)),
            op(1, write("b"), 2, None),
        ];
        assert!(matches!(
            check(&seen_before_invoked, BUDGET),
            Verdict::NotLinearizable { .. }
        ));
    }

    #[test]
    fn two_successful_swaps_from_the_same_value_are_caught() {
        let history = [
            op(0, write("a"), 0, Some(1)),
            op(1, cas(Some("a"), "b", Some(true)), 2, Some(10)),
            op(2, cas(Some("a"), "c", Some(true)), 2, Some(10)),
        ];
        assert!(matches!(
            check(&history, BUDGET),
            Verdict::NotLinearizable { .. }
        ));
    }

    #[test]
    fn a_failed_swap_must_have_seen_another_value() {
        let history = [
            op(0, write("a"), 0, Some(1)),
            op(1, cas(Some("a"), "b", Some(false)), 2, Some(3)),
        ];
        assert!(matches!(
            check(&history, BUDGET),
            Verdict::NotLinearizable { .. }
        ));
    }

    #[test]
    fn a_lost_acknowledged_write_is_caught() {
        let history = [
            op(0, write("a"), 0, Some(1)),
            op(1, cas(Some("a"), "b", Some(true)), 2, Some(3)),
            op(2, read(Some("a")), 10, Some(11)),
        ];
        assert!(matches!(
            check(&history, BUDGET),
            Verdict::NotLinearizable { .. }
        ));
    }

    #[test]
    fn a_long_concurrent_history_is_checked_quickly() {
        // Eight clients, each writing its own values and reading back, overlapping heavily.
        let mut history = Vec::new();
        for round in 0..60u64 {
            for client in 0..8usize {
                let start = round * 10 + client as u64;
                let value = format!("{client}-{round}");
                history.push(op(client, write(&value), start, Some(start + 9)));
            }
            history.push(op(
                8,
                read(Some(&format!("7-{round}"))),
                round * 10 + 17,
                Some(round * 10 + 18),
            ));
        }
        assert_eq!(check(&history, 10_000_000), Verdict::Linearizable);
    }
}
