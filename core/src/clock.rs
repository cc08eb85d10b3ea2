//! Time, behind a small trait: native targets read the system clock; wasm32 has no clock of its
//! own, so the host (the WASM binding) supplies one.

/// A source of wall-clock time.
pub trait Clock: Send + Sync + 'static {
    /// Nanoseconds since the unix epoch.
    fn now_unix_nanos(&self) -> u64;

    /// Re-aligns a derived clock with the system clock; the batcher calls it on every wake-up.
    fn resync(&self) {}
}

/// The default native clock: the CPU's time-stamp counter (via `quanta`, ≈ 10 ns a read here
/// against ≈ 40 ns for `SystemTime::now`), anchored to the system clock and re-anchored by the
/// batcher at least once per scheduled delay, so NTP adjustments reach span times within a second.
/// Where the TSC is unusable, `quanta` falls back to the OS monotonic clock by itself.
#[cfg(not(target_arch = "wasm32"))]
#[derive(Debug)]
pub struct TscClock {
    clock: quanta::Clock,
    anchor_raw: u64,
    anchor_unix: std::sync::atomic::AtomicU64,
}

#[cfg(not(target_arch = "wasm32"))]
impl TscClock {
    /// Calibrates (once per process) and anchors to the system clock now.
    pub fn new() -> Self {
        let clock = quanta::Clock::new();
        let anchor_raw = clock.raw();
        let c = Self { clock, anchor_raw, anchor_unix: std::sync::atomic::AtomicU64::new(0) };
        c.resync();
        c
    }
}

#[cfg(not(target_arch = "wasm32"))]
impl Default for TscClock {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(not(target_arch = "wasm32"))]
impl Clock for TscClock {
    #[inline]
    fn now_unix_nanos(&self) -> u64 {
        // One relaxed load: the anchor is a single word, so readers never see a torn update.
        let base = self.anchor_unix.load(std::sync::atomic::Ordering::Relaxed);
        base.wrapping_add(self.clock.delta_as_nanos(self.anchor_raw, self.clock.raw()))
    }

    fn resync(&self) {
        let unix = SystemClock.now_unix_nanos();
        let elapsed = self.clock.delta_as_nanos(self.anchor_raw, self.clock.raw());
        self.anchor_unix.store(unix.wrapping_sub(elapsed), std::sync::atomic::Ordering::Relaxed);
    }
}

/// The operating system's clock (`SystemTime`), one vDSO read and no syscall on Linux.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_unix_nanos(&self) -> u64 {
        #[cfg(not(all(target_arch = "wasm32", target_os = "unknown")))]
        {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
        }
        // `SystemTime::now` panics on wasm32-unknown-unknown; a host clock must be configured there.
        #[cfg(all(target_arch = "wasm32", target_os = "unknown"))]
        {
            0
        }
    }
}

/// A clock built from a closure, e.g. `Date.now()` in the WASM binding.
pub struct FnClock<F>(pub F);

impl<F: Fn() -> u64 + Send + Sync + 'static> Clock for FnClock<F> {
    fn now_unix_nanos(&self) -> u64 {
        (self.0)()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn system_clock_is_after_2020() {
        assert!(SystemClock.now_unix_nanos() > 1_577_836_800_000_000_000);
    }

    #[test]
    fn tsc_clock_tracks_the_system_clock() {
        let tsc = TscClock::new();
        for _ in 0..3 {
            let (a, b) = (tsc.now_unix_nanos(), SystemClock.now_unix_nanos());
            assert!(a.abs_diff(b) < 5_000_000, "{a} vs {b}");
            std::thread::sleep(std::time::Duration::from_millis(20));
            tsc.resync();
        }
        let (x, y) = (tsc.now_unix_nanos(), tsc.now_unix_nanos());
        assert!(y >= x);
    }

    #[test]
    fn fn_clock_calls_the_closure() {
        assert_eq!(FnClock(|| 42).now_unix_nanos(), 42);
    }
}
