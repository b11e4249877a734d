//! # netlib - a single-threaded reactor over mio
//!
//! A Rust port of the network layer of the TeamTalk IM server: an
//! [`EventDispatch`] loop drives sockets through the states of TeamTalk's
//! `CBaseSocket` and delivers [`Event`]s to [`Handler`]s, with timers, loop
//! hooks and thread-safe posting of work. It fixes the original's defects:
//! handles are generation-tagged instead of raw descriptors, end-of-stream is
//! never lost when it arrives with data, illegal operations are errors, hard
//! send errors close the connection, repeating timers do not burst after a
//! stall, loop hooks can be removed, and running out of descriptors pauses
//! accepting instead of spinning.
//!
//! ## Ownership
//!
//! The dispatcher is a value (no singleton); it owns every socket, handler,
//! timer and hook. Callbacks receive `&mut` [`Context`], through which they do
//! everything else. A handler is taken out of its slot while it runs, so it
//! may close its own socket, send on others, cancel its own timer or stop the
//! loop. Other threads reach the loop only through a [`Poster`].
//!
//! ## More cores: one loop per thread
//!
//! A [`LoopGroup`] runs `n` dispatchers, one per thread, set up by an `init`
//! closure on each loop's own thread; [`bind_reuseport`] and
//! [`Context::adopt_listener`] let them share one listening port. Handles are
//! tagged with their loop: used on another loop they are
//! [`Error::WrongLoop`], never another loop's socket.
//!
//! ## Example: an echo server
//!
//! ```
//! use netlib::{Context, Event, EventDispatch, Handle, ListenOptions};
//! use std::io::{Read, Write};
//!
//! fn echo(ctx: &mut Context, h: Handle, event: Event) {
//!     if let Event::Read = event {
//!         let mut buf = [0u8; 16 * 1024];
//!         loop {
//!             match ctx.recv(h, &mut buf) {
//!                 Ok(0) => return, // end-of-stream: Close follows
//!                 // A real server queues what the kernel did not take
//!                 // (see the imconn crate); echo keeps it short.
//!                 Ok(n) => { let _ = ctx.send(h, &buf[..n]); }
//!                 Err(_) => return, // WouldBlock, or an error that closed it
//!             }
//!         }
//!     }
//! }
//!
//! let mut dispatch = EventDispatch::new()?;
//! let listener = dispatch.context().listen(
//!     "127.0.0.1:0".parse().unwrap(),
//!     &ListenOptions::default(),
//!     echo,
//! )?;
//! let addr = dispatch.context().local_addr(listener)?;
//!
//! // A client on another thread; it stops the loop when done.
//! let poster = dispatch.poster();
//! let client = std::thread::spawn(move || {
//!     let mut s = std::net::TcpStream::connect(addr).unwrap();
//!     s.write_all(b"hello").unwrap();
//!     let mut reply = [0u8; 5];
//!     s.read_exact(&mut reply).unwrap();
//!     poster.stop();
//!     reply
//! });
//! dispatch.run()?;
//! assert_eq!(&client.join().unwrap(), b"hello");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#![warn(missing_docs)]

mod context;
mod delivery;
mod dispatch;
mod error;
mod event;
mod group;
mod handle;
mod handler;
mod hooks;
mod io;
mod open;
mod options;
mod poster;
mod schedule;
pub mod signal;
mod slots;
mod socket;
mod stream;
mod timer;

pub use context::{Config, Context};
pub use dispatch::EventDispatch;
pub use error::{Error, Result};
pub use event::{CloseReason, Event, OsError};
pub use group::{GroupError, InitError, LoopGroup};
pub use handle::Handle;
pub use handler::{Handler, HandlerRef};
pub use hooks::HookId;
pub use poster::Poster;
pub use socket::{bind_reuseport, bind_unix, ConnectOptions, ListenOptions, SocketState};
pub use timer::TimerId;
