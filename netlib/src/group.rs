//! [`LoopGroup`]: one event loop per thread (muduo's `EventLoopThreadPool`).
//!
//! A dispatcher is single-threaded and not `Send`; to use more cores a server
//! runs several, one per thread, each owning its own sockets, timers and
//! handlers. A `LoopGroup` starts `n` such threads (named `netlib-loop-0`,
//! `netlib-loop-1`, ...), builds each loop's dispatcher *on its own thread*,
//! and runs an `init` closure there before the loop starts, so listeners,
//! handlers and timers are set up by the loop that will own them.
//!
//! Sharing one port: bind `n` listeners with SO_REUSEPORT
//! ([`bind_reuseport`](crate::bind_reuseport)) and let loop `i` serve the
//! `i`-th with [`Context::adopt_listener`]; the kernel spreads connections
//! over them. Each connection then lives and dies on the loop that accepted
//! it.
//!
//! Ownership and threads: the group owns the threads and one [`Poster`] per
//! loop; it is `Send` and may be used from any thread. Everything else
//! belongs to the loops. A [`Handle`](crate::Handle) or
//! [`HandlerRef`](crate::HandlerRef) names a socket of one loop only: on
//! another loop's [`Context`] it is [`Error::WrongLoop`](crate::Error::WrongLoop),
//! so reach a socket through its own loop's poster. Stopping the group
//! ([`stop`](LoopGroup::stop), [`join`](LoopGroup::join) or drop) shuts every
//! loop down as [`EventDispatch::run`] does: every socket gets
//! [`Event::Close`](crate::Event::Close)\([`CloseReason::Shutdown`](crate::CloseReason::Shutdown)).
//!
//! ## Example: an echo server on two loops sharing a port
//!
//! ```
//! use netlib::{Context, Event, Handle, ListenOptions, LoopGroup};
//! use std::io::{Read, Write};
//! use std::sync::{Arc, Mutex};
//!
//! fn echo(ctx: &mut Context, h: Handle, event: Event) {
//!     if let Event::Read = event {
//!         let mut buf = [0u8; 4096];
//!         while let Ok(n @ 1..) = ctx.recv(h, &mut buf) {
//!             let _ = ctx.send(h, &buf[..n]); // small messages only
//!         }
//!     }
//! }
//!
//! let opts = ListenOptions::default();
//! let listeners = netlib::bind_reuseport("127.0.0.1:0".parse()?, 2, &opts)?;
//! let addr = listeners[0].local_addr()?;
//! // Each loop takes its own listener out on its own thread.
//! let listeners = Arc::new(Mutex::new(listeners.into_iter().map(Some).collect::<Vec<_>>()));
//! let group = LoopGroup::start(2, netlib::Config::default(), move |ctx, i| {
//!     let listener = listeners.lock().unwrap()[i].take().ok_or("no listener")?;
//!     ctx.adopt_listener(listener, &ListenOptions::default(), echo)?;
//!     Ok(())
//! })?;
//!
//! let mut client = std::net::TcpStream::connect(addr)?;
//! client.write_all(b"hello")?;
//! let mut reply = [0u8; 5];
//! client.read_exact(&mut reply)?;
//! assert_eq!(&reply, b"hello");
//!
//! group.stop();
//! group.join()?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use crate::context::{Config, Context};
use crate::dispatch::EventDispatch;
use crate::error::Error;
use crate::poster::Poster;
use std::fmt;
use std::io;
use std::sync::mpsc;
use std::sync::Arc;
use std::thread::JoinHandle;

/// What an `init` closure of [`LoopGroup::start`] may fail with.
pub type InitError = Box<dyn std::error::Error + Send + Sync>;

/// Why a [`LoopGroup`] could not start, or how one of its loops ended.
#[derive(Debug)]
pub enum GroupError {
    /// A thread or a dispatcher could not be created.
    Io(io::Error),
    /// The `init` closure of loop `index` failed.
    Init {
        /// The loop whose `init` failed.
        index: usize,
        /// What it returned.
        error: InitError,
    },
    /// Loop `index` stopped with an error (its `epoll_wait` failed).
    Loop {
        /// The loop that failed.
        index: usize,
        /// What [`EventDispatch::run`] returned.
        error: Error,
    },
    /// The thread of loop `index` panicked (in `init` or in a callback).
    Panicked {
        /// The loop whose thread panicked.
        index: usize,
    },
}

impl fmt::Display for GroupError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GroupError::Io(e) => write!(f, "cannot start event loop: {e}"),
            GroupError::Init { index, error } => {
                write!(f, "init of event loop {index} failed: {error}")
            }
            GroupError::Loop { index, error } => write!(f, "event loop {index} failed: {error}"),
            GroupError::Panicked { index } => write!(f, "event loop {index} panicked"),
        }
    }
}

impl std::error::Error for GroupError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            GroupError::Io(e) => Some(e),
            GroupError::Init { error, .. } => Some(error.as_ref()),
            GroupError::Loop { error, .. } => Some(error),
            GroupError::Panicked { .. } => None,
        }
    }
}

impl From<io::Error> for GroupError {
    fn from(e: io::Error) -> Self {
        GroupError::Io(e)
    }
}

/// `n` event loops, one per thread. See the module docs for an example.
///
/// Dropping the group stops and joins every loop (errors are logged); call
/// [`join`](Self::join) to see them.
pub struct LoopGroup {
    posters: Vec<Poster>,
    threads: Vec<JoinHandle<Result<(), GroupError>>>,
}

impl LoopGroup {
    /// Starts `n` loops with `config`, each on a thread named
    /// `netlib-loop-{index}`. `init(ctx, index)` runs on each loop's own
    /// thread before that loop runs, to set up its listeners, handlers and
    /// timers. Loops start one after another; if one cannot be created, or
    /// its `init` fails or panics, the loops already started are stopped and
    /// joined and the error is returned.
    pub fn start<F>(n: usize, config: Config, init: F) -> Result<LoopGroup, GroupError>
    where
        F: Fn(&mut Context, usize) -> Result<(), InitError> + Send + Sync + 'static,
    {
        let init = Arc::new(init);
        let mut group = LoopGroup {
            posters: Vec::with_capacity(n),
            threads: Vec::with_capacity(n),
        };
        for index in 0..n {
            let (tx, rx) = mpsc::channel();
            let init = init.clone();
            let config = config.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("netlib-loop-{index}"))
                .spawn(move || run_loop(index, config, &*init, tx));
            let thread = match spawned {
                Ok(t) => t,
                Err(e) => {
                    group.shut_down();
                    return Err(GroupError::Io(e));
                }
            };
            match rx.recv() {
                Ok(Ok(poster)) => {
                    group.posters.push(poster);
                    group.threads.push(thread);
                }
                Ok(Err(e)) => {
                    let _ = thread.join();
                    group.shut_down();
                    return Err(e);
                }
                Err(mpsc::RecvError) => {
                    // The thread ended without a word: it panicked in init.
                    let e = match thread.join() {
                        Ok(Err(e)) => e,
                        _ => GroupError::Panicked { index },
                    };
                    group.shut_down();
                    return Err(e);
                }
            }
        }
        Ok(group)
    }

    /// One poster per loop, in loop order: `posters()[i]` reaches loop `i`.
    pub fn posters(&self) -> &[Poster] {
        &self.posters
    }

    /// Number of loops.
    pub fn len(&self) -> usize {
        self.posters.len()
    }

    /// Whether the group has no loops (`start` with `n == 0`).
    pub fn is_empty(&self) -> bool {
        self.posters.is_empty()
    }

    /// Asks every loop to stop after its current turn; returns at once.
    /// Each then shuts down, closing its sockets with
    /// [`CloseReason::Shutdown`](crate::CloseReason::Shutdown).
    pub fn stop(&self) {
        for p in &self.posters {
            p.stop();
        }
    }

    /// Waits until every loop has ended (after [`stop`](Self::stop), or
    /// once each loop stopped itself). Returns the first failure in loop
    /// order: a loop whose run failed, or whose thread panicked.
    pub fn join(mut self) -> Result<(), GroupError> {
        self.join_all()
    }

    fn join_all(&mut self) -> Result<(), GroupError> {
        let mut outcome = Ok(());
        for (index, thread) in self.threads.drain(..).enumerate() {
            let result = match thread.join() {
                Ok(r) => r,
                Err(_) => Err(GroupError::Panicked { index }),
            };
            if let Err(e) = result {
                if outcome.is_ok() {
                    outcome = Err(e);
                } else {
                    log::error!("netlib: {e}");
                }
            }
        }
        outcome
    }

    fn shut_down(&mut self) {
        self.stop();
        if let Err(e) = self.join_all() {
            log::error!("netlib: {e}");
        }
    }
}

impl Drop for LoopGroup {
    fn drop(&mut self) {
        self.shut_down();
    }
}

impl fmt::Debug for LoopGroup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LoopGroup")
            .field("loops", &self.posters.len())
            .finish()
    }
}

/// The body of loop thread `index`: build, init, report, run.
fn run_loop<F>(
    index: usize,
    config: Config,
    init: &F,
    started: mpsc::Sender<Result<Poster, GroupError>>,
) -> Result<(), GroupError>
where
    F: Fn(&mut Context, usize) -> Result<(), InitError>,
{
    let mut dispatch = match EventDispatch::with_config(config) {
        Ok(d) => d,
        Err(e) => {
            let _ = started.send(Err(GroupError::Io(e)));
            return Ok(());
        }
    };
    if let Err(error) = init(dispatch.context(), index) {
        let _ = started.send(Err(GroupError::Init { index, error }));
        return Ok(());
    }
    if started.send(Ok(dispatch.poster())).is_err() {
        return Ok(()); // start gave up on the group
    }
    dispatch
        .run()
        .map_err(|error| GroupError::Loop { index, error })
}
