//! # prefork - a master process for any netlib server
//!
//! async_server (seed 003) ran a master that forked conn and work processes
//! and restarted crashed ones; its own "could be better" section proposes
//! nginx's model instead, and this crate is that model for netlib: a
//! master binds every listening socket, then forks N workers that all
//! accept on them, each running the application's netlib loops.
//!
//! ```text
//!             master (one thread: poll over signals + worker channels)
//!   binds :port ─┬─ fork ─ worker 0 ─ LoopGroup ─ loop 0, loop 1 ... ┐ all wait on
//!                ├─ fork ─ worker 1 ─ LoopGroup ─ loop 0, loop 1 ... ├ the same socket,
//!                └─ fork ─ worker 2 ─ ...                            ┘ EPOLLEXCLUSIVE
//! ```
//!
//! - [`Prefork::bind`] binds the addresses (or, in a worker re-executed by
//!   a reload, takes the inherited sockets); [`Prefork::run`] becomes the
//!   master - single-threaded, it checks that no thread was started before
//!   it forks - or runs the worker.
//! - The master ([`master`]) restarts crashed workers with a capped
//!   backoff and a crash-loop rule, reloads on SIGHUP by executing the
//!   binary again, drains on SIGTERM/SIGINT, stops on SIGQUIT, and keeps a
//!   status file ([`status`]).
//! - A worker ([`worker`]) runs `threads` netlib loops on the inherited
//!   sockets, reports its live connections, and drains when told.
//! - [`proto`] is async_server's packet header as an imconn codec and
//!   [`service`] its worker interface (connection up, request, connection
//!   down, answer) as a trait, so an async_server-style service is a few
//!   lines (`src/bin/prefork-demo.rs`).
//!
//! ## One shared listener with EPOLLEXCLUSIVE, not SO_REUSEPORT per worker
//!
//! Both avoid the thundering herd. Per-worker SO_REUSEPORT listeners give
//! each worker its own accept queue, and that is their problem here: the
//! kernel hashes a connection to one queue when its SYN arrives, and
//! - a worker that crashed (or crash-loops) leaves its queue unserved:
//!   1/N of new connections hang until it is back;
//! - a reload has to retire the old workers' sockets, and closing a
//!   SO_REUSEPORT listener resets every connection already queued on it
//!   (unless `net.ipv4.tcp_migrate_req` is set) - exactly the refusals a
//!   graceful reload must not have.
//!
//! With one listening socket per address, held by the master for the life
//! of the server and inherited by every worker, there is one queue: a dead
//! worker's share is taken by the others at once, and a worker that stops
//! accepting only removes the socket from its own epoll set - the socket
//! and its queue live on in the master and the new workers, so nothing
//! queued is lost. Each worker loop registers the socket with
//! `EPOLLEXCLUSIVE` ([`netlib::ListenOptions::exclusive_wakeup`]), so a
//! new connection wakes one idle loop rather than every loop of every
//! worker. The kernel hands the wake-up to the first idle waiter in the
//! socket's wait queue, so a loop that accepted moves itself to the back
//! of that queue (netlib does this for exclusive listeners: two system
//! calls per accepting turn), and idle loops take turns; busy loops are
//! not waiting, so under load the idle ones take the connections. The
//! process tests and `BENCH.md` section 8 print the spread they see.
//!
//! ## Example
//!
//! ```no_run
//! use netlib::ListenOptions;
//! use prefork::{Config, Prefork};
//!
//! fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     let config = Config { workers: 4, ..Config::default() };
//!     let server = Prefork::bind(config, &["127.0.0.1:7000".parse()?], &ListenOptions::default())?;
//!     // Runs the master here, or - in a worker process - the worker.
//!     server.run(|_worker| {
//!         // Once per worker process: shared state of its loops goes here.
//!         Ok(|ctx: &mut netlib::Context, _loop_index| {
//!             Ok(ctx.add_handler(|_: &mut netlib::Context, _, _| {}))
//!         })
//!     })?;
//!     Ok(())
//! }
//! ```
#![warn(missing_docs)]

pub mod config;
mod inherit;
pub mod master;
pub mod proto;
pub mod service;
mod signals;
mod spawn;
pub mod status;
pub mod worker;

pub use config::{Args, Config};
pub use inherit::{ENV_CHANNEL_FD, ENV_LISTEN_FDS, ENV_WORKER};
pub use netlib::InitError;
pub use proto::{Packet, PacketHeader, ProtoCodec, HEADER_LEN};
pub use service::{Link, Service};
pub use worker::WorkerInfo;

use inherit::Inherited;
use netlib::{Context, HandlerRef, ListenOptions};
use std::io;
use std::net::{SocketAddr, TcpListener};

/// A server about to run under a master: its listening sockets and
/// settings. See the crate docs.
pub struct Prefork {
    config: Config,
    addrs: Vec<SocketAddr>,
    listen: ListenOptions,
    netlib: netlib::Config,
    role: Role,
}

enum Role {
    Master(Vec<TcpListener>),
    Worker(Inherited),
}

impl Prefork {
    /// Binds every address (port 0 picks a free port), or - in a worker
    /// re-executed by its master - takes the inherited sockets instead.
    /// Call it before starting any thread.
    pub fn bind(config: Config, addrs: &[SocketAddr], opts: &ListenOptions) -> io::Result<Prefork> {
        let role = match inherit::from_env()? {
            Some(inherited) => {
                if inherited.listeners.len() != addrs.len() {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidInput,
                        format!(
                            "inherited {} listening sockets for {} addresses",
                            inherited.listeners.len(),
                            addrs.len()
                        ),
                    ));
                }
                Role::Worker(inherited)
            }
            None => {
                let mut listeners = Vec::with_capacity(addrs.len());
                for &addr in addrs {
                    let mut bound = netlib::bind_reuseport(addr, 1, opts)?;
                    listeners.push(bound.remove(0));
                }
                Role::Master(listeners)
            }
        };
        let listeners = match &role {
            Role::Master(l) => l,
            Role::Worker(w) => &w.listeners,
        };
        let addrs = listeners
            .iter()
            .map(TcpListener::local_addr)
            .collect::<io::Result<_>>()?;
        Ok(Prefork {
            config,
            addrs,
            listen: opts.clone(),
            netlib: netlib::Config::default(),
            role,
        })
    }

    /// The addresses bound, in the order given (ports filled in).
    pub fn local_addrs(&self) -> &[SocketAddr] {
        &self.addrs
    }

    /// Whether this process is the master (false in a re-executed worker).
    pub fn is_master(&self) -> bool {
        matches!(self.role, Role::Master(_))
    }

    /// The netlib settings of every worker loop (default
    /// `netlib::Config::default()`).
    pub fn with_netlib_config(mut self, config: netlib::Config) -> Prefork {
        self.netlib = config;
        self
    }

    /// Runs the master until it is stopped (SIGTERM/SIGINT/SIGQUIT), or -
    /// in a worker process - the worker, which then exits the process.
    ///
    /// In each worker process `make_worker` runs once, before its loops
    /// start (state shared by the worker's loops belongs here: it is made
    /// after the fork, so threads it starts are the worker's); the setup it
    /// returns runs on each loop's thread and returns the handler that
    /// serves the listeners there (an `imconn::Server`, for instance).
    /// Fails if a thread was started before (forking then is undefined).
    pub fn run<W, S>(self, make_worker: W) -> io::Result<()>
    where
        W: Fn(&WorkerInfo) -> Result<S, InitError>,
        S: Fn(&mut Context, usize) -> Result<HandlerRef, InitError> + Send + Sync + 'static,
    {
        let spec = worker::LoopSpec {
            threads: self.config.threads.max(1),
            netlib: self.netlib.clone(),
            listen: self.listen.clone(),
            report_every: self.config.status_interval,
            drain_timeout: self.config.drain_timeout,
        };
        let child_main = |inherited: Inherited| -> i32 {
            worker::exit_on_panic();
            let info = WorkerInfo {
                slot: inherited.slot,
                generation: inherited.generation,
            };
            match make_worker(&info) {
                Ok(setup) => worker::run(inherited, &spec, setup),
                Err(e) => {
                    log::error!("prefork: worker {} cannot start: {e}", info.slot);
                    1
                }
            }
        };
        match self.role {
            Role::Worker(inherited) => std::process::exit(child_main(inherited)),
            Role::Master(listeners) => {
                let threads = thread_count()?;
                if threads > 1 {
                    return Err(io::Error::other(format!(
                        "prefork: {threads} threads run already; the master must fork before any thread starts"
                    )));
                }
                let launch = master::Launch {
                    exe: std::env::current_exe()?,
                    args: std::env::args_os().skip(1).collect(),
                    child_main: &child_main,
                };
                master::run(&self.config, listeners, launch)
            }
        }
    }
}

/// Binds `addrs`, tells `announce` the bound addresses (in the master
/// only: a re-executed worker binds nothing), then runs the master or the
/// worker as [`Prefork::run`] does. The whole of what a server's `main`
/// needs for `--processes N`.
///
/// ```no_run
/// let config = prefork::Config { workers: 2, ..prefork::Config::default() };
/// prefork::serve(
///     config,
///     &["127.0.0.1:0".parse()?],
///     &netlib::ListenOptions::default(),
///     |addrs| println!("listening on {}", addrs[0]),
///     |_worker| Ok(|ctx: &mut netlib::Context, _| Ok(ctx.add_handler(|_: &mut netlib::Context, _, _| {}))),
/// )?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn serve<W, S>(
    config: Config,
    addrs: &[SocketAddr],
    opts: &ListenOptions,
    announce: impl FnOnce(&[SocketAddr]),
    make_worker: W,
) -> io::Result<()>
where
    W: Fn(&WorkerInfo) -> Result<S, InitError>,
    S: Fn(&mut Context, usize) -> Result<HandlerRef, InitError> + Send + Sync + 'static,
{
    let server = Prefork::bind(config, addrs, opts)?;
    if server.is_master() {
        announce(server.local_addrs());
    }
    server.run(make_worker)
}

/// Threads of this process, from `/proc/self/status`.
fn thread_count() -> io::Result<usize> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("Threads:"))
        .and_then(|n| n.trim().parse().ok())
        .ok_or_else(|| io::Error::other("no thread count in /proc/self/status"))
}
