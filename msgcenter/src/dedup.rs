//! [`DedupWindow`]: the receiver's memory of NeedAck ids it has handled, so
//! a retry is acknowledged as a duplicate instead of handled twice.
//!
//! Keyed by (sender node id, message id). Bounded two ways, both in the
//! config: by time (an id is kept for `dedup_window` after it was first
//! seen; senders learn the window in the handshake and stop retrying before
//! it ends, so a retry never outlives the memory of its id) and by count
//! (`dedup_max`; when full of ids still inside the window, new ids are
//! refused - not handled, not acknowledged - and the sender's retry comes
//! back later, so exactly-once holds under memory pressure too).
//!
//! An id whose handler is still running (on a worker) is "in progress": a
//! retry of it is neither handled nor acknowledged, and it does not expire
//! until the handler is done. Pure data with an injected clock.

use crate::FastMap;
use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// A sender's identity and the message's id.
pub(crate) type Key = (u64, u64);

/// What the window knew about an id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Seen {
    /// First time: handle it (it is now in progress).
    New,
    /// Being handled right now: ignore this copy.
    InProgress,
    /// Handled before: acknowledge as a duplicate.
    Done,
}

/// The window is full of ids it must still remember.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Full;

#[derive(Debug, Clone, Copy)]
struct Entry {
    at: Instant,
    done: bool,
}

/// See the module docs.
#[derive(Debug)]
pub(crate) struct DedupWindow {
    window: Duration,
    max: usize,
    map: FastMap<Key, Entry>,
    order: VecDeque<(Instant, Key)>,
}

impl DedupWindow {
    pub(crate) fn new(window: Duration, max: usize) -> DedupWindow {
        DedupWindow {
            window,
            max,
            map: FastMap::default(),
            order: VecDeque::new(),
        }
    }

    /// Looks `key` up, entering it as in progress if new.
    pub(crate) fn check(&mut self, key: Key, now: Instant) -> Result<Seen, Full> {
        self.expire(now);
        if let Some(e) = self.map.get(&key) {
            return Ok(if e.done { Seen::Done } else { Seen::InProgress });
        }
        if self.map.len() >= self.max {
            return Err(Full);
        }
        self.map.insert(
            key,
            Entry {
                at: now,
                done: false,
            },
        );
        self.order.push_back((now, key));
        Ok(Seen::New)
    }

    /// The handler of `key` returned.
    pub(crate) fn finish(&mut self, key: Key) {
        if let Some(e) = self.map.get_mut(&key) {
            e.done = true;
        }
    }

    /// Forgets an in-progress id whose handler never ran to completion (so
    /// a retry may be handled).
    pub(crate) fn forget(&mut self, key: Key) {
        if self.map.get(&key).is_some_and(|e| !e.done) {
            self.map.remove(&key);
        }
    }

    /// Ids remembered.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.map.len()
    }

    fn expire(&mut self, now: Instant) {
        while let Some(&(at, key)) = self.order.front() {
            if at + self.window > now {
                break;
            }
            self.order.pop_front();
            match self.map.get_mut(&key) {
                Some(e) if e.at == at && e.done => {
                    self.map.remove(&key);
                }
                Some(e) if e.at == at => {
                    // Still being handled: keep it a window longer.
                    e.at = now;
                    self.order.push_back((now, key));
                }
                _ => {} // forgotten, or re-entered later with its own entry
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembers_for_the_window_then_forgets() {
        let t0 = Instant::now();
        let s = Duration::from_secs;
        let mut w = DedupWindow::new(s(10), 100);
        assert_eq!(w.check((1, 5), t0), Ok(Seen::New));
        assert_eq!(w.check((1, 5), t0 + s(1)), Ok(Seen::InProgress));
        w.finish((1, 5));
        assert_eq!(w.check((1, 5), t0 + s(9)), Ok(Seen::Done));
        // Another sender's id 5 is another message.
        assert_eq!(w.check((2, 5), t0 + s(9)), Ok(Seen::New));
        w.finish((2, 5));
        assert_eq!(w.check((1, 5), t0 + s(10)), Ok(Seen::New), "expired");
        assert_eq!(w.len(), 2);
    }

    #[test]
    fn in_progress_ids_outlive_the_window() {
        let t0 = Instant::now();
        let s = Duration::from_secs;
        let mut w = DedupWindow::new(s(10), 100);
        w.check((1, 1), t0).unwrap();
        assert_eq!(w.check((1, 1), t0 + s(15)), Ok(Seen::InProgress));
        w.finish((1, 1));
        assert_eq!(w.check((1, 1), t0 + s(20)), Ok(Seen::Done));
        assert_eq!(w.check((1, 1), t0 + s(26)), Ok(Seen::New));
    }

    #[test]
    fn full_window_refuses_new_ids_until_room_frees() {
        let t0 = Instant::now();
        let s = Duration::from_secs;
        let mut w = DedupWindow::new(s(10), 2);
        for id in 0..2 {
            w.check((1, id), t0).unwrap();
            w.finish((1, id));
        }
        assert_eq!(w.check((1, 9), t0 + s(5)), Err(Full));
        assert_eq!(
            w.check((1, 0), t0 + s(5)),
            Ok(Seen::Done),
            "known ids still answer"
        );
        assert_eq!(w.check((1, 9), t0 + s(10)), Ok(Seen::New));
    }

    #[test]
    fn forget_lets_a_retry_in() {
        let t0 = Instant::now();
        let mut w = DedupWindow::new(Duration::from_secs(10), 10);
        w.check((1, 1), t0).unwrap();
        w.forget((1, 1));
        assert_eq!(w.check((1, 1), t0), Ok(Seen::New));
        w.finish((1, 1));
        w.forget((1, 1));
        assert_eq!(
            w.check((1, 1), t0),
            Ok(Seen::Done),
            "done ids are never forgotten early"
        );
    }
}
