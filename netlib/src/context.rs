//! [`Context`]: everything a callback may do - the struct, its tunables
//! ([`Config`]), and posting/stopping.
//!
//! The dispatcher hands `&mut Context` to every handler, timer, loop hook and
//! posted closure. Through it they listen, connect, send, receive, close,
//! change handlers, set socket options, add and cancel timers and hooks, defer
//! work and stop the loop - TeamTalk's `netlib_*` functions, minus the global
//! singleton.
//!
//! Reentrancy: the callback that is running has been taken out of the table,
//! so every operation is allowed from inside any callback, on any socket,
//! including the callback's own. Closing a socket takes effect at once (the
//! descriptor is closed, later events for it in the same poll batch are
//! dropped) and its [`Event::Close`] is delivered right after the current
//! callback returns, never in the middle of it.
//!
//! The operations are split by job, each file an `impl Context` block:
//!
//! | file          | owns                                                    |
//! |---------------|---------------------------------------------------------|
//! | `slots.rs`    | the socket table: handles, slots, generations           |
//! | `delivery.rs` | running handlers, pending events, deferred/posted work  |
//! | `open.rs`     | creating sockets: listen, connect, accept, adopt        |
//! | `io.rs`       | send, recv, close, half-close, pausing reads            |
//! | `options.rs`  | socket options and addresses                            |
//! | `schedule.rs` | the timer and loop-hook API                             |
//! | `handler.rs`  | the handler table and registered-handler API            |
//!
//! Thread: a `Context` lives on the thread that runs its dispatcher. Use a
//! [`Poster`] to reach it from elsewhere.

use crate::event::Event;
use crate::handle::{next_loop_id, Handle};
use crate::handler::{HandlerRef, HandlerTable};
use crate::hooks::Hooks;
use crate::poster::{Poster, Shared, Task};
use crate::slots::Slot;
use crate::timer::{TimerId, TimerQueue};
use mio::Poll;
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Tunables of a dispatcher. `Config::default()` suits most servers.
#[derive(Debug, Clone)]
pub struct Config {
    /// How many readiness events one `epoll_wait` may return. Default 1024.
    pub events_capacity: usize,
    /// Bytes one socket may read per [`Event::Read`] before `recv` reports
    /// [`Error::WouldBlock`](crate::Error::WouldBlock) and the socket waits for the next turn, so one
    /// busy peer cannot starve the others. Default 256 KiB.
    pub read_budget: usize,
    /// How long a listener stops accepting after running out of descriptors
    /// (EMFILE/ENFILE), instead of spinning on the error. Default 100 ms.
    pub accept_pause: Duration,
    /// Longest time one poll may sleep even with no timer due; `None` sleeps
    /// until an event or timer. TeamTalk's loop woke every 100 ms; set this
    /// if loop hooks must run periodically while idle. Default `None`.
    pub max_wait: Option<Duration>,
    /// Most deferred closures, and separately most posted closures, run in
    /// one loop turn; the rest run in the next turns (without sleeping in
    /// between), so closures that keep queueing more cannot starve I/O and
    /// timers. Default 1024.
    pub task_batch: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            events_capacity: 1024,
            read_budget: 256 * 1024,
            accept_pause: Duration::from_millis(100),
            max_wait: None,
            task_batch: 1024,
        }
    }
}

/// A timer callback.
pub(crate) type TimerFn = Box<dyn FnMut(&mut Context, TimerId)>;
/// Work deferred on the loop thread itself.
pub(crate) type LocalTask = Box<dyn FnOnce(&mut Context)>;

/// Work the dispatcher schedules on its timer queue.
pub(crate) enum TimerTask {
    Callback(TimerFn),
    Socket(Handle),
    ConnectTimeout(Handle),
    ResumeAccept(Handle),
    Handler(HandlerRef),
}

/// The state of a dispatcher that callbacks can reach. See the module docs.
pub struct Context {
    pub(crate) poll: Poll,
    pub(crate) slots: Vec<Slot>,
    pub(crate) free_slots: Vec<u32>,
    pub(crate) open_sockets: usize,
    pub(crate) handlers: HandlerTable,
    pub(crate) timers: TimerQueue<TimerTask>,
    pub(crate) hooks: Hooks,
    /// Events produced by operations (Close, ReadClosed), delivered after the
    /// callback that caused them returns.
    pub(crate) pending: VecDeque<(Handle, Event)>,
    /// Sockets to offer a Read in the next turn.
    pub(crate) read_again: Vec<Handle>,
    pub(crate) deferred: VecDeque<LocalTask>,
    /// Scratch buffer swapped with the posters' queue.
    pub(crate) task_buf: Vec<Task>,
    /// Posted tasks taken from the posters' queue, not yet run.
    pub(crate) posted: VecDeque<Task>,
    pub(crate) shared: Arc<Shared>,
    pub(crate) stop_flag: bool,
    pub(crate) config: Config,
    /// The socket whose Read is being delivered and the bytes it may still read.
    pub(crate) read_budget: Option<(Handle, usize)>,
    /// This loop's process-wide unique id, carried by its handles.
    pub(crate) loop_id: u32,
    /// When the current iteration's poll returned ([`Context::now`]).
    pub(crate) now: Instant,
}

impl Context {
    pub(crate) fn new(poll: Poll, shared: Arc<Shared>, config: Config) -> Context {
        let loop_id = next_loop_id();
        Context {
            poll,
            slots: Vec::new(),
            free_slots: Vec::new(),
            open_sockets: 0,
            handlers: HandlerTable::new(loop_id),
            timers: TimerQueue::new(),
            hooks: Hooks::default(),
            pending: VecDeque::new(),
            read_again: Vec::new(),
            deferred: VecDeque::new(),
            task_buf: Vec::new(),
            posted: VecDeque::new(),
            shared,
            stop_flag: false,
            config,
            read_budget: None,
            loop_id,
            now: Instant::now(),
        }
    }

    /// A `Send` handle for posting work to this loop from other threads.
    pub fn poster(&self) -> Poster {
        Poster {
            shared: self.shared.clone(),
        }
    }

    /// Stops the loop after the current turn (`netlib_stop_event`).
    pub fn stop(&mut self) {
        self.stop_flag = true;
        self.shared.request_stop();
    }

    /// Whether the loop is running and not stopping (`netlib_is_running`).
    pub fn is_running(&self) -> bool {
        self.poster().is_running()
    }

    /// The time the current iteration started: read once per loop turn,
    /// right after the poll returns, and the same for every callback of
    /// that turn (before the first turn: when the dispatcher was created).
    ///
    /// For per-message bookkeeping (last use, deadlines, dedup windows) a
    /// hot path would otherwise read the clock per message; this is at most
    /// one turn old - the time the callbacks before this one took. Use
    /// `Instant::now()` where that matters (measuring a callback's own work).
    ///
    /// ```
    /// let mut dispatch = netlib::EventDispatch::new().unwrap();
    /// let before = dispatch.context().now();
    /// dispatch.run_once(Some(std::time::Duration::ZERO)).unwrap();
    /// assert!(dispatch.context().now() >= before);
    /// ```
    pub fn now(&self) -> Instant {
        self.now
    }

    /// This loop's id, unique in the process; every [`Handle`] and
    /// [`HandlerRef`] it creates carries it ([`Handle::loop_id`]).
    pub fn loop_id(&self) -> u32 {
        self.loop_id
    }
}
