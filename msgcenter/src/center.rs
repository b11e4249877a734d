//! Starting a center ([`Center::spawn`] on a thread of its own,
//! [`Center::register`] on a loop you run) and reaching it
//! ([`CenterHandle`]: `Send + Clone`, usable from any thread, the loop's
//! included).
//!
//! A posted message is validated and its body checksummed on the posting
//! thread, then queued in the center's [`Inbox`](crate::inbox): one closure
//! through netlib's `Poster` drains a whole batch of posts. Its outcome
//! comes back through its callback, on the loop thread.

use crate::codec::MsgCodec;
use crate::config::{Config, ConfigError};
use crate::conn::PeerConn;
use crate::driver;
use crate::frame::Hello;
use crate::handlers::Handlers;
use crate::inbox::{Drain, Inbox, Pushed};
use crate::message::{Message, MsgId};
use crate::outbound::{Held, IdGen, Info};
use crate::pool::{random_u64, Pool};
use crate::state::CenterState;
use crate::stats::{Stats, StatsCell};
use imconn::Server;
use netlib::{Context, EventDispatch, HandlerRef, ListenOptions, Poster};
use std::net::SocketAddr;
use std::sync::{mpsc, Arc, RwLock};
use std::thread::JoinHandle;
use std::time::Duration;

/// Why a center could not start.
#[derive(Debug)]
pub enum StartError {
    /// The configuration is inconsistent.
    Config(ConfigError),
    /// Listening, or starting a thread, failed.
    Io(std::io::Error),
    /// The event loop refused (already stopped).
    Loop(netlib::Error),
}

impl std::fmt::Display for StartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StartError::Config(e) => write!(f, "bad configuration: {e}"),
            StartError::Io(e) => write!(f, "cannot start: {e}"),
            StartError::Loop(e) => write!(f, "cannot listen: {e}"),
        }
    }
}

impl std::error::Error for StartError {}

/// Starts centers. See the module docs.
pub struct Center;

/// A center on a thread of its own: its handle and its thread.
pub struct Running {
    handle: CenterHandle,
    thread: Option<JoinHandle<()>>,
}

impl Running {
    /// The handle (clone it freely).
    pub fn handle(&self) -> &CenterHandle {
        &self.handle
    }

    /// Shuts the center down (every outstanding message fails with
    /// `Shutdown`) and waits for its thread.
    pub fn shutdown(mut self) {
        self.stop_and_join();
    }

    fn stop_and_join(&mut self) {
        self.handle.shutdown();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.stop_and_join();
    }
}

impl Center {
    /// Starts a center on a new thread `msgcenter` with its own event loop.
    ///
    /// ```
    /// use msgcenter::{Center, Config, Handlers, Message, Outcome};
    /// use std::sync::mpsc;
    ///
    /// let server = Center::spawn(
    ///     Config::default(),
    ///     Handlers::new().on(1, |cx, msg| {
    ///         cx.reply(2, [b"got ", msg.body].concat());
    ///     }),
    /// )?;
    /// let (tx, rx) = mpsc::channel();
    /// let client = Center::spawn(
    ///     Config::default(),
    ///     Handlers::new().on(2, move |_, msg| tx.send(msg.body.to_vec()).unwrap()),
    /// )?;
    /// let (done_tx, done_rx) = mpsc::channel();
    /// let to = server.handle().local_addr();
    /// client.handle().post(
    ///     Message::new(to, 1, "hello")
    ///         .need_ack()
    ///         .on_done(move |_, outcome| done_tx.send(outcome).unwrap()),
    /// );
    /// let wait = std::time::Duration::from_secs(10);
    /// assert_eq!(done_rx.recv_timeout(wait)?, Outcome::Acked { duplicate: false });
    /// assert_eq!(rx.recv_timeout(wait)?, b"got hello");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn spawn(config: Config, handlers: Handlers) -> Result<Running, StartError> {
        config.validate().map_err(StartError::Config)?;
        let (tx, rx) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("msgcenter".into())
            .spawn(move || {
                let mut dispatch = match EventDispatch::new() {
                    Ok(d) => d,
                    Err(e) => return drop(tx.send(Err(StartError::Io(e)))),
                };
                match Center::start(dispatch.context(), config, handlers, true) {
                    Ok(handle) => {
                        let _ = tx.send(Ok(handle));
                    }
                    Err(e) => return drop(tx.send(Err(e))),
                }
                if let Err(e) = dispatch.run() {
                    log::error!("msgcenter: event loop failed: {e}");
                }
            })
            .map_err(StartError::Io)?;
        let handle = rx
            .recv()
            .map_err(|_| StartError::Io(std::io::Error::other("center thread died")))??;
        Ok(Running {
            handle,
            thread: Some(thread),
        })
    }

    /// Registers a center on the loop `ctx` belongs to (for a program that
    /// runs its own loop, say with `run_once` from its main loop). It
    /// listens at once; [`CenterHandle::shutdown`] fails what is
    /// outstanding and closes its connections without stopping the loop.
    pub fn register(
        ctx: &mut Context,
        config: Config,
        handlers: Handlers,
    ) -> Result<CenterHandle, StartError> {
        config.validate().map_err(StartError::Config)?;
        Center::start(ctx, config, handlers, false)
    }

    fn start(
        ctx: &mut Context,
        config: Config,
        handlers: Handlers,
        owns_loop: bool,
    ) -> Result<CenterHandle, StartError> {
        let workers = if handlers.on_worker.is_empty() {
            None
        } else {
            Some(Pool::new(config.workers, "msgcenter-worker").map_err(StartError::Io)?)
        };
        let me = Hello {
            node_id: config.node_id.unwrap_or_else(random_u64),
            incarnation: random_u64(),
            dedup_window_ms: config.dedup_window.as_millis() as u32,
            max_body: config.max_body as u32,
        };
        let stats = Arc::new(StatsCell::default());
        let placeholder = Arc::new(Info {
            advertised: RwLock::new(config.listen),
            max_body: config.max_body,
            retry: config.retry,
            stats: stats.clone(),
            ids: IdGen::new(),
        });
        let listen = config.listen;
        let state = CenterState::new(config, me, placeholder, handlers, workers);
        let server =
            Server::<PeerConn>::register_with_codec(ctx, state, MsgCodec::default(), |st, a| {
                if st.incoming >= st.cfg.max_incoming {
                    log::warn!(
                        "msgcenter: refusing {:?}: {} incoming connections open (max_incoming)",
                        a.peer,
                        st.incoming
                    );
                    return None;
                }
                st.incoming += 1;
                Some((PeerConn::incoming(), driver::conn_config(st)))
            });
        let listener = match ctx.listen_with(listen, &ListenOptions::default(), server) {
            Ok(l) => l,
            Err(e) => {
                ctx.remove_handler(server);
                return Err(StartError::Loop(e));
            }
        };
        let bound = ctx.local_addr(listener).map_err(StartError::Loop)?;
        let taken = ctx
            .with_handler(server, |s: &mut Server<PeerConn>, _| {
                let st = &mut s.shared;
                st.server = Some(server);
                st.owns_loop = owns_loop;
                st.listeners.push((listener, bound));
                let info = Arc::new(Info {
                    advertised: RwLock::new(st.cfg.advertise.unwrap_or(bound)),
                    max_body: st.cfg.max_body,
                    retry: st.cfg.retry,
                    stats: stats.clone(),
                    ids: IdGen::new(),
                });
                st.info = info.clone();
                (info, st.inbox.clone())
            })
            .ok_or(StartError::Loop(netlib::Error::InvalidHandle))?;
        let (info, inbox) = taken;
        let tick = tick_interval(&info);
        ctx.add_repeating_timer(tick, move |ctx, _| {
            ctx.with_handler(server, |s: &mut Server<PeerConn>, ctx| driver::tick(s, ctx));
        });
        log::info!("msgcenter: node {:x} listening on {bound}", me.node_id);
        Ok(CenterHandle(Arc::new(HandleInner {
            poster: ctx.poster(),
            server,
            info,
            inbox,
            node_id: me.node_id,
            local: bound,
        })))
    }
}

/// Why [`CenterHandle::listen`] failed.
#[derive(Debug)]
pub enum ListenError {
    /// The center already listens on that address.
    AlreadyListening(SocketAddr),
    /// The system refused (address in use by another socket, no permission...).
    Io(netlib::Error),
    /// The center has shut down.
    Stopped,
}

impl std::fmt::Display for ListenError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ListenError::AlreadyListening(a) => write!(f, "already listening on {a}"),
            ListenError::Io(e) => write!(f, "cannot listen: {e}"),
            ListenError::Stopped => f.write_str("the center has shut down"),
        }
    }
}

impl std::error::Error for ListenError {}

/// Adds a listener for the center `server` (on its loop).
fn listen_on(
    ctx: &mut Context,
    server: HandlerRef,
    addr: SocketAddr,
) -> Result<SocketAddr, ListenError> {
    let taken = ctx.with_handler(server, |s: &mut Server<PeerConn>, _| {
        if s.shared.shutting_down {
            return Err(ListenError::Stopped);
        }
        let dup = s
            .shared
            .listeners
            .iter()
            .any(|(_, a)| addr.port() != 0 && a.port() == addr.port() && a.ip() == addr.ip());
        if dup {
            Err(ListenError::AlreadyListening(addr))
        } else {
            Ok(())
        }
    });
    taken.unwrap_or(Err(ListenError::Stopped))?;
    let l = ctx
        .listen_with(addr, &ListenOptions::default(), server)
        .map_err(ListenError::Io)?;
    let bound = ctx.local_addr(l).map_err(ListenError::Io)?;
    ctx.with_handler(server, |s: &mut Server<PeerConn>, _| {
        s.shared.listeners.push((l, bound))
    });
    log::info!("msgcenter: also listening on {bound}");
    Ok(bound)
}

/// How often deadlines and retries are checked: a quarter of the default
/// retry interval, between 5 and 100 ms.
fn tick_interval(info: &Info) -> Duration {
    (info.retry.interval / 4).clamp(Duration::from_millis(5), Duration::from_millis(100))
}

/// What the center holds for one peer ([`CenterHandle::peers`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerInfo {
    /// The peer's listen address (the pool key).
    pub addr: SocketAddr,
    /// A connection is established.
    pub connected: bool,
    /// An outgoing connection is being opened.
    pub connecting: bool,
    /// The node id of the last handshake.
    pub node_id: Option<u64>,
    /// Messages waiting to be handed to a connection.
    pub queued: usize,
    /// NeedAck messages sent and not yet acknowledged.
    pub awaiting_ack: usize,
    /// Bytes held for the peer (the backlog).
    pub held_bytes: usize,
    /// New posts are refused with `Backlog`.
    pub backlogged: bool,
}

/// Reaches a center from any thread. Cheap to clone (one reference
/// count).
#[derive(Clone)]
pub struct CenterHandle(Arc<HandleInner>);

struct HandleInner {
    poster: Poster,
    server: HandlerRef,
    info: Arc<Info>,
    inbox: Arc<Inbox>,
    node_id: u64,
    local: SocketAddr,
}

impl std::fmt::Debug for CenterHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CenterHandle")
            .field("node_id", &format_args!("{:x}", self.0.node_id))
            .field("local", &self.0.local)
            .finish()
    }
}

impl CenterHandle {
    /// Posts `msg` and returns its id (assigned here if it had none). The
    /// outcome reaches the message's callback exactly once: on the loop
    /// thread, or right here for a body over `max_body` (`TooLarge`) and
    /// for a center that has stopped (`Shutdown`).
    ///
    /// Posts are batched: only a post that finds the center's inbox empty
    /// wakes the loop, which then takes every message posted meanwhile.
    pub fn post(&self, mut msg: Message) -> MsgId {
        let id = *msg.id.get_or_insert_with(|| self.0.info.ids.next());
        let Some(held) = Held::new(&mut msg, &self.0.info) else {
            return id;
        };
        if self.0.inbox.push(held) == Pushed::First {
            let drain = Drain::new(self.0.inbox.clone());
            let server = self.0.server;
            // If the loop has stopped (or the center is gone), the drain is
            // dropped unrun: it closes the inbox and fails what it holds
            // with Shutdown.
            let _ = self.0.poster.post(move |ctx| {
                ctx.with_handler(server, |s: &mut Server<PeerConn>, ctx| {
                    driver::drain_inbox(s, ctx, drain)
                });
            });
        }
        id
    }

    /// Listens on `addr` too (a center listens on `Config::listen` from the
    /// start), and returns the bound address. Listening twice on one
    /// address is [`ListenError::AlreadyListening`]; port 0 picks a free
    /// port. Waits for the loop: call it from another thread. The
    /// advertised address does not change (see
    /// [`set_advertised`](Self::set_advertised)).
    pub fn listen(&self, addr: SocketAddr) -> Result<SocketAddr, ListenError> {
        let (tx, rx) = mpsc::channel();
        let server = self.0.server;
        self.0
            .poster
            .post(move |ctx| {
                let _ = tx.send(listen_on(ctx, server, addr));
            })
            .map_err(|_| ListenError::Stopped)?;
        rx.recv_timeout(Duration::from_secs(5))
            .unwrap_or(Err(ListenError::Stopped))
    }

    /// Changes the address this node tells peers to use (every frame's
    /// `from`, the handshake's). Connections made from now on use it;
    /// peers already connected keep knowing this node by the old one
    /// until that connection closes.
    pub fn set_advertised(&self, addr: SocketAddr) {
        *self
            .0
            .info
            .advertised
            .write()
            .unwrap_or_else(|p| p.into_inner()) = addr;
    }

    /// The addresses the center listens on.
    pub fn listen_addrs(&self) -> Vec<SocketAddr> {
        let (tx, rx) = mpsc::channel();
        let server = self.0.server;
        let posted = self.0.poster.post(move |ctx| {
            let addrs = ctx.with_handler(server, |s: &mut Server<PeerConn>, _| {
                s.shared.listeners.iter().map(|(_, a)| *a).collect()
            });
            let _ = tx.send(addrs.unwrap_or_default());
        });
        if posted.is_err() {
            return Vec::new();
        }
        rx.recv_timeout(Duration::from_secs(5)).unwrap_or_default()
    }

    /// The address the center listens on (`Config::listen`, bound).
    pub fn local_addr(&self) -> SocketAddr {
        self.0.local
    }

    /// The address peers know this node by (frames' `from`).
    pub fn advertised_addr(&self) -> SocketAddr {
        self.0.info.from()
    }

    /// This node's id.
    pub fn node_id(&self) -> u64 {
        self.0.node_id
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> Stats {
        self.0.info.stats.snapshot()
    }

    /// The peers the center holds state for, with their connection and
    /// backlog, or `None` if the center did not answer within 5 s (it
    /// stopped). Asks the loop and waits: call it from another thread.
    pub fn peers(&self) -> Option<Vec<PeerInfo>> {
        let (tx, rx) = mpsc::channel();
        let server = self.0.server;
        self.0
            .poster
            .post(move |ctx| {
                let list = ctx.with_handler(server, |s: &mut Server<PeerConn>, _| {
                    let mut list: Vec<PeerInfo> = s
                        .shared
                        .peers
                        .values()
                        .map(|p| PeerInfo {
                            addr: p.addr,
                            connected: p.conn.is_some(),
                            connecting: p.connecting.is_some(),
                            node_id: p.remote.map(|r| r.node_id),
                            queued: p.queued(),
                            awaiting_ack: p.awaiting.len(),
                            held_bytes: p.held_bytes(),
                            backlogged: p.is_backlogged(),
                        })
                        .collect();
                    list.sort_by_key(|p| p.addr);
                    list
                });
                let _ = tx.send(list);
            })
            .ok()?;
        rx.recv_timeout(Duration::from_secs(5)).ok()?
    }

    /// Open connections (established or not), or `None` if the center did
    /// not answer within 5 s. Call it from another thread.
    pub fn connection_count(&self) -> Option<usize> {
        let (tx, rx) = mpsc::channel();
        let server = self.0.server;
        self.0
            .poster
            .post(move |ctx| {
                let n = ctx.with_handler(server, |s: &mut Server<PeerConn>, _| s.conns().len());
                let _ = tx.send(n);
            })
            .ok()?;
        rx.recv_timeout(Duration::from_secs(5)).ok()?
    }

    /// Fails every outstanding message with `Shutdown`, closes the
    /// connections and the listener, and (for a spawned center) stops its
    /// loop. Later posts fail with `Shutdown`.
    pub fn shutdown(&self) {
        let server = self.0.server;
        let _ = self.0.poster.post(move |ctx| {
            let owns = ctx
                .with_handler(server, |s: &mut Server<PeerConn>, ctx| {
                    driver::shutdown(s, ctx);
                    s.shared.owns_loop
                })
                .unwrap_or(false);
            if owns {
                ctx.stop();
            }
        });
    }
}
