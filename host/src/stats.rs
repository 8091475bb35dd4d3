//! Counters since start, for `/status` and `/metrics`. Plain atomics: they
//! are bumped on hot paths and read rarely.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Sensor-wide counters.
#[derive(Debug, Default)]
pub struct Stats {
    pub sessions: AtomicU64,
    pub sessions_active: AtomicU64,
    pub messages: AtomicU64,
    pub recipients: AtomicU64,
    pub bytes_in: AtomicU64,
    pub bytes_out: AtomicU64,
    pub traps: AtomicU64,
    pub refused: AtomicU64,
    pub splices: AtomicU64,
}

impl Stats {
    pub fn count_message(&self, recipients: u64) {
        self.messages.fetch_add(1, Relaxed);
        self.recipients.fetch_add(recipients, Relaxed);
    }

    /// A consistent-enough snapshot for a status page.
    pub fn snapshot(&self) -> StatsSnapshot {
        StatsSnapshot {
            sessions: self.sessions.load(Relaxed),
            sessions_active: self.sessions_active.load(Relaxed),
            messages: self.messages.load(Relaxed),
            recipients: self.recipients.load(Relaxed),
            bytes_in: self.bytes_in.load(Relaxed),
            bytes_out: self.bytes_out.load(Relaxed),
            traps: self.traps.load(Relaxed),
            refused: self.refused.load(Relaxed),
            splices: self.splices.load(Relaxed),
        }
    }
}

/// [`Stats`] read at one moment.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct StatsSnapshot {
    pub sessions: u64,
    pub sessions_active: u64,
    pub messages: u64,
    pub recipients: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub traps: u64,
    pub refused: u64,
    pub splices: u64,
}
