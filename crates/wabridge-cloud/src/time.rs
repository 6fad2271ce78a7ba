//! Injectable time: a [`Clock`] to read the time and a [`Sleeper`] to wait.
//!
//! The rate limiter reads time only through the `now` it is given (or a [`Clock`]), and the retry policy waits
//! only through a [`Sleeper`], so tests run instantly: [`ManualClock`] is both, and sleeping on it just moves
//! its time forward and records how long was asked for.

use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use futures_util::future::BoxFuture;

/// A source of the current time.
pub trait Clock: Send + Sync + 'static {
    /// The current instant.
    fn now(&self) -> Instant;
}

/// Something that can wait for a duration. The retry policy waits through it.
pub trait Sleeper: Send + Sync + 'static {
    /// Waits for `duration`.
    fn sleep(&self, duration: Duration) -> BoxFuture<'static, ()>;
}

/// The real clock: [`Instant::now`].
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Instant {
        Instant::now()
    }
}

/// The real sleeper: [`tokio::time::sleep`].
#[derive(Debug, Clone, Copy, Default)]
pub struct TokioSleeper;

impl Sleeper for TokioSleeper {
    fn sleep(&self, duration: Duration) -> BoxFuture<'static, ()> {
        Box::pin(tokio::time::sleep(duration))
    }
}

/// A clock that moves only when told to, and a sleeper that returns at once after moving it forward.
/// Every requested sleep is recorded, so a test can assert how long a retry waited without waiting.
/// Clones share the same time and record.
#[derive(Clone)]
pub struct ManualClock {
    inner: Arc<Mutex<ManualState>>,
}

struct ManualState {
    now: Instant,
    sleeps: Vec<Duration>,
}

impl ManualClock {
    /// A clock standing at the current real instant.
    #[must_use]
    pub fn new() -> Self {
        Self::starting_at(Instant::now())
    }

    /// A clock standing at `start`.
    #[must_use]
    pub fn starting_at(start: Instant) -> Self {
        Self { inner: Arc::new(Mutex::new(ManualState { now: start, sleeps: Vec::new() })) }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, ManualState> {
        // The state stays consistent whatever panicked while holding it: it is two plain fields.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Moves the clock forward.
    pub fn advance(&self, by: Duration) {
        let mut s = self.state();
        s.now += by;
    }

    /// Every duration slept so far, in order.
    #[must_use]
    pub fn sleeps(&self) -> Vec<Duration> {
        self.state().sleeps.clone()
    }
}

impl Default for ManualClock {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for ManualClock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.state();
        f.debug_struct("ManualClock").field("sleeps", &s.sleeps).finish_non_exhaustive()
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Instant {
        self.state().now
    }
}

impl Sleeper for ManualClock {
    fn sleep(&self, duration: Duration) -> BoxFuture<'static, ()> {
        {
            let mut s = self.state();
            s.now += duration;
            s.sleeps.push(duration);
        }
        Box::pin(std::future::ready(()))
    }
}
