//! [`Held`]: a posted message while the center holds it - its body and
//! the body's checksum, its schedule and its one-shot [`Report`] - and
//! [`Info`], the immutable facts needed to build one on any thread. The
//! posting thread checksums the body (the costly part of a frame); the loop
//! encodes the 64-byte header and the body once per send, straight into
//! the write batch handed to the kernel.

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
///
/// Always boxed ([`Box<Held>`]): it is built once on the posting thread and
/// then only its pointer moves - through the post inbox, the peer's queue,
/// the write batch, `unwritten` or `awaiting` - until it is reported.
pub(crate) struct Held {
    pub(crate) id: MsgId,
    pub(crate) to: SocketAddr,
    pub(crate) msg_type: u32,
    pub(crate) need_ack: bool,
    pub(crate) urgent: bool,
    /// The application's body (moved from the [`Message`], not copied).
    body: Vec<u8>,
    /// CRC32C of `body`, computed on the posting thread.
    body_crc: u32,
    pub(crate) retry: Retry,
    /// Give up at this time; `None` until the loop accepts the message
    /// ([`Held::start`]).
    deadline: Option<Instant>,
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
    /// Validates `msg` and checksums its body, taking its body and callback
    /// (what is left of `msg` is dropped by the caller without effect; taken
    /// by reference so the ~150-byte `Message` is not moved once more). A
    /// message that cannot be sent at all is reported here and `None`
    /// returned. No clock is read: the loop starts the deadline when it
    /// takes the message.
    pub(crate) fn new(msg: &mut Message, info: &Info) -> Option<Box<Held>> {
        let id = msg.id.unwrap_or_else(|| info.ids.next());
        StatsCell::bump(&info.stats.posted);
        let report = Report::new(id, msg.done.take(), info.stats.clone());
        if msg.body.len() > info.max_body || u32::try_from(msg.body.len()).is_err() {
            report.finish(Outcome::Failed(FailReason::TooLarge));
            return None;
        }
        let body = std::mem::take(&mut msg.body);
        Some(Box::new(Held {
            id,
            to: msg.to,
            msg_type: msg.msg_type,
            need_ack: msg.flags.need_ack,
            urgent: msg.flags.urgent,
            body_crc: crc32c::crc32c(&body),
            body,
            retry: msg.retry.unwrap_or(info.retry),
            deadline: None,
            sends: 0,
            last_send: None,
            sent_on: None,
            sent_to: None,
            report,
        }))
    }

    /// The loop took the message at `now` (its loop turn's time): the
    /// deadline runs from here. The post happened at most one loop turn
    /// earlier.
    pub(crate) fn start(&mut self, now: Instant) {
        self.deadline = Some(now + self.retry.deadline);
    }

    /// Whether its deadline has passed.
    pub(crate) fn expired(&self, now: Instant) -> bool {
        self.deadline.is_some_and(|d| now >= d)
    }

    /// Appends its DATA frame to `dst`, with `from` as the sender.
    pub(crate) fn encode(&self, dst: &mut Vec<u8>, from: SocketAddr) {
        let mut flags = 0;
        if self.need_ack {
            flags |= FLAG_NEED_ACK;
        }
        if self.urgent {
            flags |= FLAG_URGENT;
        }
        let header = Header {
            kind: Kind::Data,
            flags,
            id: self.id,
            msg_type: self.msg_type,
            from,
            to: self.to,
        };
        // Cannot fail: the length was checked in `new`.
        let _ = frame::encode_frame_with_crc(dst, &header, &self.body, self.body_crc);
    }

    /// Bytes it takes on the wire (what the backlog counts).
    pub(crate) fn size(&self) -> usize {
        frame::HEADER_LEN + self.body.len()
    }

    /// Body bytes, for the receiver's limit.
    pub(crate) fn body_len(&self) -> usize {
        self.body.len()
    }

    /// Records a send on `h` to the receiver incarnation `to`; the first
    /// send also caps the deadline by the receiver's dedup window, so no
    /// retry arrives after the receiver forgot the id.
    pub(crate) fn sent(&mut self, h: Handle, to: Option<u64>, window: Duration, now: Instant) {
        if self.sends == 0 {
            let cap = now + window;
            self.deadline = Some(self.deadline.map_or(cap, |d| d.min(cap)));
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

    pub(crate) fn finish(self: Box<Self>, outcome: Outcome) {
        self.report.finish(outcome);
    }
}
