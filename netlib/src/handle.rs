//! Generation-tagged socket handles.
//!
//! A [`Handle`] names a socket slot *and* the generation of the socket in it.
//! When a socket is closed its slot is reused, but with a new generation, so a
//! stale handle (held by a timer, a map, another thread's posted closure, or an
//! event still queued in the same poll batch) can never reach the socket that
//! took the slot over. TeamTalk used raw file descriptors, which the kernel
//! reuses immediately.
//!
//! A handle also carries the id of the loop that made it (every
//! [`EventDispatch`](crate::EventDispatch) gets a process-wide unique id), so
//! with several loops in one process (a [`LoopGroup`](crate::LoopGroup)) a
//! handle used on the wrong loop is [`Error::WrongLoop`](crate::Error::WrongLoop),
//! never a silent hit on whatever socket has the same slot there.

use std::sync::atomic::{AtomicU32, Ordering};

use mio::Token;
use std::fmt;

/// Names one socket of one dispatcher. Cheap to copy, hash and compare.
///
/// Operations on a handle whose socket was closed return
/// [`Error::InvalidHandle`](crate::Error::InvalidHandle); on a handle of
/// another loop, [`Error::WrongLoop`](crate::Error::WrongLoop).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Handle {
    pub(crate) index: u32,
    pub(crate) generation: u32,
    pub(crate) loop_id: u32,
}

static NEXT_LOOP_ID: AtomicU32 = AtomicU32::new(1);

/// A process-wide unique id for a new dispatcher.
pub(crate) fn next_loop_id() -> u32 {
    NEXT_LOOP_ID.fetch_add(1, Ordering::Relaxed)
}

impl Handle {
    pub(crate) fn token(self) -> Token {
        Token(((self.generation as usize) << 32) | self.index as usize)
    }

    /// The handle of an event registered by loop `loop_id`.
    pub(crate) fn from_token(token: Token, loop_id: u32) -> Handle {
        Handle {
            index: token.0 as u32,
            generation: (token.0 >> 32) as u32,
            loop_id,
        }
    }

    /// A number unique among the sockets open at the same time on the same
    /// loop (the slot number), for logs and as a table key. Handles of
    /// different loops may share an index.
    pub fn index(self) -> u32 {
        self.index
    }

    /// The id of the loop that created this handle; unique in the process.
    pub fn loop_id(self) -> u32 {
        self.loop_id
    }
}

impl fmt::Debug for Handle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Handle({}v{})", self.index, self.generation)
    }
}

impl fmt::Display for Handle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}.{}", self.index, self.generation)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_round_trip_keeps_generation() {
        let h = Handle {
            index: 7,
            generation: 0xdead_beef,
            loop_id: 3,
        };
        assert_eq!(Handle::from_token(h.token(), 3), h);
        let reused = Handle {
            index: 7,
            generation: 0xdead_bef0,
            loop_id: 3,
        };
        assert_ne!(reused.token(), h.token());
    }
}
