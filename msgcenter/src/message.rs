//! What the application hands the center ([`Message`]), what it gets back
//! ([`Outcome`]), and what a handler receives ([`Received`]).
//!
//! The rule the whole crate is built around: every posted message ends in
//! exactly one [`Outcome`], given to its callback. The callback lives in a
//! [`Report`] that travels with the message; reporting consumes it, and
//! dropping a message that was never reported (the loop stopped, a post to
//! a stopped center) reports [`FailReason::Shutdown`] from `Drop`, so no
//! code path can lose a message silently.

use crate::stats::StatsCell;
use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// A message's unique id (per sending node; the center assigns one when the
/// application does not).
pub type MsgId = u64;

/// Called once with the message's id and outcome, on the center's loop
/// thread (or, for a post to a center that already stopped, on the posting
/// thread).
pub type Callback = Box<dyn FnOnce(MsgId, Outcome) + Send>;

/// How a posted message ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// A plain message was handed to the kernel in full (no delivery
    /// guarantee beyond that: plain messages are not retried).
    Written,
    /// A NeedAck message was acknowledged: the receiver's handler returned.
    /// `duplicate`: an earlier copy had been handled (a retry crossed the
    /// ack); the handler ran once either way.
    Acked {
        /// The receiver had already handled this id.
        duplicate: bool,
    },
    /// The message failed; the application decides what to do.
    Failed(FailReason),
}

/// Why a message failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FailReason {
    /// No connection to the peer could be made (refused, timed out, no
    /// handshake) before the message had to be given up.
    Unreachable,
    /// A NeedAck message was sent `1 + max_retries` times without an ack.
    RetriesExhausted,
    /// The message's deadline passed before it was written (plain) or
    /// acknowledged (NeedAck).
    DeadlineExceeded,
    /// The peer's backlog was over its high-water mark; the message was
    /// refused at once.
    Backlog,
    /// The peer broke the protocol (bad handshake, checksum, frame).
    Protocol,
    /// The receiver restarted after this NeedAck message was sent to it
    /// and before it was acknowledged: the old process may or may not have
    /// handled it. Not retried, so it is never handled twice.
    PeerRestarted,
    /// The receiver has no handler for the message type (NeedAck only).
    NoHandler,
    /// The body is larger than the sender's or the receiver's limit.
    TooLarge,
    /// The center shut down first.
    Shutdown,
    /// Posted by a handler that then panicked: not sent (the message it
    /// was handling was not acknowledged, and its retry runs the handler
    /// again).
    HandlerPanicked,
}

impl FailReason {
    /// Every reason, for counters.
    pub const ALL: [FailReason; 10] = [
        FailReason::Unreachable,
        FailReason::RetriesExhausted,
        FailReason::DeadlineExceeded,
        FailReason::Backlog,
        FailReason::Protocol,
        FailReason::PeerRestarted,
        FailReason::NoHandler,
        FailReason::TooLarge,
        FailReason::Shutdown,
        FailReason::HandlerPanicked,
    ];

    pub(crate) fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for FailReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FailReason::Unreachable => "peer unreachable",
            FailReason::RetriesExhausted => "retries exhausted",
            FailReason::DeadlineExceeded => "deadline exceeded",
            FailReason::Backlog => "peer backlog over its high-water mark",
            FailReason::Protocol => "protocol error",
            FailReason::PeerRestarted => "receiver restarted before acknowledging",
            FailReason::NoHandler => "receiver has no handler for the type",
            FailReason::TooLarge => "body too large",
            FailReason::Shutdown => "center shut down",
            FailReason::HandlerPanicked => "posted by a handler that panicked",
        })
    }
}

/// Message flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Flags {
    /// The receiver acknowledges after its handler returns; the sender
    /// retries until then (see [`Retry`]).
    pub need_ack: bool,
    /// Sent before the peer's normal messages (FIFO among urgent ones).
    pub urgent: bool,
}

/// The retry schedule of a NeedAck message: sent again every `interval`
/// until acknowledged, at most `max_retries` more times, and given up when
/// `deadline` passes - whichever comes first. Plain messages use only
/// `deadline`: not written by then, they fail. The deadline counts from
/// the loop turn in which the center takes the post (the loop's cached
/// time, `netlib::Context::now`), which is the turn the post woke or the
/// one after.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retry {
    /// Between two sends of an unacknowledged message.
    pub interval: Duration,
    /// Sends after the first.
    pub max_retries: u32,
    /// From the post (as the loop takes it) to giving up.
    pub deadline: Duration,
}

/// A message to post. Build with [`Message::new`] and the setters.
///
/// ```
/// use msgcenter::{Message, Outcome};
/// let msg = Message::new("127.0.0.1:7000".parse().unwrap(), 7, b"order 1".to_vec())
///     .need_ack()
///     .urgent()
///     .on_done(|id, outcome| println!("message {id}: {outcome:?}"));
/// assert!(msg.flags.need_ack && msg.flags.urgent);
/// ```
pub struct Message {
    /// The peer's listen address.
    pub to: SocketAddr,
    /// The application's type; selects the receiver's handler.
    pub msg_type: u32,
    /// NeedAck, urgent.
    pub flags: Flags,
    /// Unique id; `None`: the center assigns one.
    pub id: Option<MsgId>,
    /// The payload.
    pub body: Vec<u8>,
    /// Retry schedule; `None`: the center's defaults.
    pub retry: Option<Retry>,
    pub(crate) done: Option<Callback>,
}

impl Message {
    /// A plain message of `msg_type` to `to`.
    pub fn new(to: SocketAddr, msg_type: u32, body: impl Into<Vec<u8>>) -> Message {
        Message {
            to,
            msg_type,
            flags: Flags::default(),
            id: None,
            body: body.into(),
            retry: None,
            done: None,
        }
    }

    /// Asks for an acknowledgement (with retries and receiver-side dedup).
    pub fn need_ack(mut self) -> Message {
        self.flags.need_ack = true;
        self
    }

    /// Queues it before the peer's normal messages.
    pub fn urgent(mut self) -> Message {
        self.flags.urgent = true;
        self
    }

    /// Uses the application's own unique id (unique per sending node; the
    /// receiver deduplicates on it).
    pub fn with_id(mut self, id: MsgId) -> Message {
        self.id = Some(id);
        self
    }

    /// Uses this retry schedule instead of the center's default.
    pub fn with_retry(mut self, retry: Retry) -> Message {
        self.retry = Some(retry);
        self
    }

    /// Sets the completion callback (called exactly once).
    pub fn on_done(mut self, f: impl FnOnce(MsgId, Outcome) + Send + 'static) -> Message {
        self.done = Some(Box::new(f));
        self
    }
}

impl Drop for Message {
    /// A message dropped with its callback unused - a handler's post whose
    /// result never reached a stopped center - reports `Shutdown`.
    fn drop(&mut self) {
        if let Some(done) = self.done.take() {
            done(self.id.unwrap_or(0), Outcome::Failed(FailReason::Shutdown));
        }
    }
}

impl fmt::Debug for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Message")
            .field("to", &self.to)
            .field("msg_type", &self.msg_type)
            .field("flags", &self.flags)
            .field("id", &self.id)
            .field("body_len", &self.body.len())
            .field("retry", &self.retry)
            .field("callback", &self.done.is_some())
            .finish()
    }
}

/// A message as a handler sees it.
#[derive(Debug, Clone, Copy)]
pub struct Received<'a> {
    /// The sender's listen address: post replies here.
    pub from: SocketAddr,
    /// The address the sender posted to.
    pub to: SocketAddr,
    /// The type.
    pub msg_type: u32,
    /// The sender's unique id.
    pub id: MsgId,
    /// NeedAck, urgent.
    pub flags: Flags,
    /// The payload (checksum verified).
    pub body: &'a [u8],
}

/// The one-shot outcome report of a message. See the module docs.
pub(crate) struct Report {
    id: MsgId,
    done: Option<Callback>,
    stats: Arc<StatsCell>,
    reported: bool,
}

impl Report {
    pub(crate) fn new(id: MsgId, done: Option<Callback>, stats: Arc<StatsCell>) -> Report {
        Report {
            id,
            done,
            stats,
            reported: false,
        }
    }

    /// Reports `outcome` (once; the report is consumed).
    pub(crate) fn finish(mut self, outcome: Outcome) {
        self.deliver(outcome);
    }

    fn deliver(&mut self, outcome: Outcome) {
        self.reported = true;
        self.stats.count(outcome);
        if let Outcome::Failed(reason) = outcome {
            log::debug!("msgcenter: message {} failed: {reason}", self.id);
        }
        if let Some(done) = self.done.take() {
            done(self.id, outcome);
        }
    }
}

impl Drop for Report {
    fn drop(&mut self) {
        if !self.reported {
            self.deliver(Outcome::Failed(FailReason::Shutdown));
        }
    }
}
