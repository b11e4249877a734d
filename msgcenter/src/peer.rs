//! [`Peer`]: everything the center holds for one peer address, across the
//! connections that come and go - CUP's "context" of a pooled connection.
//!
//! - two FIFO queues, urgent before normal, of messages not yet handed to a
//!   connection;
//! - `unwritten`: plain messages handed to the current connection but not
//!   yet known to be in the kernel, with the stream offset of their last
//!   byte - when the connection dies, those not in the kernel go back to
//!   the front of their queue (the original destroyed them);
//! - `awaiting`: NeedAck messages sent and not yet acknowledged;
//! - the backlog account: bytes of all of the above, with high and low
//!   water marks;
//! - the pool slot: the established connection, or the outgoing one being
//!   opened, and the reconnect backoff.
//!
//! Plain data owned by [`CenterState`](crate::state::CenterState); the
//! loop thread only.

use crate::config::Config;
use crate::frame::Hello;
use crate::message::{FailReason, MsgId, Outcome};
use crate::outbound::Held;
use crate::FastMap;
use imconn::Backoff;
use netlib::Handle;
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::Instant;

/// See the module docs.
pub(crate) struct Peer {
    pub(crate) addr: SocketAddr,
    urgent: VecDeque<Box<Held>>,
    normal: VecDeque<Box<Held>>,
    /// Plain messages handed to `conn`, with the stream offset of their
    /// last byte, in send order.
    pub(crate) unwritten: VecDeque<(u64, Box<Held>)>,
    /// NeedAck messages sent, by id.
    pub(crate) awaiting: FastMap<MsgId, Box<Held>>,
    /// The connection in use (handshake complete).
    pub(crate) conn: Option<Handle>,
    /// Our outgoing connection being opened (connect or handshake pending).
    pub(crate) connecting: Option<Handle>,
    /// Who answered the last handshake.
    pub(crate) remote: Option<Hello>,
    held_bytes: usize,
    backlogged: bool,
    /// Last message posted to or received from this peer.
    pub(crate) last_used: Instant,
    pub(crate) backoff: Backoff,
    /// No new connect before this (after a failure).
    pub(crate) reconnect_at: Option<Instant>,
    /// Why the last connection attempt failed, for messages given up
    /// while no connection exists.
    pub(crate) last_failure: Option<FailReason>,
    /// Queued in the center's dirty list.
    pub(crate) dirty: bool,
}

impl Peer {
    pub(crate) fn new(addr: SocketAddr, cfg: &Config, now: Instant) -> Peer {
        Peer {
            addr,
            urgent: VecDeque::new(),
            normal: VecDeque::new(),
            unwritten: VecDeque::new(),
            awaiting: FastMap::default(),
            conn: None,
            connecting: None,
            remote: None,
            held_bytes: 0,
            backlogged: false,
            last_used: now,
            backoff: Backoff::new(cfg.reconnect_min, cfg.reconnect_max),
            reconnect_at: None,
            last_failure: None,
            dirty: false,
        }
    }

    /// Queues a new message; when the peer is backlogged, fails it with
    /// `Backlog` instead and returns false.
    pub(crate) fn accept(&mut self, held: Box<Held>, cfg: &Config) -> bool {
        if self.backlogged {
            held.finish(Outcome::Failed(FailReason::Backlog));
            return false;
        }
        self.held_bytes += held.size();
        if self.held_bytes > cfg.backlog_high {
            log::warn!(
                "msgcenter: {} backlog {} bytes over {}: refusing new messages until below {}",
                self.addr,
                self.held_bytes,
                cfg.backlog_high,
                cfg.backlog_low
            );
            self.backlogged = true;
        }
        self.queue_of(held.urgent).push_back(held);
        true
    }

    /// Whether new posts are refused.
    pub(crate) fn is_backlogged(&self) -> bool {
        self.backlogged
    }

    /// Bytes held for this peer.
    pub(crate) fn held_bytes(&self) -> usize {
        self.held_bytes
    }

    fn queue_of(&mut self, urgent: bool) -> &mut VecDeque<Box<Held>> {
        if urgent {
            &mut self.urgent
        } else {
            &mut self.normal
        }
    }

    /// Takes the next message to send: urgent first, FIFO within each.
    pub(crate) fn pop_next(&mut self) -> Option<Box<Held>> {
        self.urgent.pop_front().or_else(|| self.normal.pop_front())
    }

    /// Puts a message taken with [`pop_next`](Self::pop_next) back in front.
    pub(crate) fn push_front(&mut self, held: Box<Held>) {
        self.queue_of(held.urgent).push_front(held);
    }

    /// Messages waiting for a connection.
    pub(crate) fn queued(&self) -> usize {
        self.urgent.len() + self.normal.len()
    }

    /// Whether anything is held.
    pub(crate) fn has_work(&self) -> bool {
        self.queued() > 0 || !self.unwritten.is_empty() || !self.awaiting.is_empty()
    }

    /// Ends a message the peer held with `outcome`, updating the backlog.
    pub(crate) fn finish(&mut self, held: Box<Held>, outcome: Outcome, cfg: &Config) {
        self.held_bytes -= held.size();
        if self.backlogged && self.held_bytes < cfg.backlog_low {
            log::info!(
                "msgcenter: {} backlog drained, accepting messages",
                self.addr
            );
            self.backlogged = false;
        }
        held.finish(outcome);
    }

    /// Reports `Written` for the unwritten messages whose last byte is
    /// within the first `bytes_out` bytes of the stream.
    pub(crate) fn written_up_to(&mut self, bytes_out: u64, cfg: &Config) {
        while self
            .unwritten
            .front()
            .is_some_and(|(end, _)| *end <= bytes_out)
        {
            if let Some((_, held)) = self.unwritten.pop_front() {
                self.finish(held, Outcome::Written, cfg);
            }
        }
    }

    /// The connection ended having handed `bytes_out` bytes to the kernel:
    /// what got there is written, the rest goes back to the front of its
    /// queue in its original order.
    pub(crate) fn requeue_unwritten(&mut self, bytes_out: u64, cfg: &Config) {
        self.written_up_to(bytes_out, cfg);
        while let Some((_, held)) = self.unwritten.pop_back() {
            self.push_front(held);
        }
    }

    /// Fails the queued messages that `pred` picks, with `reason`.
    pub(crate) fn fail_queued(
        &mut self,
        mut pred: impl FnMut(&Held) -> bool,
        reason: FailReason,
        cfg: &Config,
    ) {
        for urgent in [true, false] {
            let queue = std::mem::take(self.queue_of(urgent));
            let mut keep = VecDeque::with_capacity(queue.len());
            for held in queue {
                if pred(&held) {
                    self.finish(held, Outcome::Failed(reason), cfg);
                } else {
                    keep.push_back(held);
                }
            }
            *self.queue_of(urgent) = keep;
        }
    }

    /// Fails every message held, with `reason`.
    pub(crate) fn fail_all(&mut self, reason: FailReason, cfg: &Config) {
        self.fail_queued(|_| true, reason, cfg);
        for (_, held) in std::mem::take(&mut self.unwritten) {
            self.finish(held, Outcome::Failed(reason), cfg);
        }
        for (_, held) in std::mem::take(&mut self.awaiting) {
            self.finish(held, Outcome::Failed(reason), cfg);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::{Message, Outcome};
    use crate::outbound::{IdGen, Info};
    use crate::stats::StatsCell;
    use std::sync::{Arc, Mutex};

    type Log = Arc<Mutex<Vec<(u64, Outcome)>>>;

    fn info() -> Info {
        Info {
            advertised: std::sync::RwLock::new("127.0.0.1:1".parse().unwrap()),
            max_body: 1000,
            retry: Config::default().retry,
            stats: Arc::new(StatsCell::default()),
            ids: IdGen::new(),
        }
    }

    fn held(info: &Info, id: u64, urgent: bool, len: usize, log: &Log) -> Box<Held> {
        let log = log.clone();
        let mut m = Message::new("127.0.0.1:2".parse().unwrap(), 1, vec![0; len])
            .with_id(id)
            .on_done(move |id, o| log.lock().unwrap().push((id, o)));
        if urgent {
            m = m.urgent();
        }
        Held::new(&mut m, info).unwrap()
    }

    #[test]
    fn urgent_first_fifo_within_each() {
        let (info, log) = (info(), Log::default());
        let cfg = Config::default();
        let mut p = Peer::new("127.0.0.1:2".parse().unwrap(), &cfg, Instant::now());
        for (id, urgent) in [(1, false), (2, true), (3, false), (4, true)] {
            assert!(p.accept(held(&info, id, urgent, 1, &log), &cfg));
        }
        let order: Vec<u64> = std::iter::from_fn(|| p.pop_next().map(|h| h.id)).collect();
        assert_eq!(order, [2, 4, 1, 3]);
        assert!(log
            .lock()
            .unwrap()
            .iter()
            .all(|(_, o)| *o == Outcome::Failed(FailReason::Shutdown)));
    }

    #[test]
    fn backlog_refuses_past_high_water_and_accepts_below_low() {
        let (info, log) = (info(), Log::default());
        let cfg = Config {
            backlog_high: 300,
            backlog_low: 150,
            ..Config::default()
        };
        let mut p = Peer::new("127.0.0.1:2".parse().unwrap(), &cfg, Instant::now());
        // 64-byte header + 36 = 100 bytes each.
        for id in 0..4 {
            assert!(p.accept(held(&info, id, false, 36, &log), &cfg), "{id}");
        }
        assert!(p.is_backlogged());
        assert!(!p.accept(held(&info, 9, false, 36, &log), &cfg));
        assert_eq!(
            log.lock().unwrap().as_slice(),
            &[(9, Outcome::Failed(FailReason::Backlog))]
        );
        let a = p.pop_next().unwrap();
        p.finish(a, Outcome::Written, &cfg);
        assert!(p.is_backlogged(), "300 held: not below low water yet");
        let b = p.pop_next().unwrap();
        p.finish(b, Outcome::Written, &cfg);
        assert!(p.is_backlogged(), "200 held");
        let c = p.pop_next().unwrap();
        p.finish(c, Outcome::Written, &cfg);
        assert!(!p.is_backlogged(), "100 held");
        assert!(p.accept(held(&info, 10, false, 36, &log), &cfg));
        assert_eq!(p.held_bytes(), 200);
    }

    #[test]
    fn unwritten_messages_go_back_in_order_when_the_connection_dies() {
        let (info, log) = (info(), Log::default());
        let cfg = Config::default();
        let mut p = Peer::new("127.0.0.1:2".parse().unwrap(), &cfg, Instant::now());
        for id in 1..=4 {
            assert!(p.accept(held(&info, id, false, 36, &log), &cfg));
        }
        // Ids 1..3 handed to a connection, ending at 100, 200, 300.
        for end in [100, 200, 300] {
            let h = p.pop_next().unwrap();
            p.unwritten.push_back((end, h));
        }
        p.written_up_to(150, &cfg);
        assert_eq!(log.lock().unwrap().as_slice(), &[(1, Outcome::Written)]);
        p.requeue_unwritten(250, &cfg);
        assert_eq!(log.lock().unwrap().len(), 2, "id 2 reached the kernel");
        let order: Vec<u64> = std::iter::from_fn(|| p.pop_next().map(|h| h.id)).collect();
        assert_eq!(order, [3, 4]);
    }
}
