//! HdrHistogram in and out: the percentile distribution text (`.hgrm`) exactly as
//! HdrHistogram's `outputPercentileDistribution` prints it (what wrk2 prints and what
//! the HdrHistogram plotter reads), and the V2 + deflate + base64 encoding worker
//! processes use to hand their histograms to the parent.

use base64::Engine as _;
use hdrhistogram::serialization::{Deserializer, Serializer, V2DeflateSerializer};
use hdrhistogram::Histogram;
use std::fmt::Write as _;

/// Significant value digits of every latency histogram.
pub const SIGFIG: u8 = 3;
/// Highest latency tracked, in microseconds (one hour); larger values saturate.
pub const LATENCY_US_MAX: u64 = 3_600_000_000;
/// Percentile ticks per half distance, as wrk2 and HdrHistogram's default use.
pub const TICKS_PER_HALF_DISTANCE: u32 = 5;

/// A fresh latency histogram (microseconds, 1 us to 1 h, 3 significant digits).
pub fn new_histogram() -> Histogram<u64> {
    match Histogram::new_with_bounds(1, LATENCY_US_MAX, SIGFIG) {
        Ok(h) => h,
        // Invariant: the bounds are constants that HdrHistogram accepts (low >= 1,
        // high >= 2 * low, sigfig <= 5); the test `histogram_bounds` checks them.
        Err(e) => unreachable!("histogram bounds are valid constants: {e:?}"),
    }
}

/// Encodes a histogram as V2 + deflate, base64 (HdrHistogram's interchange format).
pub fn encode(h: &Histogram<u64>) -> Result<String, String> {
    let mut bytes = Vec::new();
    V2DeflateSerializer::new()
        .serialize(h, &mut bytes)
        .map_err(|e| format!("histogram serialization: {e:?}"))?;
    Ok(base64::engine::general_purpose::STANDARD.encode(bytes))
}

/// Decodes [`encode`]'s output into a histogram with [`new_histogram`]'s bounds.
pub fn decode(s: &str) -> Result<Histogram<u64>, String> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(s.as_bytes())
        .map_err(|e| format!("histogram base64: {e}"))?;
    let h: Histogram<u64> = Deserializer::new()
        .deserialize(&mut bytes.as_slice())
        .map_err(|e| format!("histogram decoding: {e:?}"))?;
    let mut out = new_histogram();
    out.add(&h).map_err(|e| format!("histogram merge: {e:?}"))?;
    Ok(out)
}

/// HdrHistogram's sub-bucket count for a precision (what its footer prints).
pub fn sub_bucket_count(sigfig: u8) -> u64 {
    (2 * 10u64.pow(u32::from(sigfig))).next_power_of_two()
}

/// The percentile distribution of `h` in HdrHistogram's text format. Values are divided
/// by `scale` (1000.0 turns recorded microseconds into milliseconds, as wrk2 prints).
pub fn percentile_distribution(h: &Histogram<u64>, scale: f64) -> String {
    let p = usize::from(SIGFIG);
    let mut out = String::new();
    // `write!` into a String cannot fail.
    let _ = write!(
        out,
        "{:>12} {:>14} {:>10} {:>14}\n\n",
        "Value", "Percentile", "TotalCount", "1/(1-Percentile)"
    );
    let mut total = 0u64;
    if !h.is_empty() {
        for v in h.iter_quantiles(TICKS_PER_HALF_DISTANCE) {
            total += v.count_since_last_iteration();
            let value = v.value_iterated_to() as f64 / scale;
            let q = v.quantile_iterated_to();
            if q < 1.0 {
                let _ = writeln!(
                    out,
                    "{value:>12.p$} {q:>2.12} {total:>10} {:>14.2}",
                    1.0 / (1.0 - q)
                );
            } else {
                let _ = writeln!(out, "{value:>12.p$} {q:>2.12} {total:>10}");
            }
        }
    }
    let _ = writeln!(
        out,
        "#[Mean    = {:>12.p$}, StdDeviation   = {:>12.p$}]",
        h.mean() / scale,
        h.stdev() / scale
    );
    let _ = writeln!(
        out,
        "#[Max     = {:>12.p$}, Total count    = {:>12}]",
        h.max() as f64 / scale,
        h.len()
    );
    let _ = writeln!(
        out,
        "#[Buckets = {:>12}, SubBuckets     = {:>12}]",
        h.buckets(),
        sub_bucket_count(SIGFIG)
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_bounds() {
        let mut h = new_histogram();
        h.saturating_record(u64::MAX);
        assert_eq!(h.len(), 1);
        assert_eq!(sub_bucket_count(3), 2048);
        assert_eq!(sub_bucket_count(2), 256);
    }

    #[test]
    fn round_trip() {
        let mut h = new_histogram();
        for v in 1..=10_000u64 {
            h.record(v * 3).unwrap();
        }
        let back = decode(&encode(&h).unwrap()).unwrap();
        assert_eq!(back.len(), h.len());
        assert_eq!(back.max(), h.max());
        assert_eq!(back.value_at_quantile(0.99), h.value_at_quantile(0.99));
        assert!(decode("not base64!").is_err());
    }

    #[test]
    fn hgrm_format() {
        let mut h = new_histogram();
        for v in 1..=100u64 {
            h.record(v * 1_000).unwrap(); // 1 ms .. 100 ms, in us
        }
        let text = percentile_distribution(&h, 1000.0);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0],
            "       Value     Percentile TotalCount 1/(1-Percentile)"
        );
        assert_eq!(lines[1], "");
        // First row: the lowest value at percentile 0.
        assert_eq!(
            lines[2],
            "       1.000 0.000000000000          1           1.00"
        );
        // Row 50%: value 50 ms, 50 counted, 1/(1-0.5) = 2.
        assert!(lines.contains(&"      50.015 0.500000000000         50           2.00"));
        // The 100% row has no inverse column.
        let last_row = lines[lines.len() - 4];
        assert_eq!(last_row, "     100.031 1.000000000000        100");
        assert_eq!(
            lines[lines.len() - 3],
            format!(
                "#[Mean    = {:>12.3}, StdDeviation   = {:>12.3}]",
                h.mean() / 1000.0,
                h.stdev() / 1000.0
            )
        );
        assert_eq!(
            lines[lines.len() - 2],
            "#[Max     =      100.031, Total count    =          100]"
        );
        assert_eq!(
            lines[lines.len() - 1],
            format!(
                "#[Buckets = {:>12}, SubBuckets     =         2048]",
                h.buckets()
            )
        );
        // Every data row parses as four (or three) numbers with rising percentiles.
        let mut last = -1.0;
        for row in &lines[2..lines.len() - 3] {
            let cols: Vec<f64> = row.split_whitespace().map(|c| c.parse().unwrap()).collect();
            assert!(cols.len() == 4 || cols.len() == 3, "{row}");
            assert!(cols[1] >= last);
            last = cols[1];
        }
    }

    #[test]
    fn empty_histogram_still_has_footer() {
        let text = percentile_distribution(&new_histogram(), 1000.0);
        assert!(text.contains("Total count    =            0"));
    }
}
