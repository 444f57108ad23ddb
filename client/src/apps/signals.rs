//! SIGINT, SIGTERM and SIGHUP as flags the utilities poll.
//!
//! Upstream's apps `signal.Notify` these into channels: SIGINT/SIGTERM start a drain (stop
//! taking messages, answer the ones in hand, close), SIGHUP makes nsq_to_file close and reopen
//! its files. Here each signal sets an atomic flag (signal-hook's `flag::register`, which is
//! async-signal-safe); a second SIGINT or SIGTERM during a drain ends the process at once with
//! status 1, for a drain that cannot finish.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};

/// How often [`Signals::sleep`] looks at the flags.
const POLL: Duration = Duration::from_millis(20);

/// The signal flags of this process.
#[derive(Debug, Clone)]
pub struct Signals {
    term: Arc<AtomicBool>,
    hup: Arc<AtomicBool>,
}

impl Signals {
    /// Installs the handlers.
    ///
    /// # Errors
    /// The OS error text when a handler cannot be installed.
    pub fn install() -> Result<Signals, String> {
        let signals = Signals {
            term: Arc::new(AtomicBool::new(false)),
            hup: Arc::new(AtomicBool::new(false)),
        };
        for signal in [SIGINT, SIGTERM] {
            // Registered first, so it sees the flag as it was before this signal: set means
            // this is the second one.
            signal_hook::flag::register_conditional_shutdown(signal, 1, signals.term.clone())
                .and_then(|_| signal_hook::flag::register(signal, signals.term.clone()))
                .map_err(|e| format!("installing the signal handler: {e}"))?;
        }
        signal_hook::flag::register(SIGHUP, signals.hup.clone())
            .map_err(|e| format!("installing the signal handler: {e}"))?;
        Ok(signals)
    }

    /// Flags not tied to any signal (for tests and for running a utility in-process).
    pub fn detached() -> Signals {
        Signals {
            term: Arc::new(AtomicBool::new(false)),
            hup: Arc::new(AtomicBool::new(false)),
        }
    }

    /// Whether SIGINT or SIGTERM arrived (or [`Signals::terminate`] was called).
    pub fn terminated(&self) -> bool {
        self.term.load(Ordering::SeqCst)
    }

    /// Sets the termination flag, as a signal would (a utility that finished its work).
    pub fn terminate(&self) {
        self.term.store(true, Ordering::SeqCst);
    }

    /// Whether SIGHUP arrived since the last call.
    pub fn take_hup(&self) -> bool {
        self.hup.swap(false, Ordering::SeqCst)
    }

    /// Sleeps for `duration`, returning early (true) when a termination was asked for.
    pub fn sleep(&self, duration: Duration) -> bool {
        let deadline = Instant::now() + duration;
        loop {
            if self.terminated() {
                return true;
            }
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            std::thread::sleep((deadline - now).min(POLL));
        }
    }
}
