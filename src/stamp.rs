//! A point in time in 8 bytes: microseconds since the process's first use
//! of this clock. An idle TCP session is mostly its timestamps and buffers'
//! bookkeeping, and `Instant` takes 16 bytes (24 in an `Option` beside
//! other fields); three of them were a fifth of an idle session.

use std::num::NonZeroU64;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

static EPOCH: OnceLock<Instant> = OnceLock::new();

/// A moment at microsecond resolution. Never zero, so `Option<Stamp>` is
/// 8 bytes too. Covers 584,000 years from the epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Stamp(NonZeroU64);

impl Stamp {
    /// `at`, rounded down to the microsecond. A moment before the epoch
    /// (an `Instant` taken before the first stamp) counts as the epoch.
    pub fn at(at: Instant) -> Stamp {
        let epoch = *EPOCH.get_or_init(|| at);
        let micros = at.saturating_duration_since(epoch).as_micros();
        Stamp(NonZeroU64::MIN.saturating_add(u64::try_from(micros).unwrap_or(u64::MAX - 1)))
    }

    /// Time from this stamp to `now` (zero when `now` is earlier).
    pub fn elapsed_to(self, now: Instant) -> Duration {
        let then = self.0.get() - 1;
        let now = Stamp::at(now).0.get() - 1;
        Duration::from_micros(now.saturating_sub(then))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_microseconds_and_fits_an_option_in_eight_bytes() {
        let t0 = Instant::now();
        let s = Stamp::at(t0);
        assert_eq!(s.elapsed_to(t0 + Duration::from_micros(1_234_567)), Duration::from_micros(1_234_567));
        assert_eq!(s.elapsed_to(t0), Duration::ZERO);
        // Earlier "now" (clocks read in another order): zero, not a panic.
        let later = Stamp::at(t0 + Duration::from_secs(5));
        assert_eq!(later.elapsed_to(t0), Duration::ZERO);
        assert!(later > s);
        assert_eq!(size_of::<Option<Stamp>>(), 8);
    }
}
