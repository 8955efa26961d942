//! Cluster test harness: whole clusters of real `shoal` processes on free loopback ports in a
//! temporary directory, and `shoal haadmin` to look at them.

pub mod process;
pub mod tpch;
pub mod trino;

use std::time::{Duration, Instant};

/// Poll `condition` every 50 ms until it holds; fail with `what` after `timeout`.
pub fn wait_until(timeout: Duration, what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    loop {
        if condition() {
            return;
        }
        if Instant::now() >= deadline {
            panic!("not true within {timeout:?}: {what}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Poll `probe` until it returns a value; fail with `what` after `timeout`.
pub fn wait_for<T>(timeout: Duration, what: &str, mut probe: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = probe() {
            return value;
        }
        if Instant::now() >= deadline {
            panic!("nothing within {timeout:?}: {what}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
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
