//! [`Connection`], [`ConnConfig`] and [`Accepted`]: what a protocol
//! implements and what it chooses per connection.
//!
//! A protocol is a [`Codec`] plus a type implementing
//! [`Connection`]: its hooks are called by the [`Server`](crate::Server)
//! with the connection taken out of the table. [`ConnConfig`] is chosen per
//! connection kind when a connection is accepted or opened; deadlines are
//! opt-in, limits default to what is safe on a public port.

use crate::buffered::Limits;
use crate::codec::{Codec, DecodeError};
use crate::ctx::ConnCtx;
use crate::policy::Timeouts;
use netlib::{CloseReason, Context, Handle, TimerId};
use std::net::SocketAddr;

/// Largest frame accepted by default: 64 KiB, header included. A peer that
/// declares more is closed as soon as its header is in.
pub const DEFAULT_MAX_FRAME: usize = 64 * 1024;

/// Per-connection settings; one per connection kind (clients, links...).
#[derive(Debug, Clone, Copy)]
pub struct ConnConfig {
    /// Output limits.
    pub limits: Limits,
    /// Heartbeat, idle and login deadlines; none by default.
    pub timeouts: Timeouts,
    /// Largest frame, header included, that the codec accepts; also the
    /// most incomplete input a connection may hold. Default
    /// [`DEFAULT_MAX_FRAME`].
    pub max_frame: usize,
}

impl Default for ConnConfig {
    /// No deadlines, default limits: what a plain server wants.
    fn default() -> Self {
        ConnConfig {
            limits: Limits::default(),
            timeouts: Timeouts::NONE,
            max_frame: DEFAULT_MAX_FRAME,
        }
    }
}

impl ConnConfig {
    /// A TeamTalk client connection: closed after 120 s of silence and if
    /// not logged in within 15 s.
    pub fn client() -> ConnConfig {
        ConnConfig {
            timeouts: Timeouts::CLIENT,
            ..ConnConfig::default()
        }
    }

    /// A TeamTalk server-to-server link: heartbeat after 5 s quiet, closed
    /// after 30 s silent.
    pub fn server_link() -> ConnConfig {
        ConnConfig {
            timeouts: Timeouts::SERVER_LINK,
            ..ConnConfig::default()
        }
    }
}

/// A connection's behaviour. Every hook runs on the loop thread with the
/// connection taken out of the table; see [`ConnCtx`] for what it may do.
pub trait Connection: Sized + 'static {
    /// The wire protocol.
    type Codec: Codec;
    /// State of the whole server (on a loop group: of one loop), shared by
    /// its connections.
    type Shared: 'static;

    /// A whole frame arrived.
    fn on_frame(&mut self, cx: &mut ConnCtx<'_, Self>, frame: <Self::Codec as Codec>::Frame<'_>);

    /// An accepted connection is ready (its object was just created).
    fn on_connect(&mut self, cx: &mut ConnCtx<'_, Self>) {
        let _ = cx;
    }

    /// An outgoing connection (a link, or one opened with
    /// [`Server::connect`](crate::Server::connect) / [`ConnCtx::connect`]) completed.
    fn on_confirm(&mut self, cx: &mut ConnCtx<'_, Self>) {
        let _ = cx;
    }

    /// The output queue, after holding data, was handed to the kernel in
    /// full (TeamTalk's and muduo's write-complete).
    fn on_write_complete(&mut self, cx: &mut ConnCtx<'_, Self>) {
        let _ = cx;
    }

    /// The output queue crossed the high-water mark (once per crossing;
    /// reported when the send that crossed it returns, whichever hook sent).
    /// A relay stops reading the other side here.
    fn on_high_water(&mut self, cx: &mut ConnCtx<'_, Self>, queued: usize) {
        let _ = (cx, queued);
    }

    /// The peer finished sending on a half-close socket
    /// ([`ListenOptions::half_close`](netlib::ListenOptions::half_close));
    /// this side may still send.
    fn on_read_closed(&mut self, cx: &mut ConnCtx<'_, Self>) {
        let _ = cx;
    }

    /// A timer this connection added with [`ConnCtx::add_timer`] fired.
    fn on_timer(&mut self, cx: &mut ConnCtx<'_, Self>, id: TimerId) {
        let _ = (cx, id);
    }

    /// The connection broke its protocol and is about to be closed: the
    /// codec called its input invalid (`error` is the codec's reason), or an
    /// incomplete frame grew past [`ConnConfig::max_frame`]. Called once,
    /// before [`on_close`](Self::on_close), so a protocol that reports
    /// outcomes (a message center failing what it queued for that peer) can
    /// tell a protocol violation apart from a plain disconnect. The server
    /// logs the reason and closes the connection after this returns,
    /// whatever the hook does.
    fn on_protocol_error(&mut self, cx: &mut ConnCtx<'_, Self>, error: &DecodeError) {
        let _ = (cx, error);
    }

    /// The connection closed; the last hook it gets.
    fn on_close(&mut self, cx: &mut ConnCtx<'_, Self>, reason: CloseReason) {
        let _ = (cx, reason);
    }

    /// A timer added for the server's handler (with
    /// [`Context::add_handler_timer`] and the reference
    /// [`Server::register`](crate::Server::register) returned) fired: periodic work of the server as
    /// a whole, not of one connection.
    fn on_server_timer(shared: &mut Self::Shared, ctx: &mut Context, id: TimerId) {
        let _ = (shared, ctx, id);
    }
}

/// What the accept callback knows about a new connection.
#[derive(Debug, Clone, Copy)]
pub struct Accepted {
    /// The new connection's socket.
    pub handle: Handle,
    /// The listener that accepted it.
    pub listener: Handle,
    /// The peer's address.
    pub peer: Option<SocketAddr>,
    /// The local address it arrived on (its port tells listeners apart).
    pub local: Option<SocketAddr>,
}
