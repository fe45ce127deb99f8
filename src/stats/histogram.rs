//! A latency histogram written by one thread (plain adds, no locked
//! instruction) and summed by readers: the buckets Prometheus'
//! `*_seconds` histograms of keyway use, and their text form.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use super::add;

/// Upper bounds of the buckets, in seconds.
pub const BUCKETS: [f64; 16] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];

/// [`BUCKETS`] in nanoseconds, for recording.
const BUCKETS_NS: [u64; 16] = {
    let mut ns = [0u64; 16];
    let mut i = 0;
    while i < 16 {
        ns[i] = (BUCKETS[i] * 1e9) as u64;
        i += 1;
    }
    ns
};

/// Counts per bucket (the last is `+Inf`) and the sum of the durations.
#[derive(Default)]
pub struct Histogram {
    buckets: [AtomicU64; 17],
    sum_ns: AtomicU64,
}

impl Histogram {
    /// Records one duration; only one thread may record into a histogram.
    #[inline]
    pub fn record(&self, took: Duration) {
        let ns = took.as_nanos().min(u64::MAX as u128) as u64;
        let bucket = BUCKETS_NS.iter().position(|&b| ns <= b).unwrap_or(16);
        add(&self.buckets[bucket], 1);
        add(&self.sum_ns, ns);
    }

    /// Adds this histogram's figures to `totals`.
    pub fn add_to(&self, totals: &mut Totals) {
        for (t, b) in totals.buckets.iter_mut().zip(&self.buckets) {
            *t += b.load(Ordering::Relaxed);
        }
        totals.sum_ns += self.sum_ns.load(Ordering::Relaxed);
    }
}

/// Histograms summed (over workers, connections).
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Totals {
    /// Count per bucket of [`BUCKETS`], then `+Inf`; not cumulative.
    pub buckets: [u64; 17],
    /// Sum of the durations, in nanoseconds.
    pub sum_ns: u64,
}

impl Totals {
    /// Adds `other`'s figures to these.
    pub fn add(&mut self, other: &Totals) {
        for (a, b) in self.buckets.iter_mut().zip(&other.buckets) {
            *a += b;
        }
        self.sum_ns += other.sum_ns;
    }

    /// How many durations were recorded.
    pub fn count(&self) -> u64 {
        self.buckets.iter().sum()
    }

    /// The sum of the durations, in seconds.
    pub fn sum_seconds(&self) -> f64 {
        self.sum_ns as f64 / 1e9
    }

    /// The upper bound (seconds) of the bucket holding quantile `q`
    /// (0 < q <= 1), or `None` when nothing was recorded; `+Inf` past
    /// the last bucket.
    pub fn quantile_bound(&self, q: f64) -> Option<f64> {
        let count = self.count();
        if count == 0 {
            return None;
        }
        let rank = ((count as f64) * q).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (i, n) in self.buckets.iter().enumerate() {
            seen += n;
            if seen >= rank {
                return Some(BUCKETS.get(i).copied().unwrap_or(f64::INFINITY));
            }
        }
        Some(f64::INFINITY)
    }

    /// Writes the `_bucket` (cumulative), `_sum` and `_count` lines of
    /// family `name` with `labels` (`key="value",...`, may be empty).
    pub fn render(&self, name: &str, labels: &str, out: &mut String) {
        let sep = if labels.is_empty() { "" } else { "," };
        let mut cumulative = 0;
        for (i, count) in self.buckets.iter().enumerate() {
            cumulative += count;
            let le = BUCKETS.get(i).map_or("+Inf".to_string(), f64::to_string);
            let _ = writeln!(
                out,
                "{name}_bucket{{{labels}{sep}le=\"{le}\"}} {cumulative}"
            );
        }
        let braces = if labels.is_empty() {
            String::new()
        } else {
            format!("{{{labels}}}")
        };
        let _ = writeln!(out, "{name}_sum{braces} {}", self.sum_seconds());
        let _ = writeln!(out, "{name}_count{braces} {}", self.count());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_land_in_buckets_and_render_cumulatively() {
        let h = Histogram::default();
        h.record(Duration::from_micros(50));
        h.record(Duration::from_micros(300));
        h.record(Duration::from_secs(20));
        let mut totals = Totals::default();
        h.add_to(&mut totals);
        h.add_to(&mut totals);
        assert_eq!(
            (totals.buckets[0], totals.buckets[2], totals.buckets[16]),
            (2, 2, 2)
        );
        assert_eq!(totals.count(), 6);
        assert!((totals.sum_seconds() - 40.0007).abs() < 1e-9);
        assert_eq!(totals.quantile_bound(0.3), Some(0.0001));
        assert_eq!(totals.quantile_bound(0.5), Some(0.0005));
        assert_eq!(totals.quantile_bound(0.99), Some(f64::INFINITY));
        assert_eq!(Totals::default().quantile_bound(0.5), None);
        let mut text = String::new();
        totals.render("x_seconds", "a=\"b\"", &mut text);
        assert!(text.contains("x_seconds_bucket{a=\"b\",le=\"0.0001\"} 2\n"));
        assert!(text.contains("x_seconds_bucket{a=\"b\",le=\"0.0005\"} 4\n"));
        assert!(text.contains("x_seconds_bucket{a=\"b\",le=\"+Inf\"} 6\n"));
        assert!(text.contains("x_seconds_count{a=\"b\"} 6\n"));
        let mut bare = String::new();
        totals.render("y_seconds", "", &mut bare);
        assert!(bare.contains("y_seconds_bucket{le=\"10\"} 4\n"));
        assert!(bare.contains("y_seconds_sum 40.0007"));
    }
}
