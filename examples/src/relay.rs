//! [`Relay`]: the handler behind `tcprelay` and `socks4a` - pairs of
//! connections with bytes copied both ways, backpressure, and half-close.
//!
//! The problems a relay exists to show (muduo's notes):
//!
//! - **Bandwidth mismatch.** If one side sends faster than the other reads,
//!   a relay that keeps reading buffers the difference without bound. Here,
//!   when a side's unsent output reaches the high-water mark, the relay stops
//!   reading the *other* side (`pause_read`) and resumes when that output has
//!   drained (`resume_read` on [`SendStatus::drained`](imconn::SendStatus)).
//!   Memory per pair stays under the high-water mark plus one read chunk in
//!   each direction.
//! - **Half-close.** When one side finishes sending (`Event::ReadClosed`,
//!   because sockets are opened with `half_close: true`), the relay forwards
//!   the end-of-stream once everything before it is sent
//!   ([`BufferedConn::shutdown`]); the other direction keeps flowing. The
//!   pair closes when both directions are done.
//! - **The write-complete race.** muduo's first relay registered its
//!   write-complete callback after the output had already drained, and
//!   waited forever. Here "drained" is the return value of the same `flush`
//!   that drained it, so there is nothing to register late.
//!
//! Accepted sockets and the outgoing ones share this one handler, which
//! finds a socket's partner in its [`ConnTable`]. Owned by the loop thread;
//! host-name lookups for SOCKS4a run on a thread of their own and post their
//! result back through [`Context::with_handler`].

use crate::conns::ConnTable;
use crate::socks::{self, Target};
use imconn::{BufferedConn, Limits};
use netlib::{CloseReason, ConnectOptions, Context, Event, Handle, Handler, HandlerRef, Poster};
use std::net::{SocketAddr, ToSocketAddrs};
use std::time::Duration;

/// Where a relay sends what its clients send.
#[derive(Debug, Clone)]
pub enum Mode {
    /// Every client goes to this backend (tcprelay).
    Fixed(SocketAddr),
    /// Each client names its destination in a SOCKS4/4a request.
    Socks,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// Client side: waiting for the SOCKS request.
    Handshake,
    /// Client side: the host name is being resolved or the backend connected.
    Connecting,
    /// Bytes flow.
    Open,
}

struct Side {
    io: BufferedConn,
    /// The other socket of the pair.
    partner: Option<Handle>,
    stage: Stage,
    /// This side will send no more (its ReadClosed arrived).
    eof: bool,
    /// Reading paused because the partner's output is over the high-water mark.
    paused: bool,
    /// The partner is gone; close once our output is sent.
    closing: bool,
    /// Accepted from a client (rather than connected to a backend).
    is_client: bool,
}

/// The relay handler. See the module docs.
pub struct Relay {
    mode: Mode,
    sides: ConnTable<Side>,
    buf: Box<[u8]>,
    limits: Limits,
    me: Option<HandlerRef>,
    poster: Poster,
    peak_queued: usize,
}

impl Relay {
    /// A relay whose sides each queue at most about `high_water` bytes.
    pub fn new(mode: Mode, high_water: usize, poster: Poster) -> Relay {
        Relay {
            mode,
            sides: ConnTable::new(),
            buf: vec![0; 64 * 1024].into_boxed_slice(),
            limits: Limits {
                high_water,
                // Never reached while backpressure works; a backstop.
                hard_cap: high_water.saturating_mul(4).max(1 << 20),
                read_chunk: 64 * 1024,
            },
            me: None,
            poster,
            peak_queued: 0,
        }
    }

    /// Tells the relay its own registration, for connects and posted lookups.
    pub fn set_self(&mut self, me: HandlerRef) {
        self.me = Some(me);
    }

    /// Bytes queued in user space over all connections (what backpressure
    /// bounds).
    pub fn queued(&self) -> usize {
        self.sides.iter().map(|(_, s)| s.io.queued()).sum()
    }

    /// The most bytes one connection has had queued so far.
    pub fn peak_queued(&self) -> usize {
        self.peak_queued
    }

    fn accept(&mut self, ctx: &mut Context, h: Handle) {
        let side = Side {
            io: BufferedConn::new(ctx, h, self.limits),
            partner: None,
            stage: Stage::Handshake,
            eof: false,
            paused: false,
            closing: false,
            is_client: true,
        };
        self.sides.insert(h, side);
        if let Mode::Fixed(addr) = self.mode {
            self.connect(ctx, h, addr);
        }
    }

    /// Starts the backend connection of client `h`; its bytes wait meanwhile.
    fn connect(&mut self, ctx: &mut Context, h: Handle, addr: SocketAddr) {
        let Some(me) = self.me else { return };
        let _ = ctx.pause_read(h);
        let opts = ConnectOptions {
            timeout: Some(Duration::from_secs(10)),
            half_close: true,
            ..ConnectOptions::default()
        };
        match ctx.connect_with(addr, &opts, me) {
            Ok(b) => {
                let side = Side {
                    io: BufferedConn::new(ctx, b, self.limits),
                    partner: Some(h),
                    stage: Stage::Connecting,
                    eof: false,
                    paused: false,
                    closing: false,
                    is_client: false,
                };
                self.sides.insert(b, side);
                if let Some(c) = self.sides.get_mut(h) {
                    c.partner = Some(b);
                    c.stage = Stage::Connecting;
                }
            }
            Err(e) => {
                log::warn!("cannot connect to {addr}: {e}");
                self.refuse(ctx, h);
            }
        }
    }

    /// Refuses client `h`: a SOCKS rejection, or just a close.
    fn refuse(&mut self, ctx: &mut Context, h: Handle) {
        let socks = matches!(self.mode, Mode::Socks);
        if let Some(c) = self.sides.get_mut(h) {
            if socks {
                let _ = c.io.send(ctx, &socks::reply(false));
            }
            c.partner = None;
            close_when_sent(ctx, c);
        }
    }

    fn on_confirm(&mut self, ctx: &mut Context, b: Handle) {
        let Some(client) = self.sides.get_mut(b).and_then(|s| {
            s.stage = Stage::Open;
            s.partner
        }) else {
            return;
        };
        let socks = matches!(self.mode, Mode::Socks);
        if let Some(c) = self.sides.get_mut(client) {
            log::info!("{:?} connected to {:?}", c.io.peer(), ctx.peer_addr(b).ok());
            c.stage = Stage::Open;
            if socks {
                let _ = c.io.send(ctx, &socks::reply(true));
            }
            let _ = ctx.resume_read(client);
        }
        // Bytes the client sent right after its SOCKS request.
        let early = match self.sides.get_mut(client) {
            Some(c) if !c.io.in_buf.is_empty() => {
                let data = c.io.in_buf.as_slice().to_vec();
                c.io.in_buf.clear();
                data
            }
            _ => return,
        };
        if let Some(backend) = self.sides.get_mut(b) {
            let _ = backend.io.send(ctx, &early);
        }
    }

    /// SOCKS: reads the request of client `h` and acts on it.
    fn handshake(&mut self, ctx: &mut Context, h: Handle) {
        let Some(c) = self.sides.get_mut(h) else {
            return;
        };
        c.io.fill(ctx);
        match socks::parse(c.io.in_buf.as_slice()) {
            Ok(None) => {}
            Ok(Some((len, target))) => {
                c.io.in_buf.consume(len);
                c.stage = Stage::Connecting;
                let _ = ctx.pause_read(h);
                match target {
                    Target::Addr(addr) => self.connect(ctx, h, addr),
                    Target::Host(host, port) => self.resolve(h, host, port),
                }
            }
            Err(e) => {
                log::info!("refusing {:?}: {e:?}", c.io.peer());
                self.refuse(ctx, h);
            }
        }
    }

    /// Resolves a SOCKS4a host name off the loop; the answer is posted back.
    fn resolve(&mut self, h: Handle, host: String, port: u16) {
        let (Some(me), poster) = (self.me, self.poster.clone()) else {
            return;
        };
        std::thread::spawn(move || {
            let addr = (host.as_str(), port)
                .to_socket_addrs()
                .ok()
                .and_then(|mut addrs| addrs.find(SocketAddr::is_ipv4));
            if addr.is_none() {
                log::info!("cannot resolve {host:?}");
            }
            let _ = poster.post(move |ctx| {
                ctx.with_handler(me, |relay: &mut Relay, ctx| match addr {
                    Some(addr) => relay.connect(ctx, h, addr),
                    None => relay.refuse(ctx, h),
                });
            });
        });
    }

    /// Copies what `h` has to read to its partner, pausing `h` when the
    /// partner's output passes the high-water mark.
    fn forward(&mut self, ctx: &mut Context, h: Handle) {
        let Some(partner) = self.sides.get(h).and_then(|s| s.partner) else {
            return;
        };
        let high_water = self.limits.high_water;
        let mut pause = false;
        {
            let Some(p) = self.sides.get_mut(partner) else {
                return;
            };
            while let Ok(n @ 1..) = ctx.recv(h, &mut self.buf) {
                match p.io.send(ctx, &self.buf[..n]) {
                    Ok(status) => {
                        self.peak_queued = self.peak_queued.max(status.queued);
                        if status.queued >= high_water {
                            pause = true;
                            break;
                        }
                    }
                    Err(_) => break, // the partner closed; its Close follows
                }
            }
        }
        if pause {
            if let Some(s) = self.sides.get_mut(h) {
                s.paused = true;
                let _ = ctx.pause_read(h);
            }
        }
    }

    fn on_write(&mut self, ctx: &mut Context, h: Handle) {
        let Some(s) = self.sides.get_mut(h) else {
            return;
        };
        let Ok(status) = s.io.flush(ctx) else { return };
        if status.queued > 0 {
            return;
        }
        if s.closing {
            s.io.force_close(ctx);
            return;
        }
        // Drained: the partner may send again.
        if let Some(p) = s.partner.and_then(|p| self.sides.get_mut(p)) {
            if p.paused {
                p.paused = false;
                let _ = ctx.resume_read(p.io.handle());
            }
        }
        self.close_if_done(ctx, h);
    }

    fn on_read_closed(&mut self, ctx: &mut Context, h: Handle) {
        let Some(s) = self.sides.get_mut(h) else {
            return;
        };
        s.eof = true;
        if s.stage != Stage::Open {
            // Gone before the tunnel opened: nothing to carry.
            let c = if s.is_client { Some(h) } else { s.partner };
            if let Some(c) = c {
                self.refuse(ctx, c);
            }
            return;
        }
        if let Some(p) = s.partner.and_then(|p| self.sides.get_mut(p)) {
            p.io.shutdown(ctx); // forward the end-of-stream after the data
        }
        self.close_if_done(ctx, h);
    }

    /// Closes the pair once both directions have ended and all is sent.
    fn close_if_done(&mut self, ctx: &mut Context, h: Handle) {
        let Some(s) = self.sides.get(h) else { return };
        let Some(p) = s.partner.and_then(|p| self.sides.get(p)) else {
            return;
        };
        if s.eof && p.eof && s.io.queued() == 0 && p.io.queued() == 0 {
            let (a, b) = (h, p.io.handle());
            for x in [a, b] {
                if let Some(side) = self.sides.get_mut(x) {
                    side.io.force_close(ctx);
                }
            }
        }
    }

    fn on_close(&mut self, ctx: &mut Context, h: Handle, reason: CloseReason) {
        let Some(s) = self.sides.remove(h) else {
            return;
        };
        imconn::buffered::log_close(h, s.io.peer(), reason);
        let Some(p) = s.partner.and_then(|p| self.sides.get_mut(p)) else {
            return;
        };
        p.partner = None;
        if s.is_client || p.stage == Stage::Open {
            // Deliver what the partner still has queued, then close it.
            close_when_sent(ctx, p);
        } else {
            // The backend could not be reached: refuse the client.
            let c = p.io.handle();
            self.refuse(ctx, c);
        }
    }
}

fn close_when_sent(ctx: &mut Context, side: &mut Side) {
    side.closing = true;
    let _ = ctx.pause_read(side.io.handle());
    if side.io.queued() == 0 {
        side.io.force_close(ctx);
    }
}

impl Handler for Relay {
    fn on_event(&mut self, ctx: &mut Context, h: Handle, event: Event) {
        match event {
            Event::Connect { .. } => self.accept(ctx, h),
            Event::Confirm => self.on_confirm(ctx, h),
            Event::Read => match self.sides.get(h).map(|s| s.stage) {
                Some(Stage::Handshake) => self.handshake(ctx, h),
                Some(Stage::Open) => self.forward(ctx, h),
                _ => {}
            },
            Event::Write => self.on_write(ctx, h),
            Event::ReadClosed => self.on_read_closed(ctx, h),
            Event::Close(reason) => self.on_close(ctx, h, reason),
            Event::Timer(_) => {}
        }
    }
}
