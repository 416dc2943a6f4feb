//! Where a scaler falls among the operator's work, from a stable hash of `namespace/name`: its
//! shard (`operator::shards`) and the minute of the interval at which it recalibrates. Every
//! replica of every version, and the kubectl plugin that shows what the operator would do, must
//! agree on both, so the hash is FNV-1a (64 bits, the `fnv` crate), not std's `DefaultHasher`,
//! whose algorithm may change between releases, nor a seeded one.

use std::hash::Hasher;

use chrono::Duration;

use crate::planning::calibration::Record;
use crate::planning::forecast::ModelConfig;

/// FNV-1a of `namespace/name`.
pub fn scaler_hash(namespace: &str, name: &str) -> u64 {
    let mut hasher = fnv::FnvHasher::default();
    hasher.write(namespace.as_bytes());
    hasher.write(b"/");
    hasher.write(name.as_bytes());
    hasher.finish()
}

/// Where in each `interval` the scaler `namespace/name` recalibrates: spread evenly, so that a
/// thousand scalers started together do not all forecast their week again at the same minute.
/// FNV-1a's bits are mixed first (MurmurHash3's 64-bit finalizer): names that differ in their
/// last characters (`web-1`, `web-2`) differ in few of its upper bits, and its lowest bits are
/// the shard's; mixed, the offset follows neither.
pub fn recalibrate_offset(namespace: &str, name: &str, interval: Duration) -> Duration {
    let minutes = interval.num_minutes().max(1) as u64;
    Duration::minutes((fmix64(scaler_hash(namespace, name)) % minutes) as i64)
}

/// MurmurHash3's finalizer: every bit of the result depends on every bit of `h`.
fn fmix64(mut h: u64) -> u64 {
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^ (h >> 33)
}

/// The model a scaler's planner runs on: `base` with the scaler's recalibration offset. The
/// operator and the plugin's plan and backtest of a scaler use it, so that they calibrate at the
/// same minutes.
pub fn scaler_model(base: &ModelConfig, namespace: &str, name: &str) -> ModelConfig {
    ModelConfig {
        recalibrate_offset: recalibrate_offset(namespace, name, base.recalibrate_interval),
        ..base.clone()
    }
}

/// The operator's model for a scaler: `scaler_model`, with the record recomputed at each
/// boundary rather than kept (`Record::Recomputed`: the same calibrations, a fiftieth of the
/// memory, for a week of forecasts a scaler an interval).
pub fn operator_model(base: &ModelConfig, namespace: &str, name: &str) -> ModelConfig {
    ModelConfig {
        record: Record::Recomputed,
        ..scaler_model(base, namespace, name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_spread_over_the_interval_and_do_not_move() {
        let interval = Duration::minutes(180);
        let offsets: Vec<i64> = (0..1000)
            .map(|i| recalibrate_offset("tenant", &format!("scaler-{i}"), interval).num_minutes())
            .collect();
        assert!(offsets.iter().all(|m| (0..180).contains(m)));
        // A thousand scalers over 180 minutes: about 5.6 a minute; none holds five times that.
        let mut per_minute = [0usize; 180];
        for &m in &offsets {
            per_minute[m as usize] += 1;
        }
        let busiest = per_minute.iter().max().copied().unwrap_or(0);
        let used = per_minute.iter().filter(|&&n| n > 0).count();
        assert!(
            busiest <= 17 && used >= 170,
            "busiest {busiest}, minutes used {used}"
        );
        // Nor do they follow the shard: the scalers of shard 0 of 2 take odd minutes too.
        let odd_in_shard_0 = (0..1000)
            .map(|i| format!("scaler-{i}"))
            .filter(|n| crate::operator::shards::shard_of("tenant", n, 2) == 0)
            .filter(|n| recalibrate_offset("tenant", n, interval).num_minutes() % 2 == 1)
            .count();
        assert!((150..350).contains(&odd_in_shard_0), "{odd_in_shard_0}");
        // Stable: the same name, the same minute, in this process and any other.
        assert_eq!(scaler_hash("payments", "checkout"), 0x8967_2a17_8614_05d7);
    }
}
