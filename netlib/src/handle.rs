//! Generation-tagged socket handles.
//!
//! A [`Handle`] names a socket slot *and* the generation of the socket in it.
//! When a socket is closed its slot is reused, but with a new generation, so a
//! stale handle (held by a timer, a map, another thread's posted closure, or an
//! event still queued in the same poll batch) can never reach the socket that
//! took the slot over. TeamTalk used raw file descriptors, which the kernel
//! reuses immediately.

use mio::Token;
use std::fmt;

/// Names one socket of one dispatcher. Cheap to copy, hash and compare.
///
/// Operations on a handle whose socket was closed return
/// [`Error::InvalidHandle`](crate::Error::InvalidHandle).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Handle {
    pub(crate) index: u32,
    pub(crate) generation: u32,
}

impl Handle {
    pub(crate) fn token(self) -> Token {
        Token(((self.generation as usize) << 32) | self.index as usize)
    }

    pub(crate) fn from_token(token: Token) -> Handle {
        Handle {
            index: token.0 as u32,
            generation: (token.0 >> 32) as u32,
        }
    }

    /// A number unique among the sockets open at the same time, for logs.
    pub fn index(self) -> u32 {
        self.index
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
        };
        assert_eq!(Handle::from_token(h.token()), h);
        let reused = Handle {
            index: 7,
            generation: 0xdead_bef0,
        };
        assert_ne!(reused.token(), h.token());
    }
}
