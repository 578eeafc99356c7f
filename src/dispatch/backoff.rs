//! The retry schedule: a pure function, so every worker computes the same delay and the database
//! adds it to its own clock.

use std::time::Duration;

/// Delay before the next attempt after a failure, given the attempts made *before* the one that
/// just failed: `min(max, min * 2^attempts_before)` seconds, as the original (jpillora/backoff,
/// factor 2, no jitter). When `min >= max` the delay is `max`. Never overflows.
pub fn delay(attempts_before: i32, min_secs: i32, max_secs: i32) -> Duration {
    let min = u64::try_from(min_secs).unwrap_or(0);
    let max = u64::try_from(max_secs).unwrap_or(0);
    if min >= max {
        return Duration::from_secs(max);
    }
    let exponent = u32::try_from(attempts_before).unwrap_or(0);
    let factor = 2u64.checked_pow(exponent).unwrap_or(u64::MAX);
    Duration::from_secs(min.saturating_mul(factor).clamp(min, max))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seed_schedule_min_10_max_60() {
        let schedule: Vec<u64> = (0..6).map(|k| delay(k, 10, 60).as_secs()).collect();
        assert_eq!(schedule, [10, 20, 40, 60, 60, 60]);
    }

    #[test]
    fn min_at_or_above_max_is_always_max() {
        assert_eq!(delay(0, 60, 60), Duration::from_secs(60));
        assert_eq!(delay(3, 90, 60), Duration::from_secs(60));
    }

    #[test]
    fn huge_attempt_counts_saturate_at_max() {
        assert_eq!(delay(63, 1, 604_800), Duration::from_secs(604_800));
        assert_eq!(delay(1000, 86_400, 604_800), Duration::from_secs(604_800));
        assert_eq!(delay(i32::MAX, 1, 2), Duration::from_secs(2));
    }

    #[test]
    fn negative_attempts_give_min() {
        assert_eq!(delay(-3, 10, 60), Duration::from_secs(10));
    }
}
