//! [`EventDispatch`]: the loop (TeamTalk's `CEventDispatch`, as a value).
//!
//! One turn of the loop:
//!
//! 1. wait in `epoll_wait` until an event, the nearest timer deadline, or at
//!    once if work is already waiting (a socket cut off by its read budget,
//!    deferred closures);
//! 2. deliver I/O events: accept on listeners until `WouldBlock`, complete
//!    connects, Read and Write on connections; then offer a Read to sockets
//!    left with unread data last turn;
//! 3. fire due timers;
//! 4. run loop hooks;
//! 5. run deferred and posted closures, FIFO, at most
//!    [`Config::task_batch`] of each; the rest run next turn, whose poll
//!    then does not sleep (so closures that keep queueing more cannot starve
//!    I/O and timers).
//!
//! mio is edge-triggered: the dispatcher remembers that a socket may hold
//! unread data until `recv` sees `WouldBlock`, so a handler that stops early
//! (budget spent, or it just read less) is offered the rest next turn rather
//! than waiting forever for an edge that will not come.
//!
//! Ownership: the dispatcher owns every socket, handler, timer and hook; it is
//! not `Send` and runs on the thread that created it. Other threads use a
//! [`Poster`].

use crate::context::{Config, Context, TimerTask};
use crate::error::{Error, Result};
use crate::event::{CloseReason, Event};
use crate::handle::Handle;
use crate::poster::{Poster, Shared};
use crate::socket::{is_resource_exhaustion, Io, SocketState};
use mio::event::Event as MioEvent;
use mio::{Events, Poll, Token, Waker};
use std::io;
use std::sync::Arc;
use std::time::{Duration, Instant};

const WAKER: Token = Token(usize::MAX);

/// The event loop. Create one per thread; see the crate docs for an example.
pub struct EventDispatch {
    ctx: Context,
    events: Events,
    /// The read-again list being processed this turn (swapped with the
    /// context's, so neither allocates in steady state).
    again: Vec<Handle>,
    shut_down: bool,
}

impl EventDispatch {
    /// A dispatcher with the default [`Config`].
    pub fn new() -> io::Result<EventDispatch> {
        EventDispatch::with_config(Config::default())
    }

    /// A dispatcher with the given tunables.
    pub fn with_config(config: Config) -> io::Result<EventDispatch> {
        let poll = Poll::new()?;
        let waker = Waker::new(poll.registry(), WAKER)?;
        let shared = Arc::new(Shared::new(waker));
        let events = Events::with_capacity(config.events_capacity.max(16));
        Ok(EventDispatch {
            ctx: Context::new(poll, shared, config),
            events,
            again: Vec::new(),
            shut_down: false,
        })
    }

    /// The context, for setting up listeners, connections and timers before
    /// (or between) runs.
    pub fn context(&mut self) -> &mut Context {
        &mut self.ctx
    }

    /// A `Send` handle to post closures and stop the loop from other threads.
    pub fn poster(&self) -> Poster {
        self.ctx.poster()
    }

    /// Whether [`run`](Self::run) is executing and not stopping.
    pub fn is_running(&self) -> bool {
        self.ctx.is_running()
    }

    /// Runs the loop until [`Context::stop`] or [`Poster::stop`]
    /// (`netlib_eventloop`), then shuts down: posted closures already
    /// accepted run, every socket is closed and receives
    /// [`Event::Close`]\([`CloseReason::Shutdown`]), and further posts fail
    /// with [`Error::Stopped`]. A dispatcher runs once; a second `run`
    /// returns `Error::Stopped`.
    pub fn run(&mut self) -> Result<()> {
        if self.shut_down {
            return Err(Error::Stopped);
        }
        self.ctx.shared.set_running(true);
        let mut outcome = Ok(());
        while !self.ctx.stop_flag && !self.ctx.shared.stop_requested() {
            let max_wait = self.ctx.config.max_wait;
            if let Err(e) = self.run_once(max_wait) {
                log::error!("netlib: event loop failed: {e}");
                outcome = Err(e);
                break;
            }
        }
        self.shutdown();
        outcome
    }

    /// Runs one turn, waiting at most `max_wait` for events (`None`: until an
    /// event or the next timer). For embedding the loop in another one, and
    /// for tests.
    pub fn run_once(&mut self, max_wait: Option<Duration>) -> Result<()> {
        if self.shut_down {
            return Err(Error::Stopped);
        }
        let timeout = self.poll_timeout(max_wait);
        match self.ctx.poll.poll(&mut self.events, timeout) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => self.events.clear(),
            Err(e) => return Err(Error::Io(e)),
        }
        self.ctx.now = Instant::now();
        std::mem::swap(&mut self.ctx.read_again, &mut self.again);
        for event in self.events.iter() {
            if event.token() != WAKER {
                handle_io_event(&mut self.ctx, event);
            }
        }
        for i in 0..self.again.len() {
            let h = self.again[i];
            let Some(entry) = self.ctx.entry_mut(h) else {
                continue;
            };
            entry.read_again_queued = false;
            if entry.read_pending() {
                self.ctx.dispatch_read(h);
            }
        }
        self.again.clear();
        self.ctx.flush_pending();
        fire_timers(&mut self.ctx);
        run_hooks(&mut self.ctx);
        self.ctx.run_tasks();
        Ok(())
    }

    fn poll_timeout(&mut self, max_wait: Option<Duration>) -> Option<Duration> {
        if self.ctx.has_immediate_work() {
            return Some(Duration::ZERO);
        }
        let until_timer = self
            .ctx
            .timers
            .next_deadline()
            .map(|deadline| deadline.saturating_duration_since(Instant::now()))
            // epoll_wait counts whole milliseconds and rounds down; round up
            // so a timer is not polled for repeatedly just before it is due.
            .map(|d| {
                let ms = d.as_nanos().div_ceil(1_000_000);
                Duration::from_millis(u64::try_from(ms).unwrap_or(u64::MAX))
            });
        match (until_timer, max_wait) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn shutdown(&mut self) {
        self.shut_down = true;
        let ctx = &mut self.ctx;
        ctx.shared.close();
        ctx.drain_tasks();
        // Closures run by Close handlers may open sockets again; a few passes
        // settle it without looping forever.
        for _ in 0..4 {
            let open = ctx.open_handles();
            if open.is_empty() {
                break;
            }
            for h in open {
                ctx.close_with(h, CloseReason::Shutdown);
                ctx.flush_pending();
            }
            ctx.drain_tasks();
        }
        drop(ctx.timers.drain());
        ctx.hooks.clear();
        ctx.shared.set_running(false);
    }
}

impl Drop for EventDispatch {
    fn drop(&mut self) {
        // Posters that outlive the dispatcher must get an error, not a queue
        // nobody drains.
        self.ctx.shared.close();
        self.ctx.shared.set_running(false);
    }
}

fn handle_io_event(ctx: &mut Context, event: &MioEvent) {
    let h = Handle::from_token(event.token(), ctx.loop_id);
    let Some(entry) = ctx.entry_mut(h) else {
        return; // stale: the socket closed and its slot may be reused
    };
    match entry.state {
        SocketState::Listening => {
            if event.is_readable() {
                accept_all(ctx, h, true);
            }
        }
        SocketState::Connecting => finish_connect(ctx, h, event),
        SocketState::Connected => on_connected_event(ctx, h, event),
        SocketState::Idle | SocketState::Closing => {}
    }
}

fn on_connected_event(ctx: &mut Context, h: Handle, event: &MioEvent) {
    let Some(entry) = ctx.entry_mut(h) else {
        return;
    };
    if event.is_readable() || event.is_read_closed() || event.is_error() {
        entry.readable = true;
    }
    if event.is_read_closed() || event.is_error() {
        entry.hangup_seen = true;
    }
    let write_ready = event.is_writable() && entry.want_write;
    if write_ready {
        entry.want_write = false;
    }
    if entry.read_pending() {
        ctx.dispatch_read(h);
    }
    if write_ready {
        ctx.dispatch(h, Event::Write);
    }
    if event.is_error() {
        // Reported errors are normally picked up by recv/send; a paused
        // socket would never see them, so collect them here.
        let failure = match ctx
            .entry(h)
            .and_then(|e| e.stream())
            .map(|s| s.take_error())
        {
            Some(Ok(Some(e))) | Some(Err(e)) => Some(e),
            _ => None,
        };
        if let Some(e) = failure {
            ctx.close_with(h, CloseReason::from_io(&e));
            ctx.flush_pending();
        }
    }
}

fn finish_connect(ctx: &mut Context, h: Handle, event: &MioEvent) {
    if !(event.is_writable() || event.is_error() || event.is_write_closed()) {
        return;
    }
    let Some(stream) = ctx.entry(h).and_then(|e| e.stream()) else {
        return;
    };
    let outcome = match stream.take_error() {
        Ok(Some(e)) | Err(e) => Err(e),
        Ok(None) => stream.peer_addr(),
    };
    match outcome {
        Ok(peer) => {
            let timer = ctx.entry_mut(h).and_then(|entry| {
                entry.state = SocketState::Connected;
                entry.peer = Some(peer);
                entry.internal_timer.take()
            });
            if let Some(timer) = timer {
                ctx.timers.cancel(timer);
            }
            ctx.dispatch(h, Event::Confirm);
            // Data may have come with the connect completion.
            if event.is_readable() || event.is_read_closed() {
                if let Some(entry) = ctx.entry_mut(h) {
                    entry.readable = true;
                    entry.hangup_seen |= event.is_read_closed();
                    if entry.read_pending() {
                        ctx.dispatch_read(h);
                    }
                }
            }
        }
        // Spurious wakeup: still connecting.
        Err(e) if e.kind() == io::ErrorKind::NotConnected && !event.is_error() => {}
        Err(e) => {
            let e = if e.kind() == io::ErrorKind::NotConnected {
                io::Error::from_raw_os_error(libc::ECONNREFUSED)
            } else {
                e
            };
            ctx.close_with(h, CloseReason::from_io(&e));
            ctx.flush_pending();
        }
    }
}

/// Accepts until `WouldBlock`. Running out of descriptors pauses accepting
/// for `Config::accept_pause` instead of spinning on the error; the
/// connections left in the backlog are accepted when it resumes. With
/// `rotate`, a listener shared by EPOLLEXCLUSIVE that accepted something
/// goes to the back of the socket's wait queue (see [`rotate_exclusive`]).
pub(crate) fn accept_all(ctx: &mut Context, listener: Handle, rotate: bool) {
    let mut accepted = 0usize;
    loop {
        let Some(entry) = ctx.entry(listener) else {
            return;
        };
        if entry.accept_paused || entry.state != SocketState::Listening {
            return;
        }
        let Io::Listener(l) = &entry.io else {
            return;
        };
        match l.accept() {
            Ok((stream, peer)) => {
                accepted += 1;
                if let Some(h) = ctx.adopt_accepted(listener, stream, peer) {
                    ctx.dispatch(h, Event::Connect { listener });
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                // The flag from the entry already in hand: a listener not
                // shared by EPOLLEXCLUSIVE pays no lookup and no syscall.
                if rotate && accepted > 0 && entry.accept_exclusive {
                    rotate_exclusive(ctx, listener);
                }
                return;
            }
            Err(e)
                if e.kind() == io::ErrorKind::Interrupted
                    || e.kind() == io::ErrorKind::ConnectionAborted => {}
            Err(e) => {
                let pause = ctx.config.accept_pause;
                if is_resource_exhaustion(&e) {
                    log::warn!("netlib: {listener} accept paused for {pause:?}: {e}");
                } else {
                    log::error!("netlib: {listener} accept failed, retrying in {pause:?}: {e}");
                }
                let timer = ctx.timers.insert(
                    Instant::now() + pause,
                    None,
                    TimerTask::ResumeAccept(listener),
                );
                let mut exclusive = false;
                if let Some(entry) = ctx.entry_mut(listener) {
                    entry.accept_paused = true;
                    entry.internal_timer = Some(timer);
                    exclusive = entry.accept_exclusive;
                }
                if exclusive {
                    // Out of the wait queue while paused, so the wake-ups
                    // go to loops that can accept.
                    if let Err(e) = ctx.set_exclusive_waiting(listener, false) {
                        log::warn!("netlib: {listener} cannot leave the wait queue: {e}");
                    }
                }
                return;
            }
        }
    }
}

/// A listener shared by EPOLLEXCLUSIVE that just accepted goes to the back
/// of the socket's wait queue (out of the poll set and in again). The kernel
/// wakes the first idle waiter in that queue, so without this one loop
/// would take every connection while it is idle and the others only the
/// overflow; with it, idle loops take turns. A connection arriving in
/// between wakes another waiter, and one queued before is reported again
/// when the listener is added back. Two system calls per accepting turn,
/// only for listeners registered with `exclusive_wakeup` (the caller checks).
fn rotate_exclusive(ctx: &mut Context, listener: Handle) {
    let rotated = ctx
        .set_exclusive_waiting(listener, false)
        .and_then(|()| ctx.set_exclusive_waiting(listener, true));
    if let Err(e) = rotated {
        log::error!("netlib: {listener} cannot rejoin the wait queue: {e}");
    }
}

fn fire_timers(ctx: &mut Context) {
    let now = Instant::now();
    let watermark = ctx.timers.watermark();
    while let Some((id, task)) = ctx.timers.pop_due(now, watermark) {
        let task = match task {
            TimerTask::Callback(mut f) => {
                f(ctx, id);
                TimerTask::Callback(f)
            }
            TimerTask::Socket(h) => {
                if ctx
                    .entry(h)
                    .is_some_and(|e| e.state != SocketState::Closing)
                {
                    ctx.dispatch(h, Event::Timer(id));
                } else {
                    ctx.timers.cancel(id);
                }
                TimerTask::Socket(h)
            }
            TimerTask::ConnectTimeout(h) => {
                if let Some(entry) = ctx.entry_mut(h) {
                    if entry.internal_timer == Some(id) {
                        entry.internal_timer = None;
                        if entry.state == SocketState::Connecting {
                            ctx.close_with(h, CloseReason::TimedOut);
                        }
                    }
                }
                TimerTask::ConnectTimeout(h)
            }
            TimerTask::Handler(r) => {
                if !ctx.deliver_handler_timer(r, id) {
                    ctx.timers.cancel(id);
                }
                TimerTask::Handler(r)
            }
            TimerTask::ResumeAccept(h) => {
                if let Some(entry) = ctx.entry_mut(h) {
                    if entry.internal_timer == Some(id) {
                        entry.internal_timer = None;
                        entry.accept_paused = false;
                        if entry.accept_exclusive {
                            if let Err(e) = ctx.set_exclusive_waiting(h, true) {
                                log::error!("netlib: {h} cannot rejoin the wait queue: {e}");
                            }
                        }
                        accept_all(ctx, h, true);
                    }
                }
                TimerTask::ResumeAccept(h)
            }
        };
        // A finished one-shot comes back here and is dropped after the
        // callback's borrow of the context ended. A repeating one is
        // rescheduled from the clock read after its callback, not from the
        // pass's start: if a callback earlier in this pass stalled, the
        // pass-start time would put the next deadline in the past and the
        // timer would fire twice in a row.
        drop(ctx.timers.finish(id, task, Instant::now()));
        ctx.flush_pending();
    }
}

fn run_hooks(ctx: &mut Context) {
    let count = ctx.hooks.len();
    for i in 0..count {
        if let Some(mut hook) = ctx.hooks.take(i) {
            hook(ctx);
            ctx.hooks.put_back(i, hook);
            ctx.flush_pending();
        }
    }
    ctx.hooks.compact();
}
