//! Real time for the engine: a monotonic clock mapped onto the engine's `Instant`
//! (nanoseconds since the daemon started). The daemon always passes the current time, never
//! the deadline it slept until.

use ocala_engine::Instant;

/// The daemon's clock.
pub struct Clock {
    origin: std::time::Instant,
}

impl Clock {
    pub fn new() -> Clock {
        Clock {
            origin: std::time::Instant::now(),
        }
    }

    /// Now, in engine time.
    pub fn now(&self) -> Instant {
        Instant::from_nanos(u64::try_from(self.origin.elapsed().as_nanos()).unwrap_or(u64::MAX))
    }

    /// How long from now until `deadline`, for the poll timeout; `None` when idle.
    pub fn until(&self, deadline: Instant) -> Option<std::time::Duration> {
        (deadline != Instant::MAX).then(|| deadline.since(self.now()))
    }
}

impl Default for Clock {
    fn default() -> Self {
        Clock::new()
    }
}
