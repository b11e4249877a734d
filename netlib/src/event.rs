//! The events a socket's handler receives - TeamTalk's `NETLIB_MSG_*` kinds.
//!
//! | TeamTalk            | netlib                         |
//! |---------------------|--------------------------------|
//! | `NETLIB_MSG_CONNECT`| [`Event::Connect`] (accepted)   |
//! | `NETLIB_MSG_CONFIRM`| [`Event::Confirm`] (connected)  |
//! | `NETLIB_MSG_READ`   | [`Event::Read`]                 |
//! | `NETLIB_MSG_WRITE`  | [`Event::Write`]                |
//! | `NETLIB_MSG_CLOSE`  | [`Event::Close`] with a reason  |
//! | `NETLIB_MSG_TIMER`  | [`Event::Timer`] / timer closures |
//! | `NETLIB_MSG_LOOP`   | loop hooks (closures)           |

use crate::handle::Handle;
use crate::timer::TimerId;
use std::fmt;
use std::io;

/// Something that happened to a socket, delivered to its [`Handler`](crate::Handler).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// A connection was accepted on `listener`. The handle passed with the
    /// event is the new socket; it starts with the listener's handler, which
    /// may hand it to another one with
    /// [`Context::set_handler`](crate::Context::set_handler).
    Connect {
        /// The listening socket that accepted the connection.
        listener: Handle,
    },
    /// An outgoing connection completed.
    Confirm,
    /// Data (or end-of-stream) may be read. Read with
    /// [`Context::recv`](crate::Context::recv) until it reports
    /// [`Error::WouldBlock`](crate::Error::WouldBlock); what is left unread
    /// (for example because the read budget ran out) is announced again in the
    /// next loop turn without waiting for more data to arrive - provided the
    /// handler called `recv` at all; one that ignores the event hears of the
    /// socket again only when new data arrives.
    Read,
    /// A send that could not complete earlier may now make progress.
    Write,
    /// The peer shut down its sending side while ours stays open. Only
    /// delivered to sockets opened with `half_close: true`; otherwise
    /// end-of-stream closes the socket with [`CloseReason::PeerClosed`].
    ReadClosed,
    /// The socket is closed. This is the last event for the handle, delivered
    /// exactly once per socket whatever closed it.
    Close(CloseReason),
    /// A timer added with [`Context::add_socket_timer`](crate::Context::add_socket_timer) fired.
    Timer(TimerId),
}

/// Why a socket closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseReason {
    /// The peer closed the connection in an orderly way (end-of-stream).
    PeerClosed,
    /// The peer reset the connection (ECONNRESET, EPIPE).
    Reset,
    /// An error: connection refused, unreachable, and so on.
    Error(OsError),
    /// Closed by this process with [`Context::close`](crate::Context::close).
    Local,
    /// A connect timeout expired.
    TimedOut,
    /// The dispatcher shut down.
    Shutdown,
}

impl CloseReason {
    /// Classifies an I/O error the way the dispatcher reports it.
    pub fn from_io(e: &io::Error) -> CloseReason {
        match e.kind() {
            io::ErrorKind::ConnectionReset
            | io::ErrorKind::BrokenPipe
            | io::ErrorKind::ConnectionAborted => CloseReason::Reset,
            io::ErrorKind::TimedOut => CloseReason::TimedOut,
            _ => CloseReason::Error(OsError::from_io(e)),
        }
    }
}

impl fmt::Display for CloseReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CloseReason::PeerClosed => f.write_str("closed by peer"),
            CloseReason::Reset => f.write_str("reset by peer"),
            CloseReason::Error(e) => write!(f, "error: {e}"),
            CloseReason::Local => f.write_str("closed locally"),
            CloseReason::TimedOut => f.write_str("timed out"),
            CloseReason::Shutdown => f.write_str("dispatcher shut down"),
        }
    }
}

/// An operating-system error number, kept `Copy` so events stay cheap.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct OsError(pub i32);

impl OsError {
    /// The error number of `e`, or `EIO` when it carries none.
    pub fn from_io(e: &io::Error) -> OsError {
        OsError(e.raw_os_error().unwrap_or(libc::EIO))
    }

    /// The corresponding [`io::ErrorKind`], e.g. `ConnectionRefused`.
    pub fn kind(self) -> io::ErrorKind {
        self.to_io().kind()
    }

    /// As an [`io::Error`].
    pub fn to_io(self) -> io::Error {
        io::Error::from_raw_os_error(self.0)
    }
}

impl fmt::Debug for OsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "OsError({}: {:?})", self.0, self.kind())
    }
}

impl fmt::Display for OsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.to_io(), f)
    }
}
