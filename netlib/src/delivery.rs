//! Delivery: running handlers for events, the events operations cause, and
//! deferred and posted closures.
//!
//! Owns the order of things inside one turn. An operation that closes a
//! socket (or sees end-of-stream) queues the event on `pending`; it is
//! delivered after the callback that caused it returns, never in the middle
//! of it. A handler is taken out of its table slot while it runs, so it is
//! never re-entered.
//!
//! Deferred ([`Context::defer`]) and posted ([`Poster::post`](crate::Poster::post))
//! closures run FIFO after the turn's I/O, timers and hooks, in bounded
//! batches: at most [`Config::task_batch`](crate::Config::task_batch) of each
//! per turn, so a closure that re-queues itself forever, or a thread that
//! posts faster than the loop drains, cannot starve I/O and timers. A closure
//! queued while the queue drains is never lost: it runs later in the same
//! batch or in the next turn, whose poll does not sleep.
//!
//! Thread: the loop's own.

use crate::context::Context;
use crate::event::{CloseReason, Event};
use crate::handle::Handle;
use crate::handler::HandlerRef;
use crate::socket::{unregister_exclusive, Io, SocketState};
use crate::timer::TimerId;

/// Rounds of deferred closures run at shutdown before the rest is dropped.
const SHUTDOWN_ROUNDS: usize = 64;

impl Context {
    /// Runs the handler of `h` for `event`. Non-Close events for a closing
    /// socket are dropped.
    pub(crate) fn deliver(&mut self, h: Handle, event: Event) {
        let Some(entry) = self.entry(h) else {
            return;
        };
        if entry.state == SocketState::Closing && !matches!(event, Event::Close(_)) {
            return;
        }
        let id = entry.handler;
        let Some(mut handler) = self.handlers.take(id) else {
            log::debug!("netlib: {h} event {event:?} dropped: its handler is running");
            return;
        };
        handler.on_event(self, h, event);
        self.handlers.put_back(id, handler);
    }

    /// Delivers the events queued by the callbacks that just ran; a Close
    /// frees its slot afterwards.
    pub(crate) fn flush_pending(&mut self) {
        while let Some((h, event)) = self.pending.pop_front() {
            if let Event::Close(_) = event {
                // End-of-stream leaves the socket open until here, so the
                // callback that saw it could still answer.
                self.teardown(h);
            }
            self.deliver(h, event);
            if let Event::Close(_) = event {
                self.free_slot(h);
            }
        }
    }

    /// Delivers `event` to `h` from the loop, then everything it caused.
    pub(crate) fn dispatch(&mut self, h: Handle, event: Event) {
        self.deliver(h, event);
        self.flush_pending();
    }

    /// Delivers a Read under the per-event byte budget; whatever is left
    /// unread is offered again next turn - if the handler read at all. A
    /// handler that made no `recv` call is taken as not interested until the
    /// next edge: offering it the Read every turn would spin the loop at
    /// full CPU with a zero poll timeout.
    pub(crate) fn dispatch_read(&mut self, h: Handle) {
        if let Some(e) = self.entry_mut(h) {
            e.recv_called = false;
        }
        self.read_budget = Some((h, self.config.read_budget));
        self.deliver(h, Event::Read);
        self.read_budget = None;
        match self.entry(h) {
            Some(e) if !e.recv_called && e.read_pending() => {
                log::debug!("netlib: {h} ignored Read; not offered again until new data arrives");
            }
            _ => self.queue_read_again(h),
        }
        self.flush_pending();
    }

    pub(crate) fn queue_read_again(&mut self, h: Handle) {
        if let Some(e) = self.entry_mut(h) {
            if e.read_pending() && !e.read_again_queued {
                e.read_again_queued = true;
                self.read_again.push(h);
            }
        }
    }

    /// Closes `h` now and queues its Close event. No-op if already closing.
    pub(crate) fn close_with(&mut self, h: Handle, reason: CloseReason) {
        if self.teardown(h) {
            log::trace!("netlib: {h} closing: {reason}");
            self.pending.push_back((h, Event::Close(reason)));
        }
    }

    /// Deregisters and closes the descriptor of `h`; false if it was
    /// already closing.
    pub(crate) fn teardown(&mut self, h: Handle) -> bool {
        let Some(entry) = self.entry_mut(h) else {
            return false;
        };
        if entry.state == SocketState::Closing {
            return false;
        }
        entry.state = SocketState::Closing;
        let io = std::mem::replace(&mut entry.io, Io::None);
        let timer = entry.internal_timer.take();
        let exclusive = entry.accept_exclusive;
        match io {
            Io::Listener(l) if exclusive => {
                if let Err(e) = unregister_exclusive(self.poll.registry(), &l) {
                    log::error!("netlib: {h} cannot leave the poll set: {e}");
                }
            }
            Io::Listener(mut l) => {
                let _ = self.poll.registry().deregister(&mut l);
            }
            Io::Stream(mut s) => {
                let _ = self.poll.registry().deregister(&mut s);
            }
            Io::None => {}
        }
        if let Some(timer) = timer {
            self.timers.cancel(timer);
        }
        true
    }

    /// Runs the `on_timer` of a registered handler, if it is alive and idle.
    pub(crate) fn deliver_handler_timer(&mut self, r: HandlerRef, id: TimerId) -> bool {
        let Some(hid) = self.handlers.resolve(r) else {
            return false;
        };
        if let Some(mut handler) = self.handlers.take(hid) {
            handler.on_timer(self, id);
            self.handlers.put_back(hid, handler);
        }
        true
    }

    /// Whether the next poll must not sleep: work is already waiting.
    pub(crate) fn has_immediate_work(&self) -> bool {
        !self.read_again.is_empty()
            || !self.pending.is_empty()
            || !self.deferred.is_empty()
            || !self.posted.is_empty()
    }

    /// One turn's share of deferred closures and posted tasks: at most
    /// [`Config::task_batch`](crate::Config::task_batch) of each, oldest
    /// first. What is left (including closures queued while these ran) runs
    /// in the next turns, whose polls do not sleep.
    pub(crate) fn run_tasks(&mut self) {
        let batch = self.config.task_batch.max(1);
        self.run_deferred(batch);
        self.run_posted(batch);
    }

    /// Runs up to `limit` deferred closures.
    fn run_deferred(&mut self, limit: usize) {
        for _ in 0..limit {
            let Some(task) = self.deferred.pop_front() else {
                return;
            };
            task(self);
            self.flush_pending();
        }
    }

    /// Runs up to `limit` posted tasks. The backlog is refilled from the
    /// posters' queue only once it is empty, so tasks keep their order.
    fn run_posted(&mut self, limit: usize) {
        for _ in 0..limit {
            if self.posted.is_empty() && !self.take_posted() {
                return;
            }
            let Some(task) = self.posted.pop_front() else {
                return;
            };
            task(self);
            self.flush_pending();
        }
    }

    /// Moves everything posted so far into the backlog; false if nothing
    /// was. Both buffers keep their capacity, so this does not allocate in
    /// steady state.
    fn take_posted(&mut self) -> bool {
        let mut tasks = std::mem::take(&mut self.task_buf);
        let any = self.shared.take_tasks(&mut tasks);
        self.posted.extend(tasks.drain(..));
        self.task_buf = tasks;
        any
    }

    /// Runs what is queued when the loop shuts down. Posts are refused by
    /// now, so every posted task already accepted runs; deferred closures
    /// get a bounded number of rounds (a closure that re-defers itself
    /// forever must not hang shutdown), and any still queued after that are
    /// dropped with a warning.
    pub(crate) fn drain_tasks(&mut self) {
        let batch = self.config.task_batch.max(1);
        for _ in 0..SHUTDOWN_ROUNDS {
            self.run_posted(usize::MAX);
            self.run_deferred(batch);
            if self.deferred.is_empty() && self.posted.is_empty() {
                return;
            }
        }
        self.run_posted(usize::MAX);
        if !self.deferred.is_empty() {
            log::warn!(
                "netlib: dropping {} deferred closures at shutdown (they keep deferring more)",
                self.deferred.len()
            );
            self.deferred.clear();
        }
    }

    /// Runs `f` on this loop after the current batch of events, in FIFO
    /// order with other deferred work (`runInLoop`/`queueInLoop` from the loop
    /// thread itself).
    pub fn defer<F>(&mut self, f: F)
    where
        F: FnOnce(&mut Context) + 'static,
    {
        self.deferred.push_back(Box::new(f));
    }
}
