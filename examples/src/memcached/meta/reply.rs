//! Building meta replies: memcached's `CLIENT_ERROR` lines, the echoed
//! `O<opaque>`/`k<key>` return flags, `t<ttl>` and bare status lines.

use super::ERROR;
use crate::memcached::text::push_u64;

/// Appends `CLIENT_ERROR <message>\r\n`.
pub(super) fn client_error(out: &mut Vec<u8>, message: &str) {
    out.extend_from_slice(ERROR);
    out.push(b' ');
    out.extend_from_slice(message.as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// Appends the `O<opaque>` and `k<key>` return flags, in request order.
pub(super) fn echo(out: &mut Vec<u8>, tokens: &[&[u8]], key: &[u8]) {
    for token in tokens {
        match token[0] {
            b'O' => {
                out.push(b' ');
                out.extend_from_slice(token);
            }
            b'k' => {
                out.extend_from_slice(b" k");
                out.extend_from_slice(key);
            }
            _ => {}
        }
    }
}

pub(super) fn echo_one(out: &mut Vec<u8>, token: &[u8], key: &[u8]) {
    echo(out, &[token], key);
}

pub(super) fn push_ttl(out: &mut Vec<u8>, exptime: u64, now: u64) {
    out.extend_from_slice(b" t");
    if exptime == 0 {
        out.extend_from_slice(b"-1");
    } else {
        push_u64(out, exptime.saturating_sub(now));
    }
}

/// Appends a reply without a value: `code`, the echoed `O`/`k` flags, `\r\n`.
pub(super) fn status(out: &mut Vec<u8>, code: &[u8], tokens: &[&[u8]], key: &[u8]) {
    out.extend_from_slice(code);
    echo(out, tokens, key);
    out.extend_from_slice(b"\r\n");
}
