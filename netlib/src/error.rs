//! Errors returned by the dispatcher and its sockets.

use crate::socket::SocketState;
use std::fmt;
use std::io;

/// What went wrong in a netlib call.
#[derive(Debug)]
pub enum Error {
    /// The operation cannot make progress now: the kernel buffer is full (send)
    /// or empty (recv), or the per-event read budget is spent. Not a failure;
    /// a [`Write`](crate::Event::Write) or [`Read`](crate::Event::Read) event
    /// follows when progress is possible.
    WouldBlock,
    /// The handle names no open socket (it was closed, or never existed).
    InvalidHandle,
    /// The operation is not allowed in the socket's current state, such as
    /// sending while still connecting or listening twice.
    InvalidState {
        /// The operation that was refused.
        op: &'static str,
        /// The state the socket was in.
        state: SocketState,
    },
    /// The [`Handle`](crate::Handle) or [`HandlerRef`](crate::HandlerRef)
    /// belongs to another loop (say, another loop of a
    /// [`LoopGroup`](crate::LoopGroup)); it names nothing on this one.
    WrongLoop,
    /// The dispatcher has shut down (or is shutting down); posted work is refused.
    Stopped,
    /// An error from the operating system.
    Io(io::Error),
}

impl Error {
    /// True for [`Error::WouldBlock`].
    pub fn is_would_block(&self) -> bool {
        matches!(self, Error::WouldBlock)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::WouldBlock => f.write_str("operation would block"),
            Error::InvalidHandle => f.write_str("no open socket has this handle"),
            Error::InvalidState { op, state } => {
                write!(f, "cannot {op} a socket in state {state:?}")
            }
            Error::WrongLoop => f.write_str("handle belongs to another event loop"),
            Error::Stopped => f.write_str("event dispatcher has stopped"),
            Error::Io(e) => write!(f, "i/o error: {e}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io(e) => Some(e),
            _ => None,
        }
    }
}

impl From<io::Error> for Error {
    fn from(e: io::Error) -> Self {
        if e.kind() == io::ErrorKind::WouldBlock {
            Error::WouldBlock
        } else {
            Error::Io(e)
        }
    }
}

/// Shorthand for results of netlib calls.
pub type Result<T, E = Error> = std::result::Result<T, E>;
