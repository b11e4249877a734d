//! [`Inbox`]: the post path from any thread into the center's loop.
//!
//! Posting one netlib closure per message cost an allocation, a lock and a
//! closure call per message. Here a post pushes the (boxed, already
//! checksummed) message onto one mutex-protected list; only the post that
//! finds the list empty posts a closure to the loop, and that closure takes
//! the whole list at once. So the loop is woken, and a closure runs, once
//! per batch of posts rather than once per message, however many threads
//! post.
//!
//! Nothing in it is lost: a post to a closed inbox (the center shut down)
//! fails at once with `Shutdown` on the posting thread, and a drain closure
//! that never runs (the loop stopped first) closes the inbox and fails what
//! it held, from its `Drop`.

use crate::message::{FailReason, Outcome};
use crate::outbound::Held;
use std::sync::{Arc, Mutex, MutexGuard};

/// See the module docs.
#[derive(Default)]
pub(crate) struct Inbox {
    list: Mutex<List>,
}

#[allow(clippy::vec_box, reason = "a Held moves between queues by its pointer")]
#[derive(Default)]
struct List {
    msgs: Vec<Box<Held>>,
    closed: bool,
}

/// What [`Inbox::push`] did.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Pushed {
    /// Queued behind others: a drain is already on its way.
    Queued,
    /// Queued first: the caller must post a drain ([`Drain`]).
    First,
    /// The inbox is closed: the message was failed with `Shutdown`.
    Closed,
}

impl Inbox {
    fn lock(&self) -> MutexGuard<'_, List> {
        // Only push, swap and flag updates happen under the lock: a panic
        // there cannot leave the list inconsistent.
        self.list.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queues `held`. See [`Pushed`].
    pub(crate) fn push(&self, held: Box<Held>) -> Pushed {
        let mut list = self.lock();
        if list.closed {
            drop(list);
            held.finish(Outcome::Failed(FailReason::Shutdown));
            return Pushed::Closed;
        }
        list.msgs.push(held);
        if list.msgs.len() == 1 {
            Pushed::First
        } else {
            Pushed::Queued
        }
    }

    /// Takes everything queued into `out` (empty, keeping its allocation
    /// for the next swap).
    #[allow(clippy::vec_box, reason = "a Held moves between queues by its pointer")]
    pub(crate) fn take(&self, out: &mut Vec<Box<Held>>) {
        debug_assert!(out.is_empty());
        std::mem::swap(&mut self.lock().msgs, out);
    }

    /// Refuses later posts and fails what is queued, with `Shutdown`.
    pub(crate) fn close(&self) {
        let msgs = {
            let mut list = self.lock();
            list.closed = true;
            std::mem::take(&mut list.msgs)
        };
        for held in msgs {
            held.finish(Outcome::Failed(FailReason::Shutdown));
        }
    }
}

/// The token a drain closure carries: marks the drain done when it ran,
/// closes the inbox when it is dropped without running (the loop stopped
/// and dropped the closure), so the queued messages still get their
/// `Shutdown`.
pub(crate) struct Drain {
    inbox: Arc<Inbox>,
    ran: bool,
}

impl Drain {
    pub(crate) fn new(inbox: Arc<Inbox>) -> Drain {
        Drain { inbox, ran: false }
    }

    /// The loop is running the drain: takes the queued messages.
    #[allow(clippy::vec_box, reason = "a Held moves between queues by its pointer")]
    pub(crate) fn take(mut self, out: &mut Vec<Box<Held>>) {
        self.ran = true;
        self.inbox.take(out);
    }
}

impl Drop for Drain {
    fn drop(&mut self) {
        if !self.ran {
            self.inbox.close();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::message::Message;
    use crate::outbound::{IdGen, Info};
    use crate::stats::StatsCell;
    type Log = Arc<Mutex<Vec<(u64, Outcome)>>>;

    fn held(id: u64, log: &Log) -> Box<Held> {
        let info = Info {
            advertised: std::sync::RwLock::new("127.0.0.1:1".parse().unwrap()),
            max_body: 100,
            retry: Config::default().retry,
            stats: Arc::new(StatsCell::default()),
            ids: IdGen::new(),
        };
        let log = log.clone();
        let mut m = Message::new("127.0.0.1:2".parse().unwrap(), 1, vec![1])
            .with_id(id)
            .on_done(move |id, o| log.lock().unwrap().push((id, o)));
        Held::new(&mut m, &info).unwrap()
    }

    #[test]
    fn one_drain_per_batch_in_post_order() {
        let (inbox, log) = (Inbox::default(), Log::default());
        assert_eq!(inbox.push(held(1, &log)), Pushed::First);
        assert_eq!(inbox.push(held(2, &log)), Pushed::Queued);
        let mut out = Vec::new();
        inbox.take(&mut out);
        assert_eq!(out.iter().map(|h| h.id).collect::<Vec<_>>(), [1, 2]);
        assert_eq!(inbox.push(held(3, &log)), Pushed::First, "empty again");
        assert!(log.lock().unwrap().is_empty());
    }

    #[test]
    fn a_drain_that_never_runs_fails_the_queue_and_closes_it() {
        let (inbox, log) = (Arc::new(Inbox::default()), Log::default());
        assert_eq!(inbox.push(held(1, &log)), Pushed::First);
        drop(Drain::new(inbox.clone()));
        assert_eq!(inbox.push(held(2, &log)), Pushed::Closed);
        let shutdown = Outcome::Failed(FailReason::Shutdown);
        assert_eq!(
            log.lock().unwrap().as_slice(),
            &[(1, shutdown), (2, shutdown)]
        );
        // A drain that ran leaves the inbox open.
        let open = Arc::new(Inbox::default());
        assert_eq!(open.push(held(3, &log)), Pushed::First);
        let mut out = Vec::new();
        Drain::new(open.clone()).take(&mut out);
        assert_eq!(out.len(), 1);
        assert_eq!(open.push(held(4, &log)), Pushed::First);
    }
}
