//! The kernel objects behind sockets: TCP or Unix-domain, listeners and
//! streams.
//!
//! The dispatcher's state machine (edge bookkeeping, read budgets,
//! half-close, accept pausing) does not care which family a socket is; only
//! a few calls do - addresses, TCP_NODELAY, `connect` completion. So the
//! table holds a [`Listener`] or a [`Stream`] of either family, and this
//! module is the one place that matches on the family. A Unix-domain socket
//! has no IP address: [`Stream::local_addr`] and the peer recorded at accept
//! are absent for it, and callers see that as `None`/an error, never as a
//! made-up address. Owned by the dispatcher; only its thread touches them.

use mio::event::Source;
use mio::net::{TcpListener, TcpStream, UnixListener, UnixStream};
use mio::{Interest, Registry, Token};
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::os::fd::{AsFd, BorrowedFd};

/// A listening socket of either family.
pub(crate) enum Listener {
    Tcp(TcpListener),
    Unix(UnixListener),
}

/// A connected socket of either family.
pub(crate) enum Stream {
    Tcp(TcpStream),
    Unix(UnixStream),
}

/// Calls `$body` with `$s` bound to the inner socket, whatever its family.
macro_rules! either {
    ($value:expr, $s:ident => $body:expr) => {
        match $value {
            Self::Tcp($s) => $body,
            Self::Unix($s) => $body,
        }
    };
}

impl Listener {
    /// Accepts one connection; the peer address is `None` for Unix-domain
    /// sockets (clients of a Unix socket are normally unnamed).
    pub(crate) fn accept(&self) -> io::Result<(Stream, Option<SocketAddr>)> {
        match self {
            Listener::Tcp(l) => l.accept().map(|(s, peer)| (Stream::Tcp(s), Some(peer))),
            Listener::Unix(l) => l.accept().map(|(s, _)| (Stream::Unix(s), None)),
        }
    }

    /// The bound IP address; an `Unsupported` error for a Unix socket.
    pub(crate) fn local_addr(&self) -> io::Result<SocketAddr> {
        match self {
            Listener::Tcp(l) => l.local_addr(),
            Listener::Unix(_) => Err(no_ip_address()),
        }
    }
}

impl Stream {
    /// The pending socket error (`SO_ERROR`), if any.
    pub(crate) fn take_error(&self) -> io::Result<Option<io::Error>> {
        either!(self, s => s.take_error())
    }

    /// The peer's IP address; an `Unsupported` error for a Unix socket.
    pub(crate) fn peer_addr(&self) -> io::Result<SocketAddr> {
        match self {
            Stream::Tcp(s) => s.peer_addr(),
            Stream::Unix(_) => Err(no_ip_address()),
        }
    }

    /// The local IP address; an `Unsupported` error for a Unix socket.
    pub(crate) fn local_addr(&self) -> io::Result<SocketAddr> {
        match self {
            Stream::Tcp(s) => s.local_addr(),
            Stream::Unix(_) => Err(no_ip_address()),
        }
    }

    /// `shutdown(2)` of one or both directions.
    pub(crate) fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        either!(self, s => s.shutdown(how))
    }

    /// TCP_NODELAY; nothing to do (and no error) on a Unix socket, which
    /// has no Nagle delay.
    pub(crate) fn set_nodelay(&self, on: bool) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => s.set_nodelay(on),
            Stream::Unix(_) => Ok(()),
        }
    }
}

impl Read for &Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match *self {
            Stream::Tcp(s) => (&*s).read(buf),
            Stream::Unix(s) => (&*s).read(buf),
        }
    }
}

impl Write for &Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match *self {
            Stream::Tcp(s) => (&*s).write(buf),
            Stream::Unix(s) => (&*s).write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Both kinds register with the poll the same way.
macro_rules! source {
    ($ty:ty) => {
        impl Source for $ty {
            fn register(&mut self, r: &Registry, t: Token, i: Interest) -> io::Result<()> {
                either!(self, s => s.register(r, t, i))
            }

            fn reregister(&mut self, r: &Registry, t: Token, i: Interest) -> io::Result<()> {
                either!(self, s => s.reregister(r, t, i))
            }

            fn deregister(&mut self, r: &Registry) -> io::Result<()> {
                either!(self, s => s.deregister(r))
            }
        }

        impl AsFd for $ty {
            fn as_fd(&self) -> BorrowedFd<'_> {
                either!(self, s => s.as_fd())
            }
        }
    };
}

source!(Listener);
source!(Stream);

fn no_ip_address() -> io::Error {
    io::Error::new(
        io::ErrorKind::Unsupported,
        "a Unix-domain socket has no IP address",
    )
}
