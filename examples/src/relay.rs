//! [`Relay`]: the server behind `tcprelay` and `socks4a` - pairs of
//! connections with bytes copied both ways, backpressure, and half-close.
//!
//! A relay is an imconn [`Server`] with [`RawCodec`]: each socket, accepted
//! client or outgoing backend, is a [`Side`] in the server's one connection
//! table, and knows its partner's handle. The server does the reading,
//! buffering, write-through and closing; the sides only decide where bytes
//! go:
//!
//! - a client arrives ([`on_connect`](Connection::on_connect)): `tcprelay`
//!   opens its backend at once with [`ConnCtx::connect`]; `socks4a` first
//!   reads a SOCKS request from its first frames (kept in a buffer that the
//!   parser bounds at [`socks::MAX_REQUEST`] bytes), resolving SOCKS4a host
//!   names on a thread of their own whose answer is posted back to the loop
//!   and handed to the client through [`Server::with_conn`]. The client is
//!   not read while its backend connects; bytes that came right after the
//!   request wait in the client's `pending` buffer (one read chunk at most).
//! - the backend connects ([`on_confirm`](Connection::on_confirm)): the
//!   SOCKS client gets "granted", its early bytes go out, and it is read
//!   again. A backend that cannot be reached ends in the backend's
//!   [`on_close`](Connection::on_close), which refuses the client.
//! - bytes arrive ([`on_frame`](Connection::on_frame)): sent on to the
//!   partner with [`ConnCtx::send_bytes_to`].
//!
//! The problems a relay exists to show (muduo's notes):
//!
//! - **Bandwidth mismatch.** If one side sends faster than the other reads,
//!   a relay that keeps reading buffers the difference without bound. Here,
//!   when a side's unsent output reaches the high-water mark, the relay stops
//!   reading the *other* side, and resumes when that output has drained
//!   ([`on_write_complete`](Connection::on_write_complete)). The crossing is
//!   reported to the side whose queue crossed
//!   ([`on_high_water`](Connection::on_high_water)), whichever hook sent;
//!   the reader also checks its own send and pauses itself at once, which
//!   ends the read batch, so reading stops within one read chunk of the
//!   mark. Memory per pair stays under the mark plus one chunk each way.
//! - **Half-close.** Sockets are opened with `half_close: true`, so a peer
//!   that finishes sending is an [`on_read_closed`](Connection::on_read_closed);
//!   the relay then half-closes the other side once everything before the
//!   end-of-stream is sent ([`ConnCtx::shutdown_conn`]), and the other
//!   direction keeps flowing. The pair closes when both directions are done.
//! - **The write-complete race.** muduo's first relay registered its
//!   write-complete callback after the output had already drained, and
//!   waited forever. Here write-complete is a hook the server calls from the
//!   same flush that drained the queue, so there is nothing to register late.
//!
//! When one side closes, the other gets what is still queued for it, is
//! half-closed, and closes when its peer finishes too (or [`LINGER`] later).
//! Owned by the loop thread.

use crate::socks::{self, Target};
use imconn::{ConnConfig, ConnCtx, Connection, Limits, RawCodec, Server};
use netlib::{CloseReason, ConnectOptions, Context, Handle, HandlerRef, TimerId};
use std::net::{SocketAddr, ToSocketAddrs};
use std::time::Duration;

/// The relay server: [`Side`]s with raw bytes.
pub type Relay = Server<Side>;

/// How long a side that is being closed waits for its peer to finish after
/// its output was sent and half-closed.
pub const LINGER: Duration = Duration::from_secs(10);

/// How long a backend may take to accept the connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Where a relay sends what its clients send.
#[derive(Debug, Clone)]
pub enum Mode {
    /// Every client goes to this backend (tcprelay).
    Fixed(SocketAddr),
    /// Each client names its destination in a SOCKS4/4a request.
    Socks,
}

/// The relay's server-wide state.
#[derive(Debug)]
pub struct Shared {
    mode: Mode,
    config: ConnConfig,
    peak_queued: usize,
}

/// Registers a relay whose sides each queue at most about `high_water`
/// bytes; listen on it (with `half_close: true`) through the returned
/// reference.
pub fn register(ctx: &mut Context, mode: Mode, high_water: usize) -> HandlerRef {
    let config = ConnConfig {
        limits: Limits {
            high_water,
            // Never reached while backpressure works; a backstop.
            hard_cap: high_water.saturating_mul(4).max(1 << 20),
            read_chunk: 64 * 1024,
        },
        ..ConnConfig::default()
    };
    let shared = Shared {
        mode,
        config,
        peak_queued: 0,
    };
    Relay::register(ctx, shared, |shared, _| {
        Some((Side::client(), shared.config))
    })
}

/// Bytes queued in user space over all connections (what backpressure
/// bounds).
pub fn queued(relay: &Relay) -> usize {
    let conns = relay.conns();
    conns
        .handles()
        .into_iter()
        .filter_map(|h| conns.io(h))
        .map(|io| io.queued())
        .sum()
}

/// The most bytes one connection has had queued so far.
pub fn peak_queued(relay: &Relay) -> usize {
    relay.shared.peak_queued
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// Client side: waiting for the SOCKS request.
    Handshake,
    /// The backend is being resolved or connected.
    Connecting,
    /// Bytes flow.
    Open,
    /// The partner is gone or the client was refused: what is queued is
    /// sent, then the side is half-closed and closed; input is dropped.
    Closing,
}

/// One socket of a relayed pair. See the module docs.
#[derive(Debug)]
pub struct Side {
    /// The other socket of the pair.
    partner: Option<Handle>,
    stage: Stage,
    /// Client side: the SOCKS request so far, then bytes that came before
    /// the backend connected.
    pending: Vec<u8>,
    /// This side's peer will send no more (its read side closed).
    eof: bool,
    /// Accepted from a client (rather than connected to a backend).
    is_client: bool,
}

impl Side {
    fn client() -> Side {
        Side {
            partner: None,
            stage: Stage::Handshake,
            pending: Vec::new(),
            eof: false,
            is_client: true,
        }
    }

    /// Starts the backend connection of this client; its bytes wait meanwhile.
    fn connect(&mut self, cx: &mut ConnCtx<'_, Side>, addr: SocketAddr) {
        self.stage = Stage::Connecting;
        cx.pause_read();
        let opts = ConnectOptions {
            timeout: Some(CONNECT_TIMEOUT),
            half_close: true,
            ..ConnectOptions::default()
        };
        let backend = Side {
            partner: Some(cx.handle()),
            stage: Stage::Connecting,
            pending: Vec::new(),
            eof: false,
            is_client: false,
        };
        let config = cx.shared.config;
        match cx.connect(addr, &opts, backend, config) {
            Ok(b) => self.partner = Some(b),
            Err(e) => {
                log::warn!("cannot connect to {addr}: {e}");
                self.refuse(cx);
            }
        }
    }

    /// SOCKS: collects the request of this client and acts on it.
    fn handshake(&mut self, cx: &mut ConnCtx<'_, Side>, data: &[u8]) {
        self.pending.extend_from_slice(data);
        match socks::parse(&self.pending) {
            // Incomplete: fewer than MAX_REQUEST bytes so far.
            Ok(None) => {}
            Ok(Some((len, target))) => {
                self.pending.drain(..len);
                match target {
                    Target::Addr(addr) => self.connect(cx, addr),
                    Target::Host(host, port) => {
                        self.stage = Stage::Connecting;
                        cx.pause_read();
                        resolve(cx, host, port);
                    }
                }
            }
            Err(e) => {
                log::info!("refusing {}: {e:?}", crate::cli::addr_or_unknown(cx.peer()));
                self.refuse(cx);
            }
        }
    }

    /// Refuses this client: a SOCKS rejection, or just a close.
    fn refuse(&mut self, cx: &mut ConnCtx<'_, Side>) {
        self.stage = Stage::Closing;
        self.pending = Vec::new();
        if let Some(b) = self.partner.take() {
            cx.close_conn(b); // the backend attempt
        }
        if matches!(cx.shared.mode, Mode::Socks) {
            let _ = cx.send_bytes(&socks::reply(false));
        }
        finish(cx, cx.handle(), self.eof);
    }

    /// Closes the pair once both directions have ended and all is sent.
    fn close_if_done(&mut self, cx: &mut ConnCtx<'_, Side>) {
        let Some(p) = self.partner else { return };
        let done = self.eof
            && cx.queued() == 0
            && cx.conn(p).is_some_and(|s| s.eof)
            && cx.io_of(p).is_some_and(|io| io.queued() == 0);
        if done {
            if let Some(s) = cx.conn_mut(p) {
                s.partner = None;
            }
            self.partner = None;
            cx.close_conn(p);
            cx.close();
        }
    }
}

/// Ends side `h` (this one or another; its stage is already `Closing`):
/// what it has queued is sent, then it is half-closed, and it closes when
/// its peer finishes too - at once if that already happened - or after
/// [`LINGER`]. Its input is read and dropped meanwhile.
fn finish(cx: &mut ConnCtx<'_, Side>, h: Handle, eof: bool) {
    let queued = if h == cx.handle() {
        cx.queued()
    } else {
        cx.io_of(h).map_or(0, |io| io.queued())
    };
    if eof && queued == 0 {
        cx.close_conn(h);
        return;
    }
    if h == cx.handle() {
        cx.resume_read();
    } else {
        let _ = cx.ctx.resume_read(h);
    }
    cx.close_conn_after_flush(h);
    let _ = cx.ctx.add_socket_timer(h, LINGER, None);
}

/// Resolves a SOCKS4a host name off the loop; the answer is posted back to
/// the client's connection.
fn resolve(cx: &mut ConnCtx<'_, Side>, host: String, port: u16) {
    let (me, client, poster) = (cx.server_ref(), cx.handle(), cx.ctx.poster());
    std::thread::spawn(move || {
        let addr = (host.as_str(), port)
            .to_socket_addrs()
            .ok()
            .and_then(|mut addrs| addrs.find(SocketAddr::is_ipv4));
        if addr.is_none() {
            log::info!("cannot resolve {host:?}");
        }
        let _ = poster.post(move |ctx| {
            ctx.with_handler(me, |relay: &mut Relay, ctx| {
                relay.with_conn(ctx, client, |side, cx| {
                    if side.stage != Stage::Connecting {
                        return; // refused or gone meanwhile
                    }
                    match addr {
                        Some(addr) => side.connect(cx, addr),
                        None => side.refuse(cx),
                    }
                })
            });
        });
    });
}

impl Connection for Side {
    type Codec = RawCodec;
    type Shared = Shared;

    fn on_connect(&mut self, cx: &mut ConnCtx<'_, Self>) {
        if let Mode::Fixed(addr) = cx.shared.mode {
            self.connect(cx, addr);
        }
    }

    fn on_frame(&mut self, cx: &mut ConnCtx<'_, Self>, data: &[u8]) {
        match self.stage {
            Stage::Open => {
                let Some(p) = self.partner else { return };
                match cx.send_bytes_to(p, data) {
                    Ok(status) => {
                        let shared = &mut *cx.shared;
                        shared.peak_queued = shared.peak_queued.max(status.queued);
                        if status.queued >= shared.config.limits.high_water {
                            // Stop this read batch now; the partner's
                            // on_high_water says the same a moment later.
                            cx.pause_read();
                        }
                    }
                    // The partner closed; its on_close ends this side.
                    Err(_) => cx.pause_read(),
                }
            }
            Stage::Handshake => self.handshake(cx, data),
            Stage::Connecting => {
                // Read in the batch that found the request: kept for later.
                self.pending.extend_from_slice(data);
                cx.pause_read();
            }
            Stage::Closing => {}
        }
    }

    fn on_confirm(&mut self, cx: &mut ConnCtx<'_, Self>) {
        self.stage = Stage::Open;
        let client = self.partner.and_then(|c| {
            let side = cx.conn_mut(c)?;
            (side.stage == Stage::Connecting).then(|| {
                side.stage = Stage::Open;
                (c, std::mem::take(&mut side.pending))
            })
        });
        let Some((c, early)) = client else {
            // The client went away meanwhile.
            self.partner = None;
            cx.close();
            return;
        };
        log::info!(
            "{:?} connected to {:?}",
            cx.io_of(c).and_then(|io| io.peer()),
            cx.peer()
        );
        if matches!(cx.shared.mode, Mode::Socks) {
            let _ = cx.send_bytes_to(c, &socks::reply(true));
        }
        let _ = cx.ctx.resume_read(c);
        if !early.is_empty() {
            // Bytes the client sent right after its request.
            let _ = cx.send_bytes(&early);
        }
    }

    fn on_high_water(&mut self, cx: &mut ConnCtx<'_, Self>, _queued: usize) {
        // This side's output is over the mark: stop reading the side that
        // fills it until it drains.
        if let Some(p) = self.partner {
            let _ = cx.ctx.pause_read(p);
        }
    }

    fn on_write_complete(&mut self, cx: &mut ConnCtx<'_, Self>) {
        if self.stage == Stage::Closing {
            if self.eof {
                cx.close();
            }
            return;
        }
        // Drained: the partner may send again.
        if let Some(p) = self.partner {
            if cx.conn(p).is_some_and(|s| s.stage == Stage::Open) {
                let _ = cx.ctx.resume_read(p);
            }
        }
        self.close_if_done(cx);
    }

    fn on_read_closed(&mut self, cx: &mut ConnCtx<'_, Self>) {
        self.eof = true;
        match self.stage {
            Stage::Open => {
                if let Some(p) = self.partner {
                    // Forward the end-of-stream after the data.
                    cx.shutdown_conn(p);
                }
                self.close_if_done(cx);
            }
            // Gone before the tunnel opened: nothing to carry.
            Stage::Handshake | Stage::Connecting => self.refuse(cx),
            Stage::Closing => cx.close(),
        }
    }

    fn on_timer(&mut self, cx: &mut ConnCtx<'_, Self>, _id: TimerId) {
        if self.stage != Stage::Closing {
            return;
        }
        if cx.queued() > 0 {
            // Still delivering; look again later.
            let _ = cx.add_timer(LINGER, None);
        } else {
            cx.close();
        }
    }

    fn on_close(&mut self, cx: &mut ConnCtx<'_, Self>, reason: CloseReason) {
        let Some(p) = self.partner.take() else { return };
        let Some(other) = cx.conn_mut(p) else { return };
        if other.stage == Stage::Closing {
            return;
        }
        let (was, eof, is_client) = (other.stage, other.eof, other.is_client);
        other.partner = None;
        other.stage = Stage::Closing;
        if was == Stage::Open {
            finish(cx, p, eof);
        } else if !is_client {
            // A backend still connecting: abandon it.
            cx.close_conn(p);
        } else {
            // The backend could not be reached: refuse the client.
            let peer = cx.io_of(p).and_then(|io| io.peer());
            log::info!(
                "backend of {} unreachable: {reason}",
                crate::cli::addr_or_unknown(peer)
            );
            if matches!(cx.shared.mode, Mode::Socks) {
                let _ = cx.send_bytes_to(p, &socks::reply(false));
            }
            finish(cx, p, eof);
        }
    }
}
