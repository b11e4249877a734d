//! # login_server: where TeamTalk clients find a message server
//!
//! A TeamTalk client first asks the login server which message server to
//! log in on; message servers keep a link to the login server and report
//! their addresses and load over it. This module is that server:
//!
//! | port (default) | who | protocol | module |
//! |---|---|---|---|
//! | 8008 `ClientPort` | clients | PDUs: `IMMsgServReq` → `IMMsgServRsp` | [`conn`] |
//! | 8080 `HttpPort` | clients | HTTP: `GET /msg_server` → JSON | [`http`] |
//! | 8100 `MsgServerPort` | msg_servers | PDUs: `IMMsgServInfo`, `IMUserCntUpdate`, heartbeats | [`conn`] |
//!
//! The [`registry`] holds the registered message servers and picks the
//! least loaded one (ties rotate); [`link_auth`] decides who may register
//! one (allowed networks, proof of a shared key); [`settings`] reads
//! `loginserver.conf`.
//!
//! ## Structure
//!
//! Everything runs on one netlib loop. [`start`] registers two handlers -
//! an [`ImServer<LoginConn>`](imconn::ImServer) serving both PDU ports (it
//! owns the registry) and an [`HttpServer`](http::HttpServer) - and binds the
//! listeners; [`run`] does that on a fresh dispatcher, announces the bound
//! addresses and runs until SIGINT/SIGTERM. Tests can call [`start`] on
//! their own dispatcher with port 0, or start the binary.
//!
//! ## Fixed defects of the original
//!
//! - client connections on the client port were never tracked or timed out:
//!   here they are counted, capped and closed when idle;
//! - HTTP connections had a 1 KiB buffer check after reading everything into
//!   memory and no deadline for an incomplete request: here the head is
//!   limited while reading and the whole exchange has a deadline;
//! - equally loaded message servers were always chosen in map order: ties
//!   rotate;
//! - anyone reaching the msg_server port could register a message server and
//!   have clients sent to it: here only allowed networks may connect, and
//!   with a shared key only links that prove it register ([`link_auth`]).
//!
//! Not ported: TeamTalk chose `ip1` or `ip2` first by looking the client's
//! address up in a carrier IP table (`isTelcome`); here `priorIP` is always
//! `ip1`.

pub mod conn;
pub mod http;
pub mod link_auth;
pub mod registry;
pub mod settings;

pub use conn::{LoginConn, LoginState};
pub use settings::LoginSettings;

use imconn::ImServer;
use netlib::{Context, EventDispatch, Handle, HandlerRef, ListenOptions};
use std::fmt;
use std::net::SocketAddr;

/// Why the login server could not start or stopped with an error.
#[derive(Debug)]
pub enum LoginError {
    /// A listener could not be bound.
    Listen {
        /// Which listener: `client`, `http` or `msg_server`.
        what: &'static str,
        /// The address it was to bind.
        addr: SocketAddr,
        /// Why.
        source: netlib::Error,
    },
    /// The dispatcher failed.
    Netlib(netlib::Error),
    /// The operating system refused something else (creating the poller,
    /// installing signal handlers).
    Io(std::io::Error),
}

impl fmt::Display for LoginError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LoginError::Listen { what, addr, source } => {
                write!(f, "cannot listen for {what} on {addr}: {source}")
            }
            LoginError::Netlib(e) => write!(f, "event loop: {e}"),
            LoginError::Io(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for LoginError {}

impl From<netlib::Error> for LoginError {
    fn from(e: netlib::Error) -> Self {
        LoginError::Netlib(e)
    }
}

impl From<std::io::Error> for LoginError {
    fn from(e: std::io::Error) -> Self {
        LoginError::Io(e)
    }
}

/// What [`start`] bound.
#[derive(Debug, Clone)]
pub struct Listening {
    /// Bound client addresses (real ports when 0 was asked for).
    pub client: Vec<SocketAddr>,
    /// Bound HTTP addresses.
    pub http: Vec<SocketAddr>,
    /// Bound msg_server addresses.
    pub msg_server: Vec<SocketAddr>,
    /// The PDU server's handler (reach the registry with
    /// `ctx.with_handler(pdu_server, |s: &mut ImServer<LoginConn>, _| ..)`).
    pub pdu_server: HandlerRef,
    /// The HTTP server's handler.
    pub http_server: HandlerRef,
}

fn listen(
    ctx: &mut Context,
    what: &'static str,
    addrs: &[SocketAddr],
    handler: HandlerRef,
) -> Result<(Vec<Handle>, Vec<SocketAddr>), LoginError> {
    let mut handles = Vec::with_capacity(addrs.len());
    let mut bound = Vec::with_capacity(addrs.len());
    for &addr in addrs {
        let h = ctx
            .listen_with(addr, &ListenOptions::default(), handler)
            .map_err(|source| LoginError::Listen { what, addr, source })?;
        bound.push(ctx.local_addr(h)?);
        handles.push(h);
    }
    Ok((handles, bound))
}

/// Registers the login server's handlers on `ctx` and binds its listeners.
///
/// ```
/// use servers::login::{start, LoginSettings};
/// let mut settings = LoginSettings::default();
/// for a in settings.client_addrs.iter_mut()
///     .chain(settings.http_addrs.iter_mut())
///     .chain(settings.msg_server_addrs.iter_mut()) {
///     a.set_port(0);
/// }
/// let mut dispatch = netlib::EventDispatch::new().unwrap();
/// let bound = start(dispatch.context(), &settings).unwrap();
/// assert_ne!(bound.http[0].port(), 0);
/// ```
pub fn start(ctx: &mut Context, settings: &LoginSettings) -> Result<Listening, LoginError> {
    let pdu_server = ImServer::<LoginConn>::register(ctx, LoginState::new(settings), |s, a| {
        s.accept(a.listener, a.peer)
    });
    let (client_handles, client) = listen(ctx, "client", &settings.client_addrs, pdu_server)?;
    let (link_handles, msg_server) =
        listen(ctx, "msg_server", &settings.msg_server_addrs, pdu_server)?;
    ctx.with_handler(pdu_server, |s: &mut ImServer<LoginConn>, _| {
        s.shared.set_listeners(client_handles, link_handles)
    });
    let http_server = http::HttpServer::register(ctx, pdu_server, settings);
    let (_, http) = listen(ctx, "http", &settings.http_addrs, http_server)?;
    Ok(Listening {
        client,
        http,
        msg_server,
        pdu_server,
        http_server,
    })
}

/// Runs a login server until SIGINT or SIGTERM: starts it on a new
/// dispatcher, prints `LISTEN client|http|msg_server <addr>` for every bound
/// listener, and runs the loop.
pub fn run(settings: LoginSettings) -> Result<(), LoginError> {
    let signals = netlib::signal::StopSignals::catch()?;
    let mut dispatch = EventDispatch::new()?;
    let bound = start(dispatch.context(), &settings)?;
    for (name, addrs) in [
        ("client", &bound.client),
        ("http", &bound.http),
        ("msg_server", &bound.msg_server),
    ] {
        for addr in addrs {
            log::info!("login: listening for {name} on {addr}");
            crate::runtime::announce(name, *addr);
        }
    }
    signals.on_arrival({
        let poster = dispatch.poster();
        move || poster.stop()
    })?;
    dispatch.run()?;
    log::info!("login: stopped");
    Ok(())
}
