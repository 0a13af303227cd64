//! The routing function: which shard owns a key.
//!
//! [`shard_for`] is the single place that decides ownership. It must give the
//! same answer in every process on every machine (session ids minted by one
//! process may be routed by another after a restart or behind a load
//! balancer), so it is built only from fixed-width integer arithmetic:
//!
//! 1. FNV-1a, 64-bit, over the key bytes;
//! 2. the murmur3 `fmix64` finalizer, which spreads FNV's weak low-bit
//!    avalanche over all 64 bits (FNV alone maps keys that differ only in
//!    their last byte to nearby values, which `% shards` then clusters);
//! 3. `% shards`.
//!
//! Neither step depends on the platform's `usize` width, endianness or a
//! per-process random seed. The function is *not* keyed: it balances load,
//! it does not resist an adversary choosing keys. Session ids are minted
//! from the OS CSPRNG (see [`crate::session_id`]), so their placement is not
//! attacker-controlled.

/// FNV-1a 64-bit offset basis.
const FNV_OFFSET_BASIS: u64 = 0xcbf2_9ce4_8422_2325;
/// FNV-1a 64-bit prime.
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// FNV-1a, 64-bit.
fn fnv1a64(key: &[u8]) -> u64 {
    key.iter().fold(FNV_OFFSET_BASIS, |hash, &byte| {
        (hash ^ u64::from(byte)).wrapping_mul(FNV_PRIME)
    })
}

/// The murmur3 64-bit finalizer (`fmix64`): a bijective avalanche mix.
fn fmix64(mut k: u64) -> u64 {
    k ^= k >> 33;
    k = k.wrapping_mul(0xff51_afd7_ed55_8ccd);
    k ^= k >> 33;
    k = k.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    k ^= k >> 33;
    k
}

/// The shard, in `0..shards`, that owns `key`.
///
/// Pure and deterministic across processes, platforms and builds: FNV-1a
/// 64-bit, then the murmur3 `fmix64` finalizer, then `% shards`.
///
/// `shards == 0` is a programming error: it trips a `debug_assert!` and, in
/// release builds, returns `0`.
pub fn shard_for(key: &[u8], shards: usize) -> usize {
    debug_assert!(shards > 0, "shard_for called with zero shards");
    if shards == 0 {
        return 0;
    }
    // `usize` is at most 64 bits on every supported target, so the cast is
    // lossless, and the remainder is `< shards`, so casting back is lossless.
    let hash = fmix64(fnv1a64(key));
    (hash % shards as u64) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv1a64_matches_reference_vectors() {
        // Reference values from the FNV specification test suite.
        assert_eq!(fnv1a64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a64(b"foobar"), 0x8594_4171_f739_67e8);
    }

    #[test]
    fn fmix64_is_a_mix() {
        assert_eq!(fmix64(0), 0);
        assert_ne!(fmix64(1), 1);
        assert_ne!(fmix64(1), fmix64(2));
    }

    #[test]
    fn deterministic() {
        for i in 0..1_000 {
            let key = format!("server-{i}");
            let first = shard_for(key.as_bytes(), 16);
            for _ in 0..3 {
                assert_eq!(shard_for(key.as_bytes(), 16), first);
            }
        }
    }

    #[test]
    fn pinned_values_do_not_drift() {
        // These values are part of the wire contract: a session id minted by
        // one build must route to the same shard in the next. If this test
        // fails, the routing function changed incompatibly.
        let pinned: [(&[u8], usize, usize); 4] = [
            (b"", 7, (fmix64(FNV_OFFSET_BASIS) % 7) as usize),
            (b"server-0", 64, 59),
            (b"server-1", 64, 29),
            (b"a", 1_000_003, 439_230),
        ];
        for (key, shards, want) in pinned {
            assert_eq!(shard_for(key, shards), want, "key {key:?} shards {shards}");
        }
    }

    #[test]
    fn in_range() {
        for shards in 1..=65 {
            for i in 0..500 {
                let key = format!("k{i}");
                assert!(shard_for(key.as_bytes(), shards) < shards);
            }
        }
    }

    #[test]
    fn single_shard_is_always_zero() {
        for i in 0..100u32 {
            assert_eq!(shard_for(&i.to_le_bytes(), 1), 0);
        }
    }

    /// Bucket counts of `keys` over `partitions`.
    fn histogram(keys: impl Iterator<Item = Vec<u8>>, partitions: usize) -> Vec<usize> {
        let mut counts = vec![0usize; partitions];
        for key in keys {
            counts[shard_for(&key, partitions)] += 1;
        }
        counts
    }

    /// Pearson's chi-square statistic of `counts` against a uniform spread.
    fn chi_square(counts: &[usize]) -> f64 {
        let total: usize = counts.iter().sum();
        let expected = total as f64 / counts.len() as f64;
        counts
            .iter()
            .map(|&c| (c as f64 - expected).powi(2) / expected)
            .sum()
    }

    /// Largest bucket over smallest bucket.
    fn max_min_ratio(counts: &[usize]) -> f64 {
        let max = counts.iter().copied().max().unwrap_or(0);
        let min = counts.iter().copied().min().unwrap_or(0);
        assert!(min > 0, "empty partition: {counts:?}");
        max as f64 / min as f64
    }

    fn server_keys(n: usize) -> impl Iterator<Item = Vec<u8>> {
        (0..n).map(|i| format!("server-{i}").into_bytes())
    }

    // Chi-square critical value for 63 degrees of freedom at p = 0.001.
    const CHI2_63_P001: f64 = 103.4;

    #[test]
    fn balance_10k_server_keys_over_64() {
        // 10,000 keys over 64 partitions is ~156 per partition with a standard
        // deviation of ~12.4. For an ideal uniform hash the expected max/min
        // ratio at this size is ~1.47 (simulated: 1.32..1.74), so a `< 1.3`
        // bound is unattainable here; uniformity is checked with a
        // chi-square test instead, and max/min against a bound that an
        // ideal hash meets. The tighter `< 1.3` bound is checked at 100k keys.
        let counts = histogram(server_keys(10_000), 64);
        let chi2 = chi_square(&counts);
        assert!(chi2 < CHI2_63_P001, "chi2 = {chi2}: {counts:?}");
        let ratio = max_min_ratio(&counts);
        assert!(ratio < 1.6, "max/min = {ratio}: {counts:?}");
    }

    #[test]
    fn balance_100k_server_keys_over_64() {
        let counts = histogram(server_keys(100_000), 64);
        let ratio = max_min_ratio(&counts);
        assert!(ratio < 1.3, "max/min = {ratio}: {counts:?}");
        let chi2 = chi_square(&counts);
        assert!(chi2 < CHI2_63_P001, "chi2 = {chi2}: {counts:?}");
    }

    #[test]
    fn balance_counter_ids_over_64() {
        // Sixteen-byte keys that differ only in their low bytes: the shape
        // FNV alone handles worst.
        let keys = (0u64..100_000).map(|i| {
            let mut id = [0u8; 16];
            id[8..].copy_from_slice(&i.to_be_bytes());
            id.to_vec()
        });
        let counts = histogram(keys, 64);
        assert!(max_min_ratio(&counts) < 1.3, "{counts:?}");
        let chi2 = chi_square(&counts);
        assert!(chi2 < CHI2_63_P001, "chi2 = {chi2}: {counts:?}");
    }

    #[test]
    #[cfg(not(debug_assertions))]
    fn zero_shards_returns_zero_in_release() {
        assert_eq!(shard_for(b"x", 0), 0);
    }

    #[test]
    #[cfg(debug_assertions)]
    #[should_panic(expected = "zero shards")]
    fn zero_shards_is_a_programming_error() {
        let _ = shard_for(b"x", 0);
    }
}
