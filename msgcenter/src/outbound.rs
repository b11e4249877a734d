//! [`Held`]: a posted message while the center holds it - its encoded
//! frame, its schedule and its one-shot [`Report`] - and [`Info`], the
//! immutable facts needed to build one on any thread (so a posting thread
//! encodes its own frames and the loop only moves bytes).

use crate::frame::{self, Header, Kind, FLAG_NEED_ACK, FLAG_URGENT};
use crate::message::{FailReason, Message, MsgId, Outcome, Report, Retry};
use crate::stats::StatsCell;
use netlib::Handle;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

/// Assigns message ids: a counter that starts at the wall clock in
/// nanoseconds, so ids of a restarted node (same `node_id`) do not repeat
/// the previous run's as long as it posted fewer than 10^9 per second.
#[derive(Debug)]
pub(crate) struct IdGen(AtomicU64);

impl IdGen {
    pub(crate) fn new() -> IdGen {
        let start = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1);
        IdGen(AtomicU64::new(start))
    }

    pub(crate) fn next(&self) -> MsgId {
        self.0.fetch_add(1, Ordering::Relaxed)
    }
}

/// What every thread needs to turn a [`Message`] into a [`Held`].
#[derive(Debug)]
pub(crate) struct Info {
    /// This node's advertised address (every frame's `from`); changed by
    /// `CenterHandle::set_advertised`.
    pub(crate) advertised: RwLock<SocketAddr>,
    pub(crate) max_body: usize,
    pub(crate) retry: Retry,
    pub(crate) stats: Arc<StatsCell>,
    pub(crate) ids: IdGen,
}

impl Info {
    /// The advertised address now.
    pub(crate) fn from(&self) -> SocketAddr {
        *self.advertised.read().unwrap_or_else(|p| p.into_inner())
    }
}

/// A message the center holds until its outcome. See the module docs.
pub(crate) struct Held {
    pub(crate) id: MsgId,
    pub(crate) to: SocketAddr,
    pub(crate) need_ack: bool,
    pub(crate) urgent: bool,
    /// Header and body, ready to write (again).
    pub(crate) frame: Vec<u8>,
    pub(crate) retry: Retry,
    /// Give up at this time.
    pub(crate) deadline: Instant,
    /// Times sent.
    pub(crate) sends: u32,
    pub(crate) last_send: Option<Instant>,
    /// The connection of the last send.
    pub(crate) sent_on: Option<Handle>,
    /// The receiver's incarnation at the last send.
    pub(crate) sent_to: Option<u64>,
    pub(crate) report: Report,
}

impl Held {
    /// Validates and encodes `msg`. A message that cannot be sent at all is
    /// reported here and `None` returned.
    pub(crate) fn new(mut msg: Message, info: &Info, now: Instant) -> Option<Held> {
        let id = msg.id.unwrap_or_else(|| info.ids.next());
        StatsCell::bump(&info.stats.posted);
        let report = Report::new(id, msg.done.take(), info.stats.clone());
        if msg.body.len() > info.max_body {
            report.finish(Outcome::Failed(FailReason::TooLarge));
            return None;
        }
        let retry = msg.retry.unwrap_or(info.retry);
        let mut flags = 0;
        if msg.flags.need_ack {
            flags |= FLAG_NEED_ACK;
        }
        if msg.flags.urgent {
            flags |= FLAG_URGENT;
        }
        let header = Header {
            kind: Kind::Data,
            flags,
            id,
            msg_type: msg.msg_type,
            from: info.from(),
            to: msg.to,
        };
        let mut frame = Vec::new();
        if frame::encode_frame(&mut frame, &header, &msg.body).is_err() {
            report.finish(Outcome::Failed(FailReason::TooLarge));
            return None;
        }
        Some(Held {
            id,
            to: msg.to,
            need_ack: msg.flags.need_ack,
            urgent: msg.flags.urgent,
            frame,
            retry,
            deadline: now + retry.deadline,
            sends: 0,
            last_send: None,
            sent_on: None,
            sent_to: None,
            report,
        })
    }

    /// When it was posted (the `now` given to [`Held::new`]), while it has
    /// not been sent: lets the loop note a peer's use without reading the
    /// clock again per message.
    pub(crate) fn posted_at(&self) -> Instant {
        debug_assert_eq!(self.sends, 0);
        self.deadline
            .checked_sub(self.retry.deadline)
            .unwrap_or(self.deadline)
    }

    /// Bytes it holds.
    pub(crate) fn size(&self) -> usize {
        self.frame.len()
    }

    /// Body bytes, for the receiver's limit.
    pub(crate) fn body_len(&self) -> usize {
        self.frame.len() - frame::HEADER_LEN
    }

    /// Records a send on `h` to the receiver incarnation `to`; the first
    /// send also caps the deadline by the receiver's dedup window, so no
    /// retry arrives after the receiver forgot the id.
    pub(crate) fn sent(&mut self, h: Handle, to: Option<u64>, window: Duration, now: Instant) {
        if self.sends == 0 {
            self.deadline = self.deadline.min(now + window);
        }
        self.sends += 1;
        self.last_send = Some(now);
        self.sent_on = Some(h);
        self.sent_to = to;
    }

    /// Whether an unacknowledged NeedAck message is due to be sent again.
    pub(crate) fn retry_due(&self, now: Instant) -> bool {
        self.last_send
            .is_some_and(|t| now >= t + self.retry.interval)
    }

    pub(crate) fn finish(self, outcome: Outcome) {
        self.report.finish(outcome);
    }
}
