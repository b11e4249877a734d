//! [`MemcachedCodec`]: memcached's ASCII protocol framed for the imconn
//! connection server.
//!
//! A frame is one unit the [`Session`](super::Session) runs whole:
//!
//! - a command line, `\n` included (an optional `\r` before it is part of
//!   the line); for a storage command whose line passes memcached's checks,
//!   the data block of the declared length and its `\r\n` too, so a `set`
//!   is one frame however its bytes were split into reads;
//! - when that would exceed the connection's `max_frame` (a value over the
//!   item size limit `-I`, which the session refuses), the line alone and
//!   then the data block in pieces as they arrive, which the session
//!   discards by counting: a refused value costs no memory;
//! - a line that reaches its limit ([`Config::max_line`], or
//!   [`Config::max_multiget_line`] for `get`/`gets`) without ending: its
//!   first `limit + 1` bytes, on which the session asks to close, after the
//!   replies before it are sent;
//! - a binary-protocol magic byte (0x80) where a line would start: that
//!   byte alone, on which the session closes (binary is not spoken).
//!
//! The codec never refuses input itself, so the session alone decides what
//! is an error, exactly as when it is driven with
//! [`Session::process`](super::Session::process). Whether a data block
//! follows a line is decided by the same function the session uses.

use imconn::{Codec, DecodeError};

use super::config::Config;
use super::protocol::{data_block_len, line_limit_of};

/// memcached's ASCII protocol as an imconn [`Codec`]. See the module docs.
#[derive(Debug, Clone)]
pub struct MemcachedCodec {
    max_line: usize,
    max_multiget_line: usize,
    /// Bytes of a refused data block still to pass through.
    skip: usize,
    /// How much of the pending line was already searched for `\n`.
    scanned: usize,
}

impl MemcachedCodec {
    /// A codec for the line limits of `config`.
    pub fn new(config: &Config) -> MemcachedCodec {
        MemcachedCodec {
            max_line: config.max_line,
            max_multiget_line: config.max_multiget_line,
            skip: 0,
            scanned: 0,
        }
    }

    /// The `max_frame` a connection with `config` needs: the longest line
    /// and its terminator plus the largest data block accepted.
    pub fn max_frame(config: &Config) -> usize {
        config
            .max_line
            .max(config.max_multiget_line)
            .saturating_add(1)
            .saturating_add(config.item_size_max)
            .saturating_add(2)
    }
}

impl Codec for MemcachedCodec {
    type Frame<'a> = &'a [u8];

    fn decode<'a>(
        &mut self,
        src: &'a [u8],
        max_frame: usize,
    ) -> Result<Option<(&'a [u8], usize)>, DecodeError> {
        if src.is_empty() {
            return Ok(None);
        }
        if self.skip > 0 {
            let n = self.skip.min(src.len());
            self.skip -= n;
            return Ok(Some((&src[..n], n)));
        }
        if src[0] == 0x80 {
            // A binary-protocol request: hand over its magic byte alone,
            // on which the session closes, rather than wait for a newline.
            self.scanned = 0;
            return Ok(Some((&src[..1], 1)));
        }
        let limit = line_limit_of(src, self.max_line, self.max_multiget_line);
        // Look no further than one byte past the limit, like the session.
        let window = src.len().min(limit.saturating_add(1));
        let from = self.scanned.min(window);
        let Some(i) = src[from..window].iter().position(|&b| b == b'\n') else {
            if src.len() > limit {
                // The session closes on it.
                self.scanned = 0;
                return Ok(Some((&src[..window], window)));
            }
            self.scanned = window;
            return Ok(None);
        };
        let newline = from + i;
        let line_len = newline + 1;
        let line = match &src[..newline] {
            [line @ .., b'\r'] => line,
            line => line,
        };
        let Some(block) = data_block_len(line) else {
            self.scanned = 0;
            return Ok(Some((&src[..line_len], line_len)));
        };
        self.scanned = 0;
        let total = line_len.saturating_add(block);
        if total > max_frame {
            // Too large to hold: the session refuses it and counts the
            // data block away as it comes.
            self.skip = block;
            return Ok(Some((&src[..line_len], line_len)));
        }
        if src.len() < total {
            // Waiting for the data block; the line is rescanned then, but a
            // line is short.
            return Ok(None);
        }
        Ok(Some((&src[..total], total)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn codec() -> MemcachedCodec {
        MemcachedCodec::new(&Config {
            max_line: 16,
            max_multiget_line: 32,
            ..Config::default()
        })
    }

    #[test]
    fn a_storage_command_is_one_frame() {
        let mut c = codec();
        let input = b"set k 0 0 3\r\nabc\r\nget k\r\n";
        assert!(c.decode(&input[..15], 100).unwrap().is_none());
        let (frame, used) = c.decode(input, 100).unwrap().unwrap();
        assert_eq!((frame, used), (&input[..18], 18));
        let (frame, _) = c.decode(&input[18..], 100).unwrap().unwrap();
        assert_eq!(frame, b"get k\r\n");
        // A malformed storage line has no data block.
        let (frame, _) = c.decode(b"set k x 0 3\r\nabc\r\n", 100).unwrap().unwrap();
        assert_eq!(frame, b"set k x 0 3\r\n");
    }

    #[test]
    fn an_oversized_block_passes_in_pieces() {
        let mut c = codec();
        let (frame, _) = c.decode(b"set k 0 0 50\r\nxx", 40).unwrap().unwrap();
        assert_eq!(frame, b"set k 0 0 50\r\n");
        assert_eq!(c.decode(b"xx", 40).unwrap().unwrap().0, b"xx");
        let rest = [b'x'; 60];
        assert_eq!(c.decode(&rest, 40).unwrap().unwrap().1, 50);
        assert_eq!(c.decode(b"get k\r\n", 40).unwrap().unwrap().1, 7);
    }

    #[test]
    fn an_overlong_line_is_handed_over_at_its_limit() {
        let mut c = codec();
        assert!(c.decode(&[b'a'; 16], 100).unwrap().is_none());
        assert_eq!(c.decode(&[b'a'; 40], 100).unwrap().unwrap().1, 17);
        // get lines may be longer.
        let mut get = b"get ".to_vec();
        get.extend_from_slice(&[b'k'; 20]);
        assert!(c.decode(&get, 100).unwrap().is_none());
    }
}
