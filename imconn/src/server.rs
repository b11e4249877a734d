//! [`Server`]: the connection server for any [`Codec`].
//!
//! A protocol implements [`Connection`] for its connection type - usually
//! only [`on_frame`](Connection::on_frame) and the hooks it cares about.
//! One [`Server`] is registered with the dispatcher as a netlib handler and
//! serves every socket of that server: accepted clients and the
//! reconnecting links it opens to other servers. It owns
//!
//! - the connection table ([`ConnTable`]), keyed by handle, O(1);
//! - buffered I/O: reads into a scratch buffer shared by the loop's
//!   connections, decodes frames straight out of it, and keeps only a
//!   partial frame; output is written through and queued only when the
//!   kernel is full, with a high-water report and a hard cap;
//! - reply batching: replies made while a batch of input is dispatched go
//!   out in one system call;
//! - deadlines, opt-in per connection kind through [`ConnConfig`]: a
//!   heartbeat when quiet, a close when the peer is silent, a login
//!   deadline. `ConnConfig::default()` has none; TeamTalk's come with
//!   [`ConnConfig::client`] and [`ConnConfig::server_link`];
//! - reconnecting links ([`Server::add_link`]) and one-off outgoing
//!   connections ([`Server::connect`], [`ConnCtx::connect`] from a hook);
//! - the server-wide state ([`Connection::Shared`]).
//!
//! While a connection's hook runs, its object is taken out of the table and
//! the hook gets a [`ConnCtx`] with its buffers, the shared state and the
//! other connections. Bad input (a frame the codec calls invalid, or an
//! incomplete frame past [`ConnConfig::max_frame`]) closes only that
//! connection, with a logged reason.
//!
//! A small line-protocol server:
//!
//! ```
//! use imconn::{Accepted, ConnConfig, ConnCtx, Connection, LineCodec, Server};
//! use netlib::{EventDispatch, ListenOptions};
//!
//! /// Answers every line with its length.
//! struct Counter;
//! impl Connection for Counter {
//!     type Codec = LineCodec;
//!     type Shared = u64; // lines seen by the whole server
//!     fn on_frame(&mut self, cx: &mut ConnCtx<'_, Self>, line: &[u8]) {
//!         *cx.shared += 1;
//!         let _ = cx.send(format!("{} bytes", line.len()).as_str());
//!     }
//! }
//!
//! let mut dispatch = EventDispatch::new().unwrap();
//! let ctx = dispatch.context();
//! let server = Server::<Counter>::register(ctx, 0, |_, _: &Accepted| {
//!     Some((Counter, ConnConfig::default()))
//! });
//! ctx.listen_with("127.0.0.1:0".parse().unwrap(), &ListenOptions::default(), server)
//!     .unwrap();
//! ```

pub use crate::conn::{Accepted, ConnConfig, Connection, DEFAULT_MAX_FRAME};

use crate::buffered::{log_close, SendError, SendStatus};
use crate::codec::{Codec, Encoder};
use crate::ctx::ConnCtx;
use crate::link::{Link, Links};
use crate::policy::{evaluate, Backoff, Due};
use crate::table::{ConnState, ConnTable, Slot};
use crate::transfer::{peer, read_input, write_output};
use netlib::{CloseReason, ConnectOptions, Context, Event, Handle, Handler, HandlerRef, TimerId};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

type AcceptFn<C> =
    Box<dyn FnMut(&mut <C as Connection>::Shared, &Accepted) -> Option<(C, ConnConfig)>>;

/// The netlib handler serving every connection of one server. See the
/// module docs.
pub struct Server<C: Connection> {
    conns: ConnTable<C>,
    /// Server-wide state.
    pub shared: C::Shared,
    codec: C::Codec,
    accept: AcceptFn<C>,
    links: Links<C>,
    me: Option<HandlerRef>,
}

impl<C: Connection> Server<C> {
    /// Registers a server using the codec's default value. `accept` makes
    /// the connection object and its config for each accepted socket, or
    /// refuses it with `None` (the socket is closed). Listen with
    /// [`Context::listen_with`] and the returned reference.
    pub fn register(
        ctx: &mut Context,
        shared: C::Shared,
        accept: impl FnMut(&mut C::Shared, &Accepted) -> Option<(C, ConnConfig)> + 'static,
    ) -> HandlerRef
    where
        C::Codec: Default,
    {
        Server::register_with_codec(ctx, shared, C::Codec::default(), accept)
    }

    /// Registers a server whose connections each get a clone of `codec`.
    pub fn register_with_codec(
        ctx: &mut Context,
        shared: C::Shared,
        codec: C::Codec,
        accept: impl FnMut(&mut C::Shared, &Accepted) -> Option<(C, ConnConfig)> + 'static,
    ) -> HandlerRef {
        let me = ctx.add_handler(Server {
            conns: ConnTable::default(),
            shared,
            codec,
            accept: Box::new(accept),
            links: Links::default(),
            me: None,
        });
        ctx.with_handler(me, |s: &mut Server<C>, _| s.me = Some(me));
        me
    }

    /// The connections.
    pub fn conns(&self) -> &ConnTable<C> {
        &self.conns
    }

    /// The connections, mutably (their objects).
    pub fn conns_mut(&mut self) -> &mut ConnTable<C> {
        &mut self.conns
    }

    /// Encodes `item` and sends it on connection `h` from outside a hook (a
    /// timer, a posted closure).
    pub fn send_to<I>(
        &mut self,
        ctx: &mut Context,
        h: Handle,
        item: I,
    ) -> Result<SendStatus, SendError>
    where
        C::Codec: Encoder<I>,
    {
        let result = self.conns.send_to(ctx, h, item);
        self.deliver_notices(ctx);
        result
    }

    /// Sends already encoded bytes on connection `h` from outside a hook.
    pub fn send_bytes_to(
        &mut self,
        ctx: &mut Context,
        h: Handle,
        bytes: &[u8],
    ) -> Result<SendStatus, SendError> {
        let result = self.conns.send_bytes_to(ctx, h, bytes);
        self.deliver_notices(ctx);
        result
    }

    /// Closes connection `h` now; false if it is not open.
    pub fn close_conn(&mut self, ctx: &mut Context, h: Handle) -> bool {
        self.conns.close(ctx, h)
    }

    /// Closes connection `h` once its output is sent; false if not open.
    pub fn close_conn_after_flush(&mut self, ctx: &mut Context, h: Handle) -> bool {
        self.conns.close_after_flush(ctx, h)
    }

    /// Runs `f` as if it were a hook of connection `h` (from a timer or a
    /// posted closure); `None` if `h` is not open.
    pub fn with_conn<R>(
        &mut self,
        ctx: &mut Context,
        h: Handle,
        f: impl FnOnce(&mut C, &mut ConnCtx<'_, C>) -> R,
    ) -> Option<R> {
        let mut out = None;
        self.run(ctx, h, |c, cx| out = Some(f(c, cx)));
        out
    }

    /// Adds a reconnecting link to `addr`: connected now, and after any
    /// failure or close again after `backoff` (doubling to its cap, with
    /// jitter, reset on success). `make` creates the connection object for
    /// each attempt. Returns the link's index.
    pub fn add_link(
        &mut self,
        ctx: &mut Context,
        addr: SocketAddr,
        config: ConnConfig,
        backoff: Backoff,
        make: impl FnMut(&mut C::Shared) -> C + 'static,
    ) -> usize {
        self.links.list.push(Link {
            addr,
            config,
            make: Box::new(make),
            handle: None,
            connected: false,
            backoff,
            retry: None,
        });
        let index = self.links.list.len() - 1;
        self.connect_link(ctx, index);
        index
    }

    /// Opens an outgoing connection to `addr` with `conn` as its object (a
    /// one-off connection, not a reconnecting link: nothing is retried).
    /// Completion reaches `conn`'s [`on_confirm`](Connection::on_confirm);
    /// a failed connect - refused, unreachable, `opts.timeout` passed -
    /// reaches its [`on_close`](Connection::on_close) with the reason, also
    /// when the kernel refuses at once, so there is one failure path. `Err`
    /// only when no socket could be created at all (then `conn` is
    /// dropped). Nothing may be sent before `on_confirm`. From inside a
    /// hook, use [`ConnCtx::connect`].
    pub fn connect(
        &mut self,
        ctx: &mut Context,
        addr: SocketAddr,
        opts: &ConnectOptions,
        conn: C,
        config: ConnConfig,
    ) -> netlib::Result<Handle> {
        let me = self.me.ok_or(netlib::Error::InvalidHandle)?;
        start_connect(
            ctx,
            &mut self.conns,
            &self.codec,
            me,
            addr,
            opts,
            conn,
            config,
        )
    }

    /// Handle of link `index` while it is connected.
    pub fn link_handle(&self, index: usize) -> Option<Handle> {
        let link = self.links.list.get(index)?;
        link.connected.then_some(link.handle).flatten()
    }

    fn connect_link(&mut self, ctx: &mut Context, index: usize) {
        let Some(me) = self.me else {
            return;
        };
        let link = &mut self.links.list[index];
        link.retry = None;
        let opts = ConnectOptions {
            timeout: Some(Duration::from_secs(10)),
            ..ConnectOptions::default()
        };
        match ctx.connect_with(link.addr, &opts, me) {
            Ok(h) => {
                let conn = (link.make)(&mut self.shared);
                link.handle = Some(h);
                link.connected = false;
                let state =
                    ConnState::new(ctx, h, link.config, self.codec.clone(), false, Some(index));
                self.conns.insert(Slot { conn, state });
            }
            Err(e) => {
                // No socket at all (descriptor shortage...): retry later too.
                log::warn!("imconn: link to {} not started: {e}", link.addr);
                self.schedule_retry(ctx, index);
            }
        }
    }

    fn schedule_retry(&mut self, ctx: &mut Context, index: usize) {
        let Some(me) = self.me else {
            return;
        };
        let link = &mut self.links.list[index];
        let delay = link.backoff.next_delay();
        log::info!("imconn: link to {} retrying in {delay:?}", link.addr);
        link.handle = None;
        link.connected = false;
        link.retry = ctx.add_handler_timer(me, delay, None).ok();
    }

    /// Runs `f` on connection `h` taken out of the table and returns the
    /// slot (the caller puts it back, or not when it closed).
    fn with_slot(
        &mut self,
        ctx: &mut Context,
        h: Handle,
        f: impl FnOnce(&mut C, &mut ConnCtx<'_, C>),
    ) -> Option<Slot<C>> {
        let mut slot = self.conns.take(h)?;
        let me = self.me?;
        let mut cx = ConnCtx {
            ctx,
            shared: &mut self.shared,
            cur: &mut slot.state,
            conns: &mut self.conns,
            links: &mut self.links,
            me,
            batching: false,
            proto: &self.codec,
        };
        f(&mut slot.conn, &mut cx);
        Some(slot)
    }

    /// Runs hook `f` of connection `h`, then the high-water reports its
    /// sends caused. False if `h` has no connection here.
    fn run(
        &mut self,
        ctx: &mut Context,
        h: Handle,
        f: impl FnOnce(&mut C, &mut ConnCtx<'_, C>),
    ) -> bool {
        let found = match self.with_slot(ctx, h, f) {
            Some(slot) => {
                self.conns.insert(slot);
                true
            }
            None => false,
        };
        if !self.conns.notices.is_empty() {
            self.deliver_notices(ctx);
        }
        found
    }

    /// I/O for a socket of ours that has no connection (attached to this
    /// handler behind the server's back, or its object gone): close it
    /// rather than leave it readable and re-offered every turn.
    fn orphan(ctx: &mut Context, h: Handle) {
        log::warn!("imconn: {h} has no connection; closing it");
        let _ = ctx.close(h);
    }

    /// Reports the high-water crossings that sends made, to the hooks of
    /// the connections they happened on.
    fn deliver_notices(&mut self, ctx: &mut Context) {
        while !self.conns.notices.is_empty() {
            let (h, queued) = self.conns.notices.remove(0);
            if let Some(slot) = self.with_slot(ctx, h, |c, cx| c.on_high_water(cx, queued)) {
                self.conns.insert(slot);
            }
        }
    }

    fn policy_check(&mut self, ctx: &mut Context, h: Handle) {
        let mut scratch = std::mem::take(&mut self.conns.encode_buf);
        self.policy_check_with(ctx, h, &mut scratch);
        self.conns.encode_buf = scratch;
        self.deliver_notices(ctx);
    }

    fn policy_check_with(&mut self, ctx: &mut Context, h: Handle, scratch: &mut Vec<u8>) {
        let Some(slot) = self.conns.slot_mut(h) else {
            return;
        };
        let state = &mut slot.state;
        state.meta.policy_timer = None;
        let (due, _) = evaluate(
            &state.meta.config.timeouts,
            Instant::now(),
            state.meta.connected_at,
            state.meta.logged_in,
            state.io.last_recv,
            state.io.last_send,
        );
        match due {
            Due::LoginTimeout => {
                log::info!("imconn: {h} {} closed: no login in time", peer(&state.io));
                state.io.force_close(ctx);
                return;
            }
            Due::IdleTimeout => {
                log::info!(
                    "imconn: {h} {} closed: peer silent too long",
                    peer(&state.io)
                );
                state.io.force_close(ctx);
                return;
            }
            Due::Heartbeat => {
                scratch.clear();
                if state.codec.heartbeat(scratch) {
                    if let Ok(status) = state.io.send(ctx, scratch) {
                        if status.high_water {
                            self.conns.notices.push((h, status.queued));
                        }
                    }
                }
            }
            Due::Nothing => {}
        }
        if let Some(slot) = self.conns.slot_mut(h) {
            arm_policy(ctx, &mut slot.state);
        }
    }

    fn on_accepted(&mut self, ctx: &mut Context, h: Handle, listener: Handle) {
        let accepted = Accepted {
            handle: h,
            listener,
            peer: ctx.peer_addr(h).ok(),
            local: ctx.local_addr(h).ok(),
        };
        let Some((conn, config)) = (self.accept)(&mut self.shared, &accepted) else {
            let _ = ctx.close(h);
            return;
        };
        let mut state = ConnState::new(ctx, h, config, self.codec.clone(), true, None);
        arm_policy(ctx, &mut state);
        self.conns.insert(Slot { conn, state });
        self.run(ctx, h, |c, cx| c.on_connect(cx));
    }

    fn on_confirmed(&mut self, ctx: &mut Context, h: Handle) {
        let link = self.conns.slot_mut(h).and_then(|slot| {
            let state = &mut slot.state;
            let now = Instant::now();
            state.meta.connected = true;
            state.meta.connected_at = now;
            state.io.last_recv = now;
            state.io.last_send = now;
            arm_policy(ctx, state);
            state.meta.link
        });
        if let Some(index) = link {
            let l = &mut self.links.list[index];
            l.connected = true;
            l.backoff.reset();
            log::info!("imconn: link to {} connected", l.addr);
        }
        self.run(ctx, h, |c, cx| c.on_confirm(cx));
    }

    fn on_closed(&mut self, ctx: &mut Context, h: Handle, reason: CloseReason) {
        let Some(slot) = self.with_slot(ctx, h, |c, cx| {
            cx.cur.io.mark_closed();
            c.on_close(cx, reason);
        }) else {
            return;
        };
        log_close(h, slot.state.io.peer(), reason);
        if let Some(t) = slot.state.meta.policy_timer {
            ctx.cancel_timer(t);
        }
        if let Some(index) = slot.state.meta.link {
            if self.links.list[index].handle == Some(h) {
                log::warn!(
                    "imconn: link to {} lost: {reason}",
                    self.links.list[index].addr
                );
                self.schedule_retry(ctx, index);
            }
        }
        self.deliver_notices(ctx);
    }
}

/// Starts an outgoing connection and enters it in the table, waiting for
/// its Confirm (or Close).
#[allow(clippy::too_many_arguments)]
pub(crate) fn start_connect<C: Connection>(
    ctx: &mut Context,
    conns: &mut ConnTable<C>,
    codec: &C::Codec,
    me: HandlerRef,
    addr: SocketAddr,
    opts: &ConnectOptions,
    conn: C,
    config: ConnConfig,
) -> netlib::Result<Handle> {
    let h = ctx.connect_with(addr, opts, me)?;
    conns.insert(Slot {
        conn,
        state: ConnState::new(ctx, h, config, codec.clone(), false, None),
    });
    Ok(h)
}

/// Re-arms the connection's policy timer at its next deadline.
pub(crate) fn arm_policy<K>(ctx: &mut Context, state: &mut ConnState<K>) {
    let meta = &mut state.meta;
    if let Some(t) = meta.policy_timer.take() {
        ctx.cancel_timer(t);
    }
    if !meta.connected {
        return;
    }
    let now = Instant::now();
    let (due, next) = evaluate(
        &meta.config.timeouts,
        now,
        meta.connected_at,
        meta.logged_in,
        state.io.last_recv,
        state.io.last_send,
    );
    // A deadline can pass between a caller's own look and this one (the
    // policy check evaluates, sends a heartbeat, then re-arms here; a
    // stalled loop makes that gap long). What is due by now is done by a
    // check at once: for a close, `next` is None and would leave the
    // connection without a timer - never closed, never sent a heartbeat.
    let next = if due == Due::Nothing { next } else { Some(now) };
    if let Some(next) = next {
        let delay = next.saturating_duration_since(now);
        meta.policy_timer = ctx.add_socket_timer(state.handle, delay, None).ok();
    }
}

impl<C: Connection> Handler for Server<C> {
    fn on_event(&mut self, ctx: &mut Context, h: Handle, event: Event) {
        match event {
            Event::Connect { listener } => self.on_accepted(ctx, h, listener),
            Event::Confirm => self.on_confirmed(ctx, h),
            Event::Read => {
                if !self.run(ctx, h, read_input) {
                    Self::orphan(ctx, h);
                }
            }
            Event::Write => {
                if !self.run(ctx, h, write_output) {
                    Self::orphan(ctx, h);
                }
            }
            Event::ReadClosed => {
                self.run(ctx, h, |c, cx| c.on_read_closed(cx));
            }
            Event::Timer(id) => {
                let is_policy = self
                    .conns
                    .slot_mut(h)
                    .is_some_and(|s| s.state.meta.policy_timer == Some(id));
                if is_policy {
                    self.policy_check(ctx, h);
                } else {
                    self.run(ctx, h, |c, cx| c.on_timer(cx, id));
                }
            }
            Event::Close(reason) => self.on_closed(ctx, h, reason),
        }
    }

    fn on_timer(&mut self, ctx: &mut Context, id: TimerId) {
        if let Some(index) = self.links.by_retry_timer(id) {
            self.connect_link(ctx, index);
        } else {
            C::on_server_timer(&mut self.shared, ctx, id);
        }
    }
}
