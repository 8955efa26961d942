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

/// The longest stretch of `[from, to]` without any of `events` (times need not be sorted).
pub fn longest_gap(events: &[Duration], from: Duration, to: Duration) -> Duration {
    let mut inside: Vec<Duration> = events
        .iter()
        .copied()
        .filter(|t| *t >= from && *t <= to)
        .collect();
    inside.sort_unstable();
    let mut previous = from;
    let mut longest = Duration::ZERO;
    for t in inside.into_iter().chain(std::iter::once(to)) {
        longest = longest.max(t - previous);
        previous = t;
    }
    longest
}

/// The median of `values` (the mean of the middle two for an even count); 0 when empty.
pub fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    match sorted.len() {
        0 => 0.0,
        n if n % 2 == 1 => sorted[n / 2],
        n => (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn longest_gap_counts_the_edges_of_the_window() {
        let ms = Duration::from_millis;
        let events = [ms(50), ms(120), ms(900), ms(130), ms(2000)];
        assert_eq!(longest_gap(&events, ms(100), ms(1000)), ms(770));
        assert_eq!(longest_gap(&[], ms(100), ms(1000)), ms(900));
        assert_eq!(longest_gap(&[ms(990)], ms(100), ms(1000)), ms(890));
    }

    #[test]
    fn median_of_odd_and_even_counts() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
        assert_eq!(median(&[]), 0.0);
    }

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
