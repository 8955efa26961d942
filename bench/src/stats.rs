//! Latency samples and their summary.

use std::time::Duration;

/// What a run of operations measured.
#[derive(Debug, Clone, Default)]
pub struct Summary {
    pub operations: u64,
    pub per_second: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
}

/// Summarise `latencies` of operations that took `elapsed` in all.
pub fn summarise(mut latencies: Vec<Duration>, elapsed: Duration) -> Summary {
    latencies.sort_unstable();
    let percentile = |p: f64| -> f64 {
        if latencies.is_empty() {
            return 0.0;
        }
        let rank = ((latencies.len() as f64) * p).ceil() as usize;
        let index = rank.clamp(1, latencies.len()) - 1;
        latencies[index].as_secs_f64() * 1000.0
    };
    Summary {
        operations: latencies.len() as u64,
        per_second: latencies.len() as f64 / elapsed.as_secs_f64().max(1e-9),
        p50_ms: percentile(0.50),
        p99_ms: percentile(0.99),
    }
}

/// Round to three decimals for the JSON line.
pub fn round3(value: f64) -> f64 {
    (value * 1000.0).round() / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_of_a_known_sample() {
        let latencies = (1..=100).map(Duration::from_millis).collect();
        let summary = summarise(latencies, Duration::from_secs(2));
        assert_eq!(summary.operations, 100);
        assert_eq!(summary.per_second, 50.0);
        assert_eq!(summary.p50_ms, 50.0);
        assert_eq!(summary.p99_ms, 99.0);
    }
}
