//! Counters of a center, readable from any thread ([`Stats`] is a snapshot).
//! Every outcome is counted where it is reported, so `posted` always equals
//! the sum of the outcomes plus what is still outstanding.

use crate::message::{FailReason, Outcome};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// A snapshot of a center's counters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    /// Messages posted (accepted by `post`, whatever became of them).
    pub posted: u64,
    /// Plain messages written to the kernel.
    pub written: u64,
    /// NeedAck messages acknowledged.
    pub acked: u64,
    /// Of those, acknowledged as duplicates.
    pub acked_duplicate: u64,
    /// Failed messages, by reason (indexed like [`FailReason::ALL`]).
    pub failed: [u64; 10],
    /// Messages received and given to a handler.
    pub handled: u64,
    /// NeedAck messages received again after being handled (not handled
    /// again; acknowledged as duplicates).
    pub duplicates: u64,
    /// Received messages that no handler was registered for.
    pub unhandled: u64,
    /// Received messages whose handler panicked (not acknowledged; see
    /// the `Handlers` docs).
    pub handler_panics: u64,
    /// Connections closed for breaking the protocol.
    pub protocol_errors: u64,
    /// Connections that completed the handshake.
    pub connections: u64,
    /// Frames sent again after no ack came.
    pub retransmits: u64,
}

impl Stats {
    /// Failed messages with `reason`.
    pub fn failed_with(&self, reason: FailReason) -> u64 {
        self.failed[reason.index()]
    }

    /// All failed messages.
    pub fn failed_total(&self) -> u64 {
        self.failed.iter().sum()
    }

    /// Messages that have an outcome.
    pub fn finished(&self) -> u64 {
        self.written + self.acked + self.failed_total()
    }
}

/// The live counters.
#[derive(Debug, Default)]
pub(crate) struct StatsCell {
    pub(crate) posted: AtomicU64,
    written: AtomicU64,
    acked: AtomicU64,
    acked_duplicate: AtomicU64,
    failed: [AtomicU64; 10],
    pub(crate) handled: AtomicU64,
    pub(crate) duplicates: AtomicU64,
    pub(crate) unhandled: AtomicU64,
    pub(crate) handler_panics: AtomicU64,
    pub(crate) protocol_errors: AtomicU64,
    pub(crate) connections: AtomicU64,
    pub(crate) retransmits: AtomicU64,
}

impl StatsCell {
    pub(crate) fn count(&self, outcome: Outcome) {
        match outcome {
            Outcome::Written => self.written.fetch_add(1, Relaxed),
            Outcome::Acked { duplicate } => {
                if duplicate {
                    self.acked_duplicate.fetch_add(1, Relaxed);
                }
                self.acked.fetch_add(1, Relaxed)
            }
            Outcome::Failed(reason) => self.failed[reason.index()].fetch_add(1, Relaxed),
        };
    }

    pub(crate) fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Relaxed);
    }

    pub(crate) fn snapshot_unhandled(&self) -> u64 {
        self.unhandled.load(Relaxed)
    }

    pub(crate) fn snapshot(&self) -> Stats {
        Stats {
            posted: self.posted.load(Relaxed),
            written: self.written.load(Relaxed),
            acked: self.acked.load(Relaxed),
            acked_duplicate: self.acked_duplicate.load(Relaxed),
            failed: std::array::from_fn(|i| self.failed[i].load(Relaxed)),
            handled: self.handled.load(Relaxed),
            duplicates: self.duplicates.load(Relaxed),
            unhandled: self.unhandled.load(Relaxed),
            handler_panics: self.handler_panics.load(Relaxed),
            protocol_errors: self.protocol_errors.load(Relaxed),
            connections: self.connections.load(Relaxed),
            retransmits: self.retransmits.load(Relaxed),
        }
    }
}
