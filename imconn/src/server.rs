//! [`ImConn`] and [`ImServer`]: TeamTalk's `CImConn` in Rust.
//!
//! A server implements [`ImConn`] for its connection type - usually only
//! [`handle_pdu`](ImConn::handle_pdu) and the hooks it cares about; reading,
//! framing, output queueing, heartbeats and timeouts come with the defaults.
//!
//! One [`ImServer`] is registered with the dispatcher as a netlib handler and
//! serves every socket of that server: accepted clients and the reconnecting
//! links it opens to other servers (TeamTalk's `ServInfo`). It owns the
//! connection table (keyed by handle, O(1)) and the server-wide state
//! ([`ImConn::Shared`]). While a connection's hook runs, that connection is
//! taken out of the table and the hook gets an [`ImCtx`] holding its buffers,
//! the shared state and the *other* connections, so it can answer, forward to
//! another connection, or close either, without `RefCell`.
//!
//! A malformed frame closes only its connection, with a logged reason.

use crate::buffered::{BufferedConn, Limits, SendError, SendStatus};
use crate::policy::{evaluate, Backoff, Due, Timeouts};
use netlib::{CloseReason, ConnectOptions, Context, Event, Handle, Handler, HandlerRef, TimerId};
use pdu::{cid, proto::ImHeartBeat, sid, FrameDecoder, Header, Message, Pdu, PduRef};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// Per-connection settings.
#[derive(Debug, Clone, Copy)]
pub struct ConnConfig {
    /// Output limits.
    pub limits: Limits,
    /// Heartbeat, idle and login deadlines.
    pub timeouts: Timeouts,
    /// Largest accepted frame (default 4 MiB).
    pub max_frame_len: u32,
}

impl ConnConfig {
    /// Settings for a client connection (TeamTalk's client timeouts).
    pub fn client() -> ConnConfig {
        ConnConfig {
            limits: Limits::default(),
            timeouts: Timeouts::CLIENT,
            max_frame_len: pdu::DEFAULT_MAX_FRAME_LEN,
        }
    }

    /// Settings for a server-to-server link.
    pub fn server_link() -> ConnConfig {
        ConnConfig {
            timeouts: Timeouts::SERVER_LINK,
            ..ConnConfig::client()
        }
    }
}

/// A connection's behaviour, in the subclass style of TeamTalk's `CImConn`.
pub trait ImConn: Sized + 'static {
    /// Server-wide state shared by all connections of an [`ImServer`].
    type Shared: 'static;

    /// A whole frame arrived.
    fn handle_pdu(&mut self, cx: &mut ImCtx<'_, Self>, pdu: PduRef<'_>);

    /// An accepted connection is ready (its object was just created).
    fn on_connect(&mut self, cx: &mut ImCtx<'_, Self>) {
        let _ = cx;
    }

    /// An outgoing connection completed.
    fn on_confirm(&mut self, cx: &mut ImCtx<'_, Self>) {
        let _ = cx;
    }

    /// Data arrived. The default reads it, splits frames and calls
    /// [`handle_pdu`](Self::handle_pdu) for each.
    fn on_read(&mut self, cx: &mut ImCtx<'_, Self>) {
        read_frames(self, cx);
    }

    /// The socket can take more output. The default drains the queue and
    /// calls [`on_write_complete`](Self::on_write_complete) when it empties.
    fn on_write(&mut self, cx: &mut ImCtx<'_, Self>) {
        if let Ok(status) = cx.io.flush(cx.ctx) {
            if status.drained {
                self.on_write_complete(cx);
            }
        }
    }

    /// Everything queued has been handed to the kernel.
    fn on_write_complete(&mut self, cx: &mut ImCtx<'_, Self>) {
        let _ = cx;
    }

    /// The output queue crossed the high-water mark (a relay stops reading
    /// the other side here).
    fn on_high_water(&mut self, cx: &mut ImCtx<'_, Self>, queued: usize) {
        let _ = (cx, queued);
    }

    /// A timer this connection added with [`ImCtx::add_timer`] fired.
    fn on_timer(&mut self, cx: &mut ImCtx<'_, Self>, id: TimerId) {
        let _ = (cx, id);
    }

    /// The connection closed; the last hook it gets.
    fn on_close(&mut self, cx: &mut ImCtx<'_, Self>, reason: CloseReason) {
        let _ = (cx, reason);
    }
}

/// Reads available data and dispatches every complete frame - the default
/// [`ImConn::on_read`], callable from overrides.
///
/// Data is read into one scratch buffer shared by the server's connections,
/// and frames are decoded straight out of it; only a partial frame left at
/// the end of a read is copied into the connection's own input buffer. So
/// steady traffic of whole frames allocates nothing, and an idle connection
/// holds no input buffer at all.
///
/// Replies that `handle_pdu` sends to its own connection through
/// [`ImCtx::send_pdu`]/[`ImCtx::send_frame`] are collected and written with
/// one system call when the batch ends (or every 64 KiB), so a peer that
/// pipelines requests costs one read and one write per batch, not per frame.
pub fn read_frames<C: ImConn>(conn: &mut C, cx: &mut ImCtx<'_, C>) {
    let decoder = FrameDecoder::with_max_frame_len(cx.meta.config.max_frame_len);
    // Replies to this connection made while its frames are dispatched go
    // out together: one send per read instead of one per frame.
    cx.batching = true;
    cx.io.cork();
    let mut scratch = std::mem::take(&mut cx.conns.read_buf);
    if scratch.len() < READ_CHUNK {
        scratch.resize(READ_CHUNK, 0);
    }
    while !cx.io.is_closed() {
        let Some(n) = cx.io.recv_chunk(cx.ctx, &mut scratch) else {
            break;
        };
        if cx.io.in_buf.is_empty() {
            match dispatch_frames(conn, cx, &decoder, &scratch[..n]) {
                Some(used) if used < n && !cx.io.is_closed() => {
                    cx.io.in_buf.extend_from_slice(&scratch[used..n]);
                }
                Some(_) => {}
                None => break,
            }
        } else {
            cx.io.in_buf.extend_from_slice(&scratch[..n]);
            let buf = std::mem::take(&mut cx.io.in_buf);
            let used = dispatch_frames(conn, cx, &decoder, buf.as_slice());
            cx.io.in_buf = buf;
            match used {
                Some(used) => cx.io.in_buf.consume(used),
                None => break,
            }
            if cx.io.in_buf.is_empty() {
                cx.io.in_buf.release();
            }
        }
    }
    cx.conns.read_buf = scratch;
    cx.batching = false;
    cx.flush_batch();
}

/// Bytes read per system call into the shared scratch buffer.
const READ_CHUNK: usize = 64 * 1024;

/// Hands every whole frame in `data` to `handle_pdu`. Returns the bytes
/// used, or `None` when the connection was closed (malformed frame).
fn dispatch_frames<C: ImConn>(
    conn: &mut C,
    cx: &mut ImCtx<'_, C>,
    decoder: &FrameDecoder,
    data: &[u8],
) -> Option<usize> {
    let mut frames = decoder.frames(data);
    for frame in &mut frames {
        match frame {
            Ok(pdu) => {
                cx.io.frames_in += 1;
                conn.handle_pdu(cx, pdu);
                if cx.io.is_closed() {
                    break;
                }
            }
            Err(e) => {
                log::warn!(
                    "imconn: {} {:?} sent a malformed frame, closing: {e}",
                    cx.handle(),
                    cx.peer()
                );
                cx.io.force_close(cx.ctx);
                return None;
            }
        }
    }
    Some(frames.consumed())
}

/// Framework bookkeeping of one connection.
#[derive(Debug)]
struct Meta {
    config: ConnConfig,
    connected_at: Instant,
    connected: bool,
    logged_in: bool,
    policy_timer: Option<TimerId>,
    /// Index into the server's links when this is an outgoing link.
    link: Option<usize>,
    high_water: Option<usize>,
}

struct Slot<C> {
    handle: Handle,
    conn: C,
    io: BufferedConn,
    meta: Meta,
}

/// Connections keyed by handle: a slab indexed by the handle's slot number,
/// so lookups are O(1) and stale handles miss.
pub struct ConnTable<C> {
    slots: Vec<Option<Slot<C>>>,
    len: usize,
    /// Scratch space shared by all connections (one loop runs one hook at
    /// a time): what reads land in, and what frames are encoded into before
    /// the write-through send.
    read_buf: Vec<u8>,
    encode_buf: Vec<u8>,
    /// Replies of the connection whose input is being dispatched, sent in
    /// one system call when the batch ends (see [`read_frames`]).
    reply_buf: Vec<u8>,
}

impl<C> Default for ConnTable<C> {
    fn default() -> Self {
        ConnTable {
            slots: Vec::new(),
            len: 0,
            read_buf: Vec::new(),
            encode_buf: Vec::new(),
            reply_buf: Vec::new(),
        }
    }
}

impl<C: ImConn> ConnTable<C> {
    /// Number of connections (the one whose hook runs is not counted).
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn insert(&mut self, slot: Slot<C>) {
        let i = slot.handle.index() as usize;
        if self.slots.len() <= i {
            self.slots.resize_with(i + 1, || None);
        }
        if self.slots[i].replace(slot).is_none() {
            self.len += 1;
        }
    }

    fn take(&mut self, h: Handle) -> Option<Slot<C>> {
        let cell = self.slots.get_mut(h.index() as usize)?;
        if cell.as_ref()?.handle != h {
            return None;
        }
        self.len -= 1;
        cell.take()
    }

    fn slot_mut(&mut self, h: Handle) -> Option<&mut Slot<C>> {
        self.slots
            .get_mut(h.index() as usize)?
            .as_mut()
            .filter(|s| s.handle == h)
    }

    /// The connection object of `h`.
    pub fn get(&self, h: Handle) -> Option<&C> {
        self.slots
            .get(h.index() as usize)?
            .as_ref()
            .filter(|s| s.handle == h)
            .map(|s| &s.conn)
    }

    /// The connection object of `h`, mutably.
    pub fn get_mut(&mut self, h: Handle) -> Option<&mut C> {
        self.slot_mut(h).map(|s| &mut s.conn)
    }

    /// The buffers and counters of `h`.
    pub fn io(&self, h: Handle) -> Option<&BufferedConn> {
        self.slots
            .get(h.index() as usize)?
            .as_ref()
            .filter(|s| s.handle == h)
            .map(|s| &s.io)
    }

    /// Every connection.
    pub fn iter(&self) -> impl Iterator<Item = (Handle, &C)> {
        self.slots.iter().flatten().map(|s| (s.handle, &s.conn))
    }

    /// Encodes `msg` as a frame and sends it on `h`.
    pub fn send_pdu<M: Message>(
        &mut self,
        ctx: &mut Context,
        h: Handle,
        header: &Header,
        msg: &M,
    ) -> Result<SendStatus, SendError> {
        let i = h.index() as usize;
        let slot = self
            .slots
            .get_mut(i)
            .and_then(Option::as_mut)
            .filter(|s| s.handle == h)
            .ok_or(SendError::Closed)?;
        send_pdu_on(
            ctx,
            &mut slot.io,
            &mut slot.meta,
            &mut self.encode_buf,
            header,
            msg,
        )
    }

    /// Sends an already encoded frame (for forwarding) on `h`.
    pub fn send_frame(
        &mut self,
        ctx: &mut Context,
        h: Handle,
        frame: &[u8],
    ) -> Result<SendStatus, SendError> {
        let slot = self.slot_mut(h).ok_or(SendError::Closed)?;
        let status = slot.io.send(ctx, frame)?;
        slot.io.frames_out += 1;
        note_high_water(&mut slot.meta, status);
        Ok(status)
    }

    /// Closes `h` once its queued output is sent.
    pub fn close_after_flush(&mut self, ctx: &mut Context, h: Handle) {
        if let Some(slot) = self.slot_mut(h) {
            slot.io.close_after_flush(ctx);
        }
    }

    /// Closes `h` now.
    pub fn close(&mut self, ctx: &mut Context, h: Handle) {
        if let Some(slot) = self.slot_mut(h) {
            slot.io.force_close(ctx);
        }
    }
}

fn note_high_water(meta: &mut Meta, status: SendStatus) {
    if status.high_water {
        meta.high_water = Some(status.queued);
    }
}

/// Encodes into the shared scratch buffer, then sends write-through: the
/// kernel usually takes it all and nothing is allocated or queued.
fn send_pdu_on<M: Message>(
    ctx: &mut Context,
    io: &mut BufferedConn,
    meta: &mut Meta,
    encode_buf: &mut Vec<u8>,
    header: &Header,
    msg: &M,
) -> Result<SendStatus, SendError> {
    encode_buf.clear();
    if let Err(e) = Pdu::encode_message_into(encode_buf, header, msg) {
        log::error!("imconn: cannot encode frame: {e}");
        return Err(SendError::Closed);
    }
    let status = io.send(ctx, encode_buf)?;
    if encode_buf.capacity() > 1024 * 1024 {
        // One huge frame should not pin a huge scratch buffer.
        *encode_buf = Vec::new();
    }
    io.frames_out += 1;
    note_high_water(meta, status);
    Ok(status)
}

type MakeFn<C> = Box<dyn FnMut(&mut <C as ImConn>::Shared) -> C>;

/// A reconnecting link to another server (TeamTalk's `ServInfo`).
struct Link<C: ImConn> {
    addr: SocketAddr,
    config: ConnConfig,
    make: MakeFn<C>,
    handle: Option<Handle>,
    connected: bool,
    backoff: Backoff,
    retry: Option<TimerId>,
}

/// What a connection's hook may use: its own buffers, the shared state, the
/// other connections and the netlib context.
pub struct ImCtx<'a, C: ImConn> {
    /// The dispatcher.
    pub ctx: &'a mut Context,
    /// This connection's buffers and counters.
    pub io: &'a mut BufferedConn,
    meta: &'a mut Meta,
    /// Server-wide state.
    pub shared: &'a mut C::Shared,
    /// Every other connection of this server.
    pub conns: &'a mut ConnTable<C>,
    links: &'a mut Vec<Link<C>>,
    me: HandlerRef,
    /// Replies to this connection are collected in `conns.reply_buf`.
    batching: bool,
}

/// A reply batch is sent early once it holds this much.
const BATCH_LIMIT: usize = 64 * 1024;

impl<C: ImConn> ImCtx<'_, C> {
    /// Sends the replies collected while dispatching a batch of frames (and
    /// a shutdown requested meanwhile, after them). Batching continues if it
    /// was on.
    fn flush_batch(&mut self) {
        if let Ok(status) = self.io.send_corked_batch(self.ctx, &self.conns.reply_buf) {
            note_high_water(self.meta, status);
        }
        if self.batching {
            self.io.cork();
        }
        self.conns.reply_buf.clear();
        if self.conns.reply_buf.capacity() > 1024 * 1024 {
            self.conns.reply_buf = Vec::new();
        }
    }

    fn batch_status(&mut self) -> SendStatus {
        if self.conns.reply_buf.len() >= BATCH_LIMIT {
            self.flush_batch();
        }
        SendStatus {
            queued: self.io.queued() + self.conns.reply_buf.len(),
            ..SendStatus::default()
        }
    }

    /// This connection's socket.
    pub fn handle(&self) -> Handle {
        self.io.handle()
    }

    /// The peer's address.
    pub fn peer(&self) -> Option<SocketAddr> {
        self.io.peer()
    }

    /// Encodes `msg` after `header` and sends it on this connection.
    pub fn send_pdu<M: Message>(
        &mut self,
        header: &Header,
        msg: &M,
    ) -> Result<SendStatus, SendError> {
        if self.batching {
            if self.io.is_closed() {
                return Err(SendError::Closed);
            }
            if let Err(e) = Pdu::encode_message_into(&mut self.conns.reply_buf, header, msg) {
                log::error!("imconn: cannot encode frame: {e}");
                return Err(SendError::Closed);
            }
            self.io.frames_out += 1;
            return Ok(self.batch_status());
        }
        send_pdu_on(
            self.ctx,
            self.io,
            self.meta,
            &mut self.conns.encode_buf,
            header,
            msg,
        )
    }

    /// Sends an encoded frame on this connection.
    pub fn send_frame(&mut self, frame: &[u8]) -> Result<SendStatus, SendError> {
        if self.batching {
            if self.io.is_closed() {
                return Err(SendError::Closed);
            }
            self.conns.reply_buf.extend_from_slice(frame);
            self.io.frames_out += 1;
            return Ok(self.batch_status());
        }
        let status = self.io.send(self.ctx, frame)?;
        self.io.frames_out += 1;
        note_high_water(self.meta, status);
        Ok(status)
    }

    /// Encodes and sends on another connection of this server.
    pub fn send_pdu_to<M: Message>(
        &mut self,
        h: Handle,
        header: &Header,
        msg: &M,
    ) -> Result<SendStatus, SendError> {
        if h == self.handle() {
            return self.send_pdu(header, msg);
        }
        self.conns.send_pdu(self.ctx, h, header, msg)
    }

    /// Sends `msg` on every connected link; returns how many took it.
    pub fn send_pdu_to_links<M: Message>(&mut self, header: &Header, msg: &M) -> usize {
        let handles: Vec<Handle> = self.link_handles().collect();
        handles
            .into_iter()
            .filter(|h| self.send_pdu_to(*h, header, msg).is_ok())
            .count()
    }

    /// Handles of the connected links.
    pub fn link_handles(&self) -> impl Iterator<Item = Handle> + '_ {
        self.links
            .iter()
            .filter(|l| l.connected)
            .filter_map(|l| l.handle)
    }

    /// Marks the connection logged in: its login deadline no longer applies.
    pub fn set_logged_in(&mut self) {
        self.meta.logged_in = true;
    }

    /// Whether [`set_logged_in`](Self::set_logged_in) was called.
    pub fn is_logged_in(&self) -> bool {
        self.meta.logged_in
    }

    /// Replaces the connection's deadlines (say, mobile clients after login).
    pub fn set_timeouts(&mut self, timeouts: Timeouts) {
        self.meta.config.timeouts = timeouts;
        arm_policy(self.ctx, self.io, self.meta);
    }

    /// Adds a timer delivered to this connection's [`ImConn::on_timer`].
    pub fn add_timer(&mut self, delay: Duration, repeat: Option<Duration>) -> Option<TimerId> {
        self.ctx.add_socket_timer(self.handle(), delay, repeat).ok()
    }

    /// Closes once queued output is sent (TeamTalk's kick: the peer gets
    /// the last frame).
    pub fn close_after_flush(&mut self) {
        self.flush_batch();
        self.io.close_after_flush(self.ctx);
    }

    /// Closes now, dropping queued output.
    pub fn close(&mut self) {
        self.conns.reply_buf.clear();
        self.io.force_close(self.ctx);
    }

    /// The server's registered handler, for timers and posted closures.
    pub fn server_ref(&self) -> HandlerRef {
        self.me
    }
}

/// Re-arms the connection's policy timer at its next deadline.
fn arm_policy(ctx: &mut Context, io: &BufferedConn, meta: &mut Meta) {
    if let Some(t) = meta.policy_timer.take() {
        ctx.cancel_timer(t);
    }
    if !meta.connected {
        return;
    }
    let (_, next) = evaluate(
        &meta.config.timeouts,
        Instant::now(),
        meta.connected_at,
        meta.logged_in,
        io.last_recv,
        io.last_send,
    );
    if let Some(next) = next {
        let delay = next.saturating_duration_since(Instant::now());
        meta.policy_timer = ctx.add_socket_timer(io.handle(), delay, None).ok();
    }
}

type AcceptFn<C> = Box<dyn FnMut(&mut <C as ImConn>::Shared, Handle) -> Option<(C, ConnConfig)>>;

/// The netlib handler serving every connection of one server. See the
/// module docs.
pub struct ImServer<C: ImConn> {
    conns: ConnTable<C>,
    /// Server-wide state.
    pub shared: C::Shared,
    accept: AcceptFn<C>,
    links: Vec<Link<C>>,
    me: Option<HandlerRef>,
}

impl<C: ImConn> ImServer<C> {
    /// Registers a server with the dispatcher. `accept` makes the
    /// connection object for each accepted socket (given the listener), or
    /// refuses it with `None`. Listen with
    /// [`Context::listen_with`] and the returned reference.
    pub fn register(
        ctx: &mut Context,
        shared: C::Shared,
        accept: impl FnMut(&mut C::Shared, Handle) -> Option<(C, ConnConfig)> + 'static,
    ) -> HandlerRef {
        let me = ctx.add_handler(ImServer {
            conns: ConnTable::default(),
            shared,
            accept: Box::new(accept),
            links: Vec::new(),
            me: None,
        });
        ctx.with_handler(me, |s: &mut ImServer<C>, _| s.me = Some(me));
        me
    }

    /// The connections.
    pub fn conns(&self) -> &ConnTable<C> {
        &self.conns
    }

    /// The connections, mutably (to send from outside a hook).
    pub fn conns_mut(&mut self) -> &mut ConnTable<C> {
        &mut self.conns
    }

    /// Adds a reconnecting link to `addr`: connected now, and after any
    /// failure or close again after a backoff (1 s doubling to 64 s, with
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
        self.links.push(Link {
            addr,
            config,
            make: Box::new(make),
            handle: None,
            connected: false,
            backoff,
            retry: None,
        });
        let index = self.links.len() - 1;
        self.connect_link(ctx, index);
        index
    }

    /// Handle of link `index` while it is connected.
    pub fn link_handle(&self, index: usize) -> Option<Handle> {
        let link = self.links.get(index)?;
        link.connected.then_some(link.handle).flatten()
    }

    fn connect_link(&mut self, ctx: &mut Context, index: usize) {
        let Some(me) = self.me else {
            return;
        };
        let link = &mut self.links[index];
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
                let meta = Meta {
                    config: link.config,
                    connected_at: Instant::now(),
                    connected: false,
                    logged_in: true,
                    policy_timer: None,
                    link: Some(index),
                    high_water: None,
                };
                let io = BufferedConn::new(ctx, h, link.config.limits);
                self.conns.insert(Slot {
                    handle: h,
                    conn,
                    io,
                    meta,
                });
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
        let link = &mut self.links[index];
        let delay = link.backoff.next_delay();
        log::info!("imconn: link to {} retrying in {delay:?}", link.addr);
        link.handle = None;
        link.connected = false;
        link.retry = ctx.add_handler_timer(me, delay, None).ok();
    }

    /// Runs `f` on connection `h` taken out of the table, then the hooks its
    /// sends triggered, then puts it back.
    fn with_conn(
        &mut self,
        ctx: &mut Context,
        h: Handle,
        f: impl FnOnce(&mut C, &mut ImCtx<'_, C>),
    ) -> Option<Slot<C>> {
        let mut slot = self.conns.take(h)?;
        let me = self.me?;
        let mut cx = ImCtx {
            ctx,
            io: &mut slot.io,
            meta: &mut slot.meta,
            shared: &mut self.shared,
            conns: &mut self.conns,
            links: &mut self.links,
            me,
            batching: false,
        };
        f(&mut slot.conn, &mut cx);
        if let Some(queued) = cx.meta.high_water.take() {
            slot.conn.on_high_water(&mut cx, queued);
        }
        Some(slot)
    }

    fn run(&mut self, ctx: &mut Context, h: Handle, f: impl FnOnce(&mut C, &mut ImCtx<'_, C>)) {
        if let Some(slot) = self.with_conn(ctx, h, f) {
            self.conns.insert(slot);
        }
    }

    fn on_policy_timer(&mut self, ctx: &mut Context, h: Handle) {
        let mut scratch = std::mem::take(&mut self.conns.encode_buf);
        self.policy_check(ctx, h, &mut scratch);
        self.conns.encode_buf = scratch;
    }

    fn policy_check(&mut self, ctx: &mut Context, h: Handle, scratch: &mut Vec<u8>) {
        let Some(slot) = self.conns.slot_mut(h) else {
            return;
        };
        slot.meta.policy_timer = None;
        let (due, _) = evaluate(
            &slot.meta.config.timeouts,
            Instant::now(),
            slot.meta.connected_at,
            slot.meta.logged_in,
            slot.io.last_recv,
            slot.io.last_send,
        );
        match due {
            Due::LoginTimeout => {
                log::info!("imconn: {h} {:?} closed: no login in time", slot.io.peer());
                slot.io.force_close(ctx);
                return;
            }
            Due::IdleTimeout => {
                log::info!(
                    "imconn: {h} {:?} closed: peer silent too long",
                    slot.io.peer()
                );
                slot.io.force_close(ctx);
                return;
            }
            Due::Heartbeat => {
                let header = Header::new(sid::OTHER, cid::other::HEARTBEAT);
                let (io, meta) = (&mut slot.io, &mut slot.meta);
                let _ = send_pdu_on(ctx, io, meta, scratch, &header, &ImHeartBeat {});
            }
            Due::Nothing => {}
        }
        if let Some(slot) = self.conns.slot_mut(h) {
            arm_policy(ctx, &slot.io, &mut slot.meta);
        }
    }
}

impl<C: ImConn> Handler for ImServer<C> {
    fn on_event(&mut self, ctx: &mut Context, h: Handle, event: Event) {
        match event {
            Event::Connect { listener } => {
                let Some((conn, config)) = (self.accept)(&mut self.shared, listener) else {
                    let _ = ctx.close(h);
                    return;
                };
                let mut meta = Meta {
                    config,
                    connected_at: Instant::now(),
                    connected: true,
                    logged_in: config.timeouts.login.is_none(),
                    policy_timer: None,
                    link: None,
                    high_water: None,
                };
                let io = BufferedConn::new(ctx, h, config.limits);
                arm_policy(ctx, &io, &mut meta);
                self.conns.insert(Slot {
                    handle: h,
                    conn,
                    io,
                    meta,
                });
                self.run(ctx, h, |c, cx| c.on_connect(cx));
            }
            Event::Confirm => {
                let link = self.conns.slot_mut(h).and_then(|slot| {
                    slot.meta.connected = true;
                    slot.meta.connected_at = Instant::now();
                    let now = Instant::now();
                    slot.io.last_recv = now;
                    slot.io.last_send = now;
                    arm_policy(ctx, &slot.io, &mut slot.meta);
                    slot.meta.link
                });
                if let Some(index) = link {
                    let l = &mut self.links[index];
                    l.connected = true;
                    l.backoff.reset();
                    log::info!("imconn: link to {} connected", l.addr);
                }
                self.run(ctx, h, |c, cx| c.on_confirm(cx));
            }
            Event::Read => self.run(ctx, h, |c, cx| c.on_read(cx)),
            Event::Write => self.run(ctx, h, |c, cx| c.on_write(cx)),
            Event::ReadClosed => {}
            Event::Timer(id) => {
                let is_policy = self
                    .conns
                    .slot_mut(h)
                    .is_some_and(|s| s.meta.policy_timer == Some(id));
                if is_policy {
                    self.on_policy_timer(ctx, h);
                } else {
                    self.run(ctx, h, |c, cx| c.on_timer(cx, id));
                }
            }
            Event::Close(reason) => {
                let Some(slot) = self.with_conn(ctx, h, |c, cx| {
                    cx.io.mark_closed();
                    c.on_close(cx, reason);
                }) else {
                    return;
                };
                crate::buffered::log_close(h, slot.io.peer(), reason);
                if let Some(t) = slot.meta.policy_timer {
                    ctx.cancel_timer(t);
                }
                if let Some(index) = slot.meta.link {
                    if self.links[index].handle == Some(h) {
                        log::warn!("imconn: link to {} lost: {reason}", self.links[index].addr);
                        self.schedule_retry(ctx, index);
                    }
                }
            }
        }
    }

    fn on_timer(&mut self, ctx: &mut Context, id: TimerId) {
        if let Some(index) = self.links.iter().position(|l| l.retry == Some(id)) {
            self.connect_link(ctx, index);
        }
    }
}
