//! [`ConnCtx`]: what a connection's hook may do.
//!
//! While a hook of connection `A` runs, `A`'s object is `&mut self` and
//! everything else - `A`'s buffers, the server's shared state, the other
//! connections, the links, the netlib [`Context`] - is reached through the
//! `ConnCtx`. So a hook can answer, forward to another connection, close
//! either, or add timers, without `RefCell`.
//!
//! Sending has two forms, both returning what happened:
//! [`send`](ConnCtx::send) on this connection and
//! [`send_to`](ConnCtx::send_to) on any connection of the server (this one
//! included: the current connection is reachable like the others). Replies
//! to the current connection made while a batch of its input is dispatched
//! are collected and written with one system call when the batch ends.
//!
//! A send that pushes a connection's output queue over its high-water mark
//! is reported to *that* connection's
//! [`on_high_water`](crate::Connection::on_high_water) as soon as the
//! running hook returns - also when the sending hook belonged to another
//! connection (fan-out in chat, msg_server, relays).

use crate::buffered::{BufferedConn, SendError, SendStatus};
use crate::codec::Encoder;
use crate::link::Links;
use crate::policy::Timeouts;
use crate::server::{ConnConfig, Connection};
use crate::table::{ConnState, ConnTable, SCRATCH_KEEP};
use netlib::{ConnectOptions, Context, Handle, HandlerRef, TimerId};
use std::net::SocketAddr;
use std::time::Duration;

/// A reply batch is sent early once it holds this much.
const BATCH_LIMIT: usize = 64 * 1024;

/// Replies at least this large are not copied into the reply batch when
/// nothing precedes them there; see [`ConnCtx::send_bytes`].
pub const DIRECT_SEND_MIN: usize = 4 * 1024;

/// The context of one connection's hook. See the module docs.
pub struct ConnCtx<'a, C: Connection> {
    /// The dispatcher.
    pub ctx: &'a mut Context,
    /// The server's state: per loop, shared by all its connections.
    pub shared: &'a mut C::Shared,
    pub(crate) cur: &'a mut ConnState<C::Codec>,
    pub(crate) conns: &'a mut ConnTable<C>,
    pub(crate) links: &'a mut Links<C>,
    pub(crate) me: HandlerRef,
    /// Replies to this connection are collected in `conns.reply_buf`.
    pub(crate) batching: bool,
    /// The server's codec, cloned for connections opened from a hook.
    pub(crate) proto: &'a C::Codec,
}

impl<C: Connection> ConnCtx<'_, C> {
    /// This connection's socket.
    pub fn handle(&self) -> Handle {
        self.cur.handle
    }

    /// The peer's address.
    pub fn peer(&self) -> Option<SocketAddr> {
        self.cur.io.peer()
    }

    /// This connection's buffers and counters.
    pub fn io(&self) -> &BufferedConn {
        &self.cur.io
    }

    /// The buffers and counters of connection `h` (this one included).
    pub fn io_of(&self, h: Handle) -> Option<&BufferedConn> {
        if h == self.cur.handle {
            Some(&self.cur.io)
        } else {
            self.conns.io(h)
        }
    }

    /// Bytes waiting to be sent on this connection, batched replies included.
    pub fn queued(&self) -> usize {
        self.cur.io.queued()
            + if self.batching {
                self.conns.reply_buf.len()
            } else {
                0
            }
    }

    /// The object of another connection of this server (`None` for this
    /// one - it is `self` in the hook - and for closed handles).
    pub fn conn(&self, h: Handle) -> Option<&C> {
        self.conns.get(h)
    }

    /// The object of another connection, mutably.
    pub fn conn_mut(&mut self, h: Handle) -> Option<&mut C> {
        self.conns.get_mut(h)
    }

    /// The other connections of this server.
    pub fn conns(&self) -> &ConnTable<C> {
        self.conns
    }

    /// Encodes `item` with this connection's codec and sends it here.
    pub fn send<I>(&mut self, item: I) -> Result<SendStatus, SendError>
    where
        C::Codec: Encoder<I>,
    {
        if !self.batching {
            let status = self
                .cur
                .send_item(self.ctx, &mut self.conns.encode_buf, item)?;
            self.note(status);
            return Ok(status);
        }
        if self.cur.io.is_closed() {
            return Err(SendError::Closed);
        }
        let before = self.conns.reply_buf.len();
        if let Err(e) = self.cur.codec.encode(item, &mut self.conns.reply_buf) {
            self.conns.reply_buf.truncate(before);
            return Err(SendError::Encode(e));
        }
        self.cur.io.frames_out += 1;
        Ok(self.batch_status())
    }

    /// Sends already encoded bytes on this connection. While a batch of
    /// input is dispatched, small replies are collected and written
    /// together; a reply of [`DIRECT_SEND_MIN`] bytes or more with nothing
    /// collected before it goes straight to the kernel instead (copying it
    /// into the batch would cost more than the system call it saves - an
    /// echo server would copy every byte twice).
    pub fn send_bytes(&mut self, bytes: &[u8]) -> Result<SendStatus, SendError> {
        if !self.batching || (self.conns.reply_buf.is_empty() && bytes.len() >= DIRECT_SEND_MIN) {
            let status = self.cur.io.send(self.ctx, bytes)?;
            self.cur.io.frames_out += 1;
            self.note(status);
            return Ok(status);
        }
        if self.cur.io.is_closed() {
            return Err(SendError::Closed);
        }
        self.conns.reply_buf.extend_from_slice(bytes);
        self.cur.io.frames_out += 1;
        Ok(self.batch_status())
    }

    /// Encodes `item` with `h`'s codec and sends it on connection `h`
    /// (this one included). [`SendError::Closed`] if `h` is not open.
    pub fn send_to<I>(&mut self, h: Handle, item: I) -> Result<SendStatus, SendError>
    where
        C::Codec: Encoder<I>,
    {
        if h == self.cur.handle {
            return self.send(item);
        }
        self.conns.send_to(self.ctx, h, item)
    }

    /// Sends already encoded bytes on connection `h` (this one included).
    pub fn send_bytes_to(&mut self, h: Handle, bytes: &[u8]) -> Result<SendStatus, SendError> {
        if h == self.cur.handle {
            return self.send_bytes(bytes);
        }
        self.conns.send_bytes_to(self.ctx, h, bytes)
    }

    /// Closes this connection once queued output is sent (TeamTalk's kick:
    /// the peer gets the last frame).
    pub fn close_after_flush(&mut self) {
        self.flush_batch();
        self.cur.io.close_after_flush(self.ctx);
    }

    /// Closes this connection now, dropping queued output.
    pub fn close(&mut self) {
        if self.batching {
            self.conns.reply_buf.clear();
        }
        self.cur.io.force_close(self.ctx);
    }

    /// Closes connection `h` (this one included) once its output is sent;
    /// false if `h` is not open.
    pub fn close_conn_after_flush(&mut self, h: Handle) -> bool {
        if h == self.cur.handle {
            self.close_after_flush();
            return true;
        }
        self.conns.close_after_flush(self.ctx, h)
    }

    /// Closes connection `h` (this one included) now; false if `h` is not
    /// open.
    pub fn close_conn(&mut self, h: Handle) -> bool {
        if h == self.cur.handle {
            self.close();
            return true;
        }
        self.conns.close(self.ctx, h)
    }

    /// Stops reading this connection (backpressure). Called from
    /// [`on_frame`](crate::Connection::on_frame), it also stops the
    /// dispatch of the frames already read: the next frame is not decoded,
    /// and the rest of the input is kept (however many frames it holds)
    /// until [`resume_read`](Self::resume_read). New input waits in the
    /// kernel.
    pub fn pause_read(&mut self) {
        self.cur.meta.read_paused = true;
        let _ = self.ctx.pause_read(self.cur.handle);
    }

    /// Resumes reading this connection: input held by
    /// [`pause_read`](Self::pause_read) is dispatched first, then the
    /// socket is read again (on the next turn of the loop if this hook is
    /// not `on_frame`).
    pub fn resume_read(&mut self) {
        self.cur.meta.read_paused = false;
        self.cur.meta.resume_on_drain = false;
        let _ = self.ctx.resume_read(self.cur.handle);
    }

    /// Backpressure against a peer that sends requests without reading the
    /// answers: stops reading this connection (as
    /// [`pause_read`](Self::pause_read)) until its queued output has all
    /// been handed to the kernel, then resumes by itself, before
    /// [`on_write_complete`](crate::Connection::on_write_complete) runs.
    /// Echo, HTTP and memcached call it when their output passes a mark.
    pub fn pause_until_drained(&mut self) {
        self.pause_read();
        self.cur.meta.resume_on_drain = true;
    }

    /// Opens an outgoing connection to `addr` served by this server, with
    /// `conn` as its object - what a proxy does for the client whose hook
    /// runs. Same contract as [`Server::connect`](crate::Server::connect):
    /// success reaches the new connection's
    /// [`on_confirm`](crate::Connection::on_confirm), failure its
    /// [`on_close`](crate::Connection::on_close) with the reason; `Err`
    /// only when no socket could be created (then `conn` is dropped).
    pub fn connect(
        &mut self,
        addr: SocketAddr,
        opts: &ConnectOptions,
        conn: C,
        config: ConnConfig,
    ) -> netlib::Result<Handle> {
        crate::server::start_connect(
            self.ctx, self.conns, self.proto, self.me, addr, opts, conn, config,
        )
    }

    /// Half-closes connection `h` (this one included) once its queued
    /// output is sent: its peer reads end-of-stream, and `h` keeps
    /// receiving. A relay does this to one side when the other side's peer
    /// finished sending ([`on_read_closed`](crate::Connection::on_read_closed)).
    /// Further sends to `h` fail. False if `h` is not open.
    pub fn shutdown_conn(&mut self, h: Handle) -> bool {
        if h == self.cur.handle {
            self.flush_batch();
            self.cur.io.shutdown(self.ctx);
            return true;
        }
        match self.conns.slot_mut(h) {
            Some(slot) => {
                slot.state.io.shutdown(self.ctx);
                true
            }
            None => false,
        }
    }

    /// Whether [`pause_read`](Self::pause_read) is in force.
    pub fn is_read_paused(&self) -> bool {
        self.cur.meta.read_paused
    }

    /// Marks the connection logged in: its login deadline no longer applies.
    pub fn set_logged_in(&mut self) {
        self.cur.meta.logged_in = true;
    }

    /// Whether [`set_logged_in`](Self::set_logged_in) was called (always
    /// true for connections without a login deadline).
    pub fn is_logged_in(&self) -> bool {
        self.cur.meta.logged_in
    }

    /// Replaces the connection's deadlines (say, mobile clients after login).
    pub fn set_timeouts(&mut self, timeouts: Timeouts) {
        self.cur.meta.config.timeouts = timeouts;
        crate::server::arm_policy(self.ctx, self.cur);
    }

    /// Adds a timer delivered to this connection's
    /// [`on_timer`](crate::Connection::on_timer); stops with the connection.
    pub fn add_timer(&mut self, delay: Duration, repeat: Option<Duration>) -> Option<TimerId> {
        self.ctx
            .add_socket_timer(self.cur.handle, delay, repeat)
            .ok()
    }

    /// Handles of the connected links.
    pub fn link_handles(&self) -> impl Iterator<Item = Handle> + '_ {
        self.links.connected()
    }

    /// The server's registered handler, for timers and posted closures.
    pub fn server_ref(&self) -> HandlerRef {
        self.me
    }

    fn note(&mut self, status: SendStatus) {
        if status.high_water {
            self.conns.notices.push((self.cur.handle, status.queued));
        }
    }

    fn batch_status(&mut self) -> SendStatus {
        if self.conns.reply_buf.len() >= BATCH_LIMIT {
            self.flush_batch();
        }
        SendStatus {
            queued: self.cur.io.queued() + self.conns.reply_buf.len(),
            ..SendStatus::default()
        }
    }

    /// Sends the replies collected while dispatching a batch of frames (and
    /// a shutdown requested meanwhile, after them). Batching continues if it
    /// was on.
    pub(crate) fn flush_batch(&mut self) {
        if let Ok(status) = self
            .cur
            .io
            .send_corked_batch(self.ctx, &self.conns.reply_buf)
        {
            self.note(status);
        }
        if self.batching {
            self.cur.io.cork();
        }
        self.conns.reply_buf.clear();
        if self.conns.reply_buf.capacity() > SCRATCH_KEEP {
            self.conns.reply_buf = Vec::new();
        }
    }
}
