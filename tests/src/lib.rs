//! Cluster test harness: whole clusters of real `shoal` processes on free loopback ports in a
//! temporary directory, and `shoal haadmin` to look at them.

pub mod chaos;
pub mod kv;
pub mod linearizability;
pub mod netns;
pub mod process;
pub mod python;
pub mod s3;
pub mod tpch;
pub mod trino;

use std::time::{Duration, Instant};

/// Poll `condition` every 50 ms until it holds; fail with `what` after `timeout`.
pub fn wait_until(timeout: Duration, what: &str, mut condition: impl FnMut() -> bool) {
    if poll(timeout, || condition().then_some(())).is_none() {
        panic!("not true within {timeout:?}: {what}");
    }
}

/// Poll `probe` every 50 ms until it returns a value, or None once `timeout` passed (for
/// callers that fail in their own way).
pub fn poll<T>(timeout: Duration, mut probe: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = probe() {
            return Some(value);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Poll `probe` until it returns a value; fail with `what` after `timeout`.
pub fn wait_for<T>(timeout: Duration, what: &str, probe: impl FnMut() -> Option<T>) -> T {
    poll(timeout, probe).unwrap_or_else(|| panic!("nothing within {timeout:?}: {what}"))
}

/// Check `condition` every 50 ms for `window`, failing at once if it does not hold (for
/// properties that must stay true, such as "this query never runs").
pub fn holds_for(window: Duration, what: &str, mut condition: impl FnMut() -> bool) {
    let end = Instant::now() + window;
    while Instant::now() < end {
        assert!(condition(), "stopped holding: {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}
