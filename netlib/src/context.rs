//! [`Context`]: everything a callback may do, and the socket table behind it.
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
//! Thread: a `Context` lives on the thread that runs its dispatcher. Use a
//! [`Poster`] to reach it from elsewhere.

use crate::error::{Error, Result};
use crate::event::{CloseReason, Event};
use crate::handle::Handle;
use crate::handler::{Handler, HandlerId, HandlerRef, HandlerTable};
use crate::hooks::{HookId, Hooks};
use crate::poster::{Poster, Shared, Task};
use crate::socket::{
    bind_listener, start_connect, ConnectOptions, Io, ListenOptions, SocketEntry, SocketState,
};
use crate::timer::{TimerId, TimerQueue};
use mio::{Interest, Poll};
use socket2::{SockRef, TcpKeepalive};
use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Tunables of a dispatcher. `Config::default()` suits most servers.
#[derive(Debug, Clone)]
pub struct Config {
    /// How many readiness events one `epoll_wait` may return. Default 1024.
    pub events_capacity: usize,
    /// Bytes one socket may read per [`Event::Read`] before `recv` reports
    /// [`Error::WouldBlock`] and the socket waits for the next turn, so one
    /// busy peer cannot starve the others. Default 256 KiB.
    pub read_budget: usize,
    /// How long a listener stops accepting after running out of descriptors
    /// (EMFILE/ENFILE), instead of spinning on the error. Default 100 ms.
    pub accept_pause: Duration,
    /// Longest time one poll may sleep even with no timer due; `None` sleeps
    /// until an event or timer. TeamTalk's loop woke every 100 ms; set this
    /// if loop hooks must run periodically while idle. Default `None`.
    pub max_wait: Option<Duration>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            events_capacity: 1024,
            read_budget: 256 * 1024,
            accept_pause: Duration::from_millis(100),
            max_wait: None,
        }
    }
}

/// A timer callback.
pub(crate) type TimerFn = Box<dyn FnMut(&mut Context, TimerId)>;
/// Work deferred on the loop thread itself.
type LocalTask = Box<dyn FnOnce(&mut Context)>;

/// Work the dispatcher schedules on its timer queue.
pub(crate) enum TimerTask {
    Callback(TimerFn),
    Socket(Handle),
    ConnectTimeout(Handle),
    ResumeAccept(Handle),
    Handler(HandlerRef),
}

struct Slot {
    generation: u32,
    entry: Option<SocketEntry>,
}

/// The state of a dispatcher that callbacks can reach. See the module docs.
pub struct Context {
    pub(crate) poll: Poll,
    slots: Vec<Slot>,
    free_slots: Vec<u32>,
    open_sockets: usize,
    handlers: HandlerTable,
    pub(crate) timers: TimerQueue<TimerTask>,
    pub(crate) hooks: Hooks,
    /// Events produced by operations (Close, ReadClosed), delivered after the
    /// callback that caused them returns.
    pending: VecDeque<(Handle, Event)>,
    /// Sockets to offer a Read in the next turn.
    pub(crate) read_again: Vec<Handle>,
    deferred: VecDeque<LocalTask>,
    pub(crate) task_buf: Vec<Task>,
    pub(crate) shared: Arc<Shared>,
    pub(crate) stop_flag: bool,
    pub(crate) config: Config,
    /// The socket whose Read is being delivered and the bytes it may still read.
    read_budget: Option<(Handle, usize)>,
}

impl Context {
    pub(crate) fn new(poll: Poll, shared: Arc<Shared>, config: Config) -> Context {
        Context {
            poll,
            slots: Vec::new(),
            free_slots: Vec::new(),
            open_sockets: 0,
            handlers: HandlerTable::default(),
            timers: TimerQueue::new(),
            hooks: Hooks::default(),
            pending: VecDeque::new(),
            read_again: Vec::new(),
            deferred: VecDeque::new(),
            task_buf: Vec::new(),
            shared,
            stop_flag: false,
            config,
            read_budget: None,
        }
    }

    // ----- socket table -------------------------------------------------

    pub(crate) fn entry(&self, h: Handle) -> Option<&SocketEntry> {
        let slot = self.slots.get(h.index as usize)?;
        if slot.generation != h.generation {
            return None;
        }
        slot.entry.as_ref()
    }

    pub(crate) fn entry_mut(&mut self, h: Handle) -> Option<&mut SocketEntry> {
        let slot = self.slots.get_mut(h.index as usize)?;
        if slot.generation != h.generation {
            return None;
        }
        slot.entry.as_mut()
    }

    /// The entry of an open (not closing) socket.
    fn open_entry(&mut self, h: Handle) -> Result<&mut SocketEntry> {
        match self.entry_mut(h) {
            Some(e) if e.state != SocketState::Closing => Ok(e),
            _ => Err(Error::InvalidHandle),
        }
    }

    fn alloc_slot(&mut self, entry: SocketEntry) -> Handle {
        self.open_sockets += 1;
        if let Some(index) = self.free_slots.pop() {
            let slot = &mut self.slots[index as usize];
            slot.entry = Some(entry);
            return Handle {
                index,
                generation: slot.generation,
            };
        }
        self.slots.push(Slot {
            generation: 0,
            entry: Some(entry),
        });
        Handle {
            index: (self.slots.len() - 1) as u32,
            generation: 0,
        }
    }

    /// Frees a slot without any event; the generation moves on so the
    /// handle goes stale.
    fn free_slot(&mut self, h: Handle) {
        let Some(slot) = self.slots.get_mut(h.index as usize) else {
            return;
        };
        if slot.generation != h.generation {
            return;
        }
        let Some(entry) = slot.entry.take() else {
            return;
        };
        slot.generation = slot.generation.wrapping_add(1);
        self.free_slots.push(h.index);
        self.open_sockets -= 1;
        let handler = entry.handler;
        if let Some(timer) = entry.internal_timer {
            self.timers.cancel(timer);
        }
        drop(entry);
        self.handlers.release(handler);
    }

    /// Handles of every socket still open (not closing).
    pub(crate) fn open_handles(&self) -> Vec<Handle> {
        self.slots
            .iter()
            .enumerate()
            .filter_map(|(i, slot)| {
                let e = slot.entry.as_ref()?;
                (e.state != SocketState::Closing).then_some(Handle {
                    index: i as u32,
                    generation: slot.generation,
                })
            })
            .collect()
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

    pub(crate) fn new_socket_with(&mut self, handler: HandlerId, state: SocketState) -> Handle {
        self.alloc_slot(SocketEntry::new(handler, state, Io::None))
    }

    // ----- delivery -----------------------------------------------------

    /// Runs the handler of `h` for `event`. Non-Close events for a closing
    /// socket are dropped.
    fn deliver(&mut self, h: Handle, event: Event) {
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
    /// unread is offered again next turn.
    pub(crate) fn dispatch_read(&mut self, h: Handle) {
        self.read_budget = Some((h, self.config.read_budget));
        self.deliver(h, Event::Read);
        self.read_budget = None;
        self.queue_read_again(h);
        self.flush_pending();
    }

    fn queue_read_again(&mut self, h: Handle) {
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
    fn teardown(&mut self, h: Handle) -> bool {
        let Some(entry) = self.entry_mut(h) else {
            return false;
        };
        if entry.state == SocketState::Closing {
            return false;
        }
        entry.state = SocketState::Closing;
        let io = std::mem::replace(&mut entry.io, Io::None);
        let timer = entry.internal_timer.take();
        match io {
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

    pub(crate) fn has_immediate_work(&self) -> bool {
        !self.read_again.is_empty() || !self.pending.is_empty() || !self.deferred.is_empty()
    }

    /// Runs deferred closures and posted tasks until none are left; tasks
    /// queued meanwhile run in the same turn.
    pub(crate) fn run_tasks(&mut self) {
        loop {
            let mut ran = false;
            while let Some(task) = self.deferred.pop_front() {
                task(self);
                self.flush_pending();
                ran = true;
            }
            let mut tasks = std::mem::take(&mut self.task_buf);
            if self.shared.take_tasks(&mut tasks) {
                for task in tasks.drain(..) {
                    task(self);
                    self.flush_pending();
                }
                ran = true;
            }
            self.task_buf = tasks;
            if !ran {
                return;
            }
        }
    }

    // ----- creating sockets ---------------------------------------------

    /// Creates a socket in state [`SocketState::Idle`] served by `handler`;
    /// then [`listen_on`](Self::listen_on) or [`connect_on`](Self::connect_on).
    pub fn create_socket<H: Handler>(&mut self, handler: H) -> Handle {
        let id = self.handlers.insert(Box::new(handler));
        self.new_socket_with(id, SocketState::Idle)
    }

    /// Listens on `addr` (`netlib_listen`). Accepted connections arrive as
    /// [`Event::Connect`] on new handles served by `handler`.
    ///
    /// ```
    /// use netlib::{EventDispatch, ListenOptions};
    /// let mut dispatch = EventDispatch::new().unwrap();
    /// let ctx = dispatch.context();
    /// let listener = ctx
    ///     .listen("127.0.0.1:0".parse().unwrap(), &ListenOptions::default(), |_ctx: &mut netlib::Context, _h, _ev| {})
    ///     .unwrap();
    /// assert!(ctx.local_addr(listener).unwrap().port() != 0);
    /// ```
    pub fn listen<H: Handler>(
        &mut self,
        addr: SocketAddr,
        opts: &ListenOptions,
        handler: H,
    ) -> Result<Handle> {
        let h = self.create_socket(handler);
        if let Err(e) = self.listen_on(h, addr, opts) {
            self.free_slot(h);
            return Err(e);
        }
        Ok(h)
    }

    /// Listens on every address in `addrs` with one shared handler (TeamTalk's
    /// `;`-separated listen lists). Fails as a whole: on error no listener is
    /// left open.
    pub fn listen_all<H: Handler>(
        &mut self,
        addrs: &[SocketAddr],
        opts: &ListenOptions,
        handler: H,
    ) -> Result<Vec<Handle>> {
        let id = self.handlers.insert(Box::new(handler));
        let mut handles = Vec::with_capacity(addrs.len());
        for (i, addr) in addrs.iter().enumerate() {
            if i > 0 {
                self.handlers.add_ref(id);
            }
            let h = self.new_socket_with(id, SocketState::Idle);
            if let Err(e) = self.listen_on(h, *addr, opts) {
                self.free_slot(h);
                for h in handles {
                    self.close_with(h, CloseReason::Local);
                    self.pending.retain(|(p, _)| *p != h);
                    self.free_slot(h);
                }
                return Err(e);
            }
            handles.push(h);
        }
        if addrs.is_empty() {
            self.handlers.release(id);
        }
        Ok(handles)
    }

    /// Registers a handler that lives until [`remove_handler`](Self::remove_handler),
    /// independent of sockets; attach sockets to it with
    /// [`listen_with`](Self::listen_with), [`connect_with`](Self::connect_with)
    /// and [`attach`](Self::attach).
    pub fn add_handler<H: Handler>(&mut self, handler: H) -> HandlerRef {
        let id = self.handlers.insert(Box::new(handler));
        self.handlers.reference(id)
    }

    /// Drops the registration of a handler; it is dropped once no socket
    /// uses it. False if the reference is stale.
    pub fn remove_handler(&mut self, r: HandlerRef) -> bool {
        match self.handlers.resolve(r) {
            Some(id) => {
                self.handlers.release(id);
                true
            }
            None => false,
        }
    }

    fn socket_for(&mut self, r: HandlerRef) -> Result<Handle> {
        let id = self.handlers.resolve(r).ok_or(Error::InvalidHandle)?;
        self.handlers.add_ref(id);
        Ok(self.new_socket_with(id, SocketState::Idle))
    }

    /// [`listen`](Self::listen) with a registered handler.
    pub fn listen_with(
        &mut self,
        addr: SocketAddr,
        opts: &ListenOptions,
        r: HandlerRef,
    ) -> Result<Handle> {
        let h = self.socket_for(r)?;
        if let Err(e) = self.listen_on(h, addr, opts) {
            self.free_slot(h);
            return Err(e);
        }
        Ok(h)
    }

    /// [`connect`](Self::connect) with a registered handler.
    pub fn connect_with(
        &mut self,
        addr: SocketAddr,
        opts: &ConnectOptions,
        r: HandlerRef,
    ) -> Result<Handle> {
        let h = self.socket_for(r)?;
        if let Err(e) = self.connect_on(h, addr, opts) {
            self.free_slot(h);
            return Err(e);
        }
        Ok(h)
    }

    /// Hands socket `h` to a registered handler.
    pub fn attach(&mut self, h: Handle, r: HandlerRef) -> Result<()> {
        self.open_entry(h)?;
        let id = self.handlers.resolve(r).ok_or(Error::InvalidHandle)?;
        self.handlers.add_ref(id);
        self.replace_handler(h, id)
    }

    /// A reference to the handler serving `h`, usable with
    /// [`with_handler`](Self::with_handler), timers and `attach`.
    pub fn handler_of(&self, h: Handle) -> Result<HandlerRef> {
        let e = self.entry(h).ok_or(Error::InvalidHandle)?;
        Ok(self.handlers.reference(e.handler))
    }

    /// Calls `f` with the handler `r` as its concrete type `H` - how a
    /// posted closure (say, a result from a worker thread) reaches the
    /// object that owns the connections. `None` if the reference is stale,
    /// the handler is of another type, or it is the one running now (a
    /// handler already has itself).
    pub fn with_handler<H: Handler, R>(
        &mut self,
        r: HandlerRef,
        f: impl FnOnce(&mut H, &mut Context) -> R,
    ) -> Option<R> {
        let id = self.handlers.resolve(r)?;
        let mut handler = self.handlers.take(id)?;
        let out = (handler.as_mut() as &mut dyn std::any::Any)
            .downcast_mut::<H>()
            .map(|typed| f(typed, self));
        self.handlers.put_back(id, handler);
        out
    }

    /// Makes an idle socket listen on `addr`. Listening twice, or on a socket
    /// that connects, is [`Error::InvalidState`].
    pub fn listen_on(&mut self, h: Handle, addr: SocketAddr, opts: &ListenOptions) -> Result<()> {
        let entry = self.open_entry(h)?;
        if entry.state != SocketState::Idle {
            return Err(Error::InvalidState {
                op: "listen",
                state: entry.state,
            });
        }
        let mut listener = bind_listener(addr, opts)?;
        self.poll
            .registry()
            .register(&mut listener, h.token(), Interest::READABLE)?;
        let entry = self.open_entry(h)?;
        entry.io = Io::Listener(listener);
        entry.state = SocketState::Listening;
        entry.accept_nodelay = opts.nodelay;
        entry.accept_half_close = opts.half_close;
        Ok(())
    }

    /// Starts connecting to `addr` (`netlib_connect`). Completion arrives as
    /// [`Event::Confirm`], failure as [`Event::Close`] with the reason - also
    /// when `connect` fails at once, so callers have a single failure path.
    /// `Err` only when no socket could be created at all.
    pub fn connect<H: Handler>(
        &mut self,
        addr: SocketAddr,
        opts: &ConnectOptions,
        handler: H,
    ) -> Result<Handle> {
        let h = self.create_socket(handler);
        if let Err(e) = self.connect_on(h, addr, opts) {
            self.free_slot(h);
            return Err(e);
        }
        Ok(h)
    }

    /// Starts connecting an idle socket; see [`connect`](Self::connect).
    pub fn connect_on(&mut self, h: Handle, addr: SocketAddr, opts: &ConnectOptions) -> Result<()> {
        let entry = self.open_entry(h)?;
        if entry.state != SocketState::Idle {
            return Err(Error::InvalidState {
                op: "connect",
                state: entry.state,
            });
        }
        let (mut stream, failure) = start_connect(addr, opts)?;
        self.poll.registry().register(
            &mut stream,
            h.token(),
            Interest::READABLE | Interest::WRITABLE,
        )?;
        let timer = match (&failure, opts.timeout) {
            (None, Some(t)) => Some(self.timers.insert(
                Instant::now() + t,
                None,
                TimerTask::ConnectTimeout(h),
            )),
            _ => None,
        };
        let entry = self.open_entry(h)?;
        entry.io = Io::Stream(stream);
        entry.state = SocketState::Connecting;
        entry.peer = Some(addr);
        entry.half_close = opts.half_close;
        entry.internal_timer = timer;
        if let Some(e) = failure {
            log::debug!("netlib: {h} connect to {addr} failed at once: {e}");
            self.close_with(h, CloseReason::from_io(&e));
        }
        Ok(())
    }

    /// Registers an accepted stream under a new handle sharing the
    /// listener's handler.
    pub(crate) fn adopt_accepted(
        &mut self,
        listener: Handle,
        mut stream: mio::net::TcpStream,
        peer: SocketAddr,
    ) -> Option<Handle> {
        let l = self.entry(listener)?;
        let (handler, nodelay, half_close) = (l.handler, l.accept_nodelay, l.accept_half_close);
        if nodelay {
            if let Err(e) = stream.set_nodelay(true) {
                log::warn!("netlib: TCP_NODELAY on connection from {peer}: {e}");
            }
        }
        self.handlers.add_ref(handler);
        let h = self.new_socket_with(handler, SocketState::Connected);
        if let Err(e) = self.poll.registry().register(
            &mut stream,
            h.token(),
            Interest::READABLE | Interest::WRITABLE,
        ) {
            log::error!("netlib: cannot register connection from {peer}: {e}");
            self.free_slot(h);
            return None;
        }
        let entry = self.entry_mut(h)?;
        entry.io = Io::Stream(stream);
        entry.peer = Some(peer);
        entry.half_close = half_close;
        Some(h)
    }

    // ----- data ---------------------------------------------------------

    /// Sends as much of `buf` as the kernel takes now (`netlib_send`).
    ///
    /// Returns the number of bytes taken; fewer than `buf.len()` means the
    /// kernel buffer filled, and an [`Event::Write`] follows when it drains.
    /// [`Error::WouldBlock`] if nothing was taken. A hard error (reset, broken
    /// pipe, ...) closes the socket - its Close event carries the reason -
    /// and is returned as [`Error::Io`]; it is never reported as would-block.
    pub fn send(&mut self, h: Handle, buf: &[u8]) -> Result<usize> {
        let entry = self.open_entry(h)?;
        if entry.state != SocketState::Connected {
            return Err(Error::InvalidState {
                op: "send",
                state: entry.state,
            });
        }
        let Io::Stream(stream) = &entry.io else {
            return Err(Error::InvalidHandle);
        };
        let mut stream = stream;
        let mut sent = 0;
        while sent < buf.len() {
            match stream.write(&buf[sent..]) {
                Ok(0) => {
                    entry.want_write = true;
                    break;
                }
                Ok(n) => {
                    sent += n;
                    if sent < buf.len() {
                        // A short write filled the kernel buffer; retrying
                        // would only return EAGAIN. Edge-triggered epoll
                        // reports the space when it frees up.
                        entry.want_write = true;
                        break;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    entry.want_write = true;
                    break;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    self.close_with(h, CloseReason::from_io(&e));
                    return Err(Error::Io(e));
                }
            }
        }
        if sent == 0 && !buf.is_empty() {
            Err(Error::WouldBlock)
        } else {
            Ok(sent)
        }
    }

    /// Reads into `buf` (`netlib_recv`).
    ///
    /// `Ok(n > 0)`: data. `Ok(0)`: end-of-stream (or an empty `buf`); the
    /// socket then closes with [`CloseReason::PeerClosed`] when the current
    /// callback returns - until then it may still send, so a request that
    /// arrived with the peer's FIN can be answered - or for half-close
    /// sockets an [`Event::ReadClosed`] follows and the socket stays open.
    /// [`Error::WouldBlock`]: nothing more now - the kernel buffer is empty,
    /// or this Read event's byte budget is spent (the socket is offered again
    /// next turn). A hard error closes the socket and is returned.
    pub fn recv(&mut self, h: Handle, buf: &mut [u8]) -> Result<usize> {
        let budget = match self.read_budget {
            Some((bh, left)) if bh == h => Some(left),
            _ => None,
        };
        let entry = self.open_entry(h)?;
        if entry.state != SocketState::Connected {
            return Err(Error::InvalidState {
                op: "recv",
                state: entry.state,
            });
        }
        if entry.read_closed {
            return Ok(0);
        }
        let limit = match budget {
            Some(0) => return Err(Error::WouldBlock),
            Some(left) => left.min(buf.len()),
            None => buf.len(),
        };
        if limit == 0 {
            return Ok(0);
        }
        if !entry.readable {
            // Drained since the last edge: the kernel would say EAGAIN, and
            // edge-triggered epoll reports new data with a new edge.
            return Err(Error::WouldBlock);
        }
        let Io::Stream(stream) = &entry.io else {
            return Err(Error::InvalidHandle);
        };
        let mut stream = stream;
        loop {
            match stream.read(&mut buf[..limit]) {
                Ok(0) => {
                    entry.readable = false;
                    if entry.half_close {
                        entry.read_closed = true;
                        self.pending.push_back((h, Event::ReadClosed));
                    } else {
                        // Closed after the current callback returns: a
                        // request that came with the FIN can still be
                        // answered (the kernel sends the reply, then FIN).
                        entry.read_closed = true;
                        self.pending
                            .push_back((h, Event::Close(CloseReason::PeerClosed)));
                    }
                    return Ok(0);
                }
                Ok(n) => {
                    // A short read of a stream socket emptied the kernel
                    // buffer (as tokio assumes on Linux): skip the read that
                    // would only return EAGAIN. Not once the peer's FIN was
                    // reported - no new edge would announce end-of-stream.
                    if n < limit && !entry.hangup_seen {
                        entry.readable = false;
                    }
                    if let Some((_, left)) = &mut self.read_budget {
                        if budget.is_some() {
                            *left -= n;
                        }
                    }
                    return Ok(n);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    entry.readable = false;
                    return Err(Error::WouldBlock);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    self.close_with(h, CloseReason::from_io(&e));
                    return Err(Error::Io(e));
                }
            }
        }
    }

    /// Closes the socket now (`netlib_close`). Its [`Event::Close`] with
    /// [`CloseReason::Local`] is delivered after the current callback; no
    /// other event follows. Unsent data in the kernel is still sent.
    pub fn close(&mut self, h: Handle) -> Result<()> {
        self.open_entry(h)?;
        self.close_with(h, CloseReason::Local);
        Ok(())
    }

    /// Shuts down the sending side (half-close); the peer reads end-of-stream
    /// once the kernel has sent what it holds. Receiving continues.
    pub fn shutdown_write(&mut self, h: Handle) -> Result<()> {
        let entry = self.open_entry(h)?;
        match (&entry.state, entry.stream()) {
            (SocketState::Connected, Some(s)) => Ok(s.shutdown(std::net::Shutdown::Write)?),
            (state, _) => Err(Error::InvalidState {
                op: "shut down",
                state: *state,
            }),
        }
    }

    /// Stops delivering [`Event::Read`] for `h` (backpressure: a relay stops
    /// reading one side while the other drains). Data waits in the kernel.
    pub fn pause_read(&mut self, h: Handle) -> Result<()> {
        self.open_entry(h)?.read_paused = true;
        Ok(())
    }

    /// Resumes [`Event::Read`] delivery; data that arrived meanwhile is
    /// announced in the next turn.
    pub fn resume_read(&mut self, h: Handle) -> Result<()> {
        let entry = self.open_entry(h)?;
        if entry.read_paused {
            entry.read_paused = false;
            // Data may have arrived while paused without a new edge to come.
            entry.readable = true;
            self.queue_read_again(h);
        }
        Ok(())
    }

    // ----- handlers and options -----------------------------------------

    /// Hands `h` to a new handler (`NETLIB_OPT_SET_CALLBACK`); later events go
    /// there. Typically called for an accepted socket in its
    /// [`Event::Connect`].
    pub fn set_handler<H: Handler>(&mut self, h: Handle, handler: H) -> Result<()> {
        self.open_entry(h)?;
        let id = self.handlers.insert(Box::new(handler));
        self.replace_handler(h, id)
    }

    /// Makes `h` share the handler of `other`, so one object can serve
    /// sockets created separately (say, a server's outgoing links).
    pub fn share_handler(&mut self, h: Handle, other: Handle) -> Result<()> {
        self.open_entry(h)?;
        let id = self.open_entry(other)?.handler;
        self.handlers.add_ref(id);
        self.replace_handler(h, id)
    }

    fn replace_handler(&mut self, h: Handle, id: HandlerId) -> Result<()> {
        let entry = self.open_entry(h)?;
        let old = std::mem::replace(&mut entry.handler, id);
        self.handlers.release(old);
        Ok(())
    }

    /// The socket's state, or `None` for a stale handle.
    pub fn state(&self, h: Handle) -> Option<SocketState> {
        self.entry(h).map(|e| e.state)
    }

    /// Number of sockets in the table, closing ones included.
    pub fn socket_count(&self) -> usize {
        self.open_sockets
    }

    /// The remote address (`NETLIB_OPT_GET_REMOTE_IP`/`_PORT`).
    pub fn peer_addr(&self, h: Handle) -> Result<SocketAddr> {
        self.entry(h)
            .and_then(|e| e.peer)
            .ok_or(Error::InvalidHandle)
    }

    /// The local address (`NETLIB_OPT_GET_LOCAL_IP`/`_PORT`).
    pub fn local_addr(&self, h: Handle) -> Result<SocketAddr> {
        match self.entry(h).map(|e| &e.io) {
            Some(Io::Listener(l)) => Ok(l.local_addr()?),
            Some(Io::Stream(s)) => Ok(s.local_addr()?),
            _ => Err(Error::InvalidHandle),
        }
    }

    fn sock_ref(&self, h: Handle) -> Result<SockRef<'_>> {
        match self.entry(h).map(|e| &e.io) {
            Some(Io::Listener(l)) => Ok(SockRef::from(l)),
            Some(Io::Stream(s)) => Ok(SockRef::from(s)),
            _ => Err(Error::InvalidHandle),
        }
    }

    /// Sets TCP_NODELAY.
    pub fn set_nodelay(&self, h: Handle, on: bool) -> Result<()> {
        Ok(self.sock_ref(h)?.set_tcp_nodelay(on)?)
    }

    /// Reads TCP_NODELAY.
    pub fn nodelay(&self, h: Handle) -> Result<bool> {
        Ok(self.sock_ref(h)?.tcp_nodelay()?)
    }

    /// Sets SO_SNDBUF (`NETLIB_OPT_SET_SEND_BUF_SIZE`).
    pub fn set_send_buffer_size(&self, h: Handle, bytes: usize) -> Result<()> {
        Ok(self.sock_ref(h)?.set_send_buffer_size(bytes)?)
    }

    /// Reads SO_SNDBUF.
    pub fn send_buffer_size(&self, h: Handle) -> Result<usize> {
        Ok(self.sock_ref(h)?.send_buffer_size()?)
    }

    /// Sets SO_RCVBUF (`NETLIB_OPT_SET_RECV_BUF_SIZE`).
    pub fn set_recv_buffer_size(&self, h: Handle, bytes: usize) -> Result<()> {
        Ok(self.sock_ref(h)?.set_recv_buffer_size(bytes)?)
    }

    /// Reads SO_RCVBUF.
    pub fn recv_buffer_size(&self, h: Handle) -> Result<usize> {
        Ok(self.sock_ref(h)?.recv_buffer_size()?)
    }

    /// Enables TCP keepalive probing after `idle` without traffic, or
    /// disables it with `None`.
    pub fn set_keepalive(&self, h: Handle, idle: Option<Duration>) -> Result<()> {
        let sock = self.sock_ref(h)?;
        match idle {
            Some(t) => sock.set_tcp_keepalive(&TcpKeepalive::new().with_time(t))?,
            None => sock.set_keepalive(false)?,
        }
        Ok(())
    }

    /// Reads SO_KEEPALIVE.
    pub fn keepalive(&self, h: Handle) -> Result<bool> {
        Ok(self.sock_ref(h)?.keepalive()?)
    }

    // ----- timers, hooks, deferred work ---------------------------------

    /// Runs `f` once after `delay` (`netlib_register_timer`, one-shot).
    pub fn add_timer<F>(&mut self, delay: Duration, f: F) -> TimerId
    where
        F: FnMut(&mut Context, TimerId) + 'static,
    {
        self.timers.insert(
            Instant::now() + delay,
            None,
            TimerTask::Callback(Box::new(f)),
        )
    }

    /// Runs `f` every `interval`, first after one interval. A loop that
    /// stalls for several intervals runs it once, then keeps the schedule.
    pub fn add_repeating_timer<F>(&mut self, interval: Duration, f: F) -> TimerId
    where
        F: FnMut(&mut Context, TimerId) + 'static,
    {
        self.timers.insert(
            Instant::now() + interval,
            Some(interval),
            TimerTask::Callback(Box::new(f)),
        )
    }

    /// Delivers [`Event::Timer`] to the handler of `h` after `delay`, then
    /// every `repeat` if given. Stops by itself when the socket closes.
    pub fn add_socket_timer(
        &mut self,
        h: Handle,
        delay: Duration,
        repeat: Option<Duration>,
    ) -> Result<TimerId> {
        self.open_entry(h)?;
        Ok(self
            .timers
            .insert(Instant::now() + delay, repeat, TimerTask::Socket(h)))
    }

    /// Number of live timers, the dispatcher's own (connect timeouts,
    /// accept pauses) included.
    pub fn timer_count(&self) -> usize {
        self.timers.len()
    }

    /// Calls [`Handler::on_timer`] of registered handler `r` after `delay`,
    /// then every `repeat` if given. Stops when the handler is gone.
    pub fn add_handler_timer(
        &mut self,
        r: HandlerRef,
        delay: Duration,
        repeat: Option<Duration>,
    ) -> Result<TimerId> {
        self.handlers.resolve(r).ok_or(Error::InvalidHandle)?;
        Ok(self
            .timers
            .insert(Instant::now() + delay, repeat, TimerTask::Handler(r)))
    }

    /// Cancels a timer (`netlib_delete_timer`); true if it was live. A timer
    /// may cancel itself from its own callback.
    pub fn cancel_timer(&mut self, id: TimerId) -> bool {
        self.timers.cancel(id)
    }

    /// Adds a closure run once per loop iteration (`netlib_add_loop`).
    pub fn add_loop_hook<F>(&mut self, f: F) -> HookId
    where
        F: FnMut(&mut Context) + 'static,
    {
        self.hooks.add(Box::new(f))
    }

    /// Removes a loop hook; true if it existed. A hook may remove itself.
    pub fn remove_loop_hook(&mut self, id: HookId) -> bool {
        self.hooks.remove(id)
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
}
