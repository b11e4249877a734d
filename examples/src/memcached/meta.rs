//! memcached 1.6's meta commands: `mg`, `ms`, `md`, `ma`, `mn`, `me`.
//!
//! Replies follow memcached 1.6 (proto_text.c) byte for byte for the flags
//! implemented here: status codes `VA`/`HD`/`EN`/`NS`/`EX`/`NF`/`MN`, return
//! flags in the order the client asked for them, `O<opaque>` and `k` echoed
//! on misses too, `q` hiding the nominal reply (`EN` for `mg`, `HD` for the
//! others), and memcached's error strings for bad flags.
//!
//! Leases work as memcached's: `N` (vivify on miss) and `R` (recache)
//! on `mg` hand out `W` to exactly one client, later readers see `Z`, and
//! `md ... I` / `ms ... C<older cas> I` leave the item stale (`X`) - see
//! the store's `lease` module. A few things are simpler than in
//! memcached: a `C<cas>` check on `md` (without `I`), `ma` and
//! `ms MA`/`MP` is made just before the operation rather than under its
//! lock; `l` always answers `l0` (no access time is kept); `I` on `ms` without `C` is ignored; `b` (base64 keys) is refused.

//!
//! This file owns the dispatch and what the session sees (`Next`,
//! `PendingSet`, `data_block_len`); `flags` parses command lines, `reply`
//! builds reply pieces, `get` runs `mg` and `me`, `set` runs `ms`, and
//! `modify` runs `md` and `ma`.

mod flags;
mod get;
mod modify;
mod reply;
mod set;

use super::stats::LocalCounters;
use super::store::Store;
use super::text::Tokens;
use flags::Line;
use reply::client_error;
pub(crate) use set::{data_block_len, PendingSet};

const ERROR: &[u8] = b"CLIENT_ERROR";
const BAD_FORMAT: &str = "bad command line format";
const BAD_TOKEN: &str = "bad token in command line format";
const NO_BASE64: &str = "base64 keys are not supported";

/// memcached refuses a meta command of more than 20 tokens (its
/// `MFLAG_MAX_OPT_LENGTH`, counting the command, the key and an empty
/// terminal token): at most this many tokens after the key.
const MAX_AFTER_KEY: usize = 17;
/// The longest `O<opaque>` token memcached echoes.
const MAX_OPAQUE: usize = 32;

/// What the session does after a meta command line.
#[derive(Debug)]
pub(crate) enum Next {
    /// Read the next command line.
    Line,
    /// Discard this many bytes (a refused `ms` data block and its `\r\n`).
    Swallow(usize),
    /// Read the data block of an `ms`.
    Data(PendingSet),
}

/// Runs meta command `command` (`mg`, `ms`, `md`, `ma`, `mn` or `me`).
pub(crate) fn dispatch(
    store: &Store,
    counters: &mut LocalCounters,
    command: &[u8],
    tokens: Tokens<'_>,
    now: u64,
    out: &mut Vec<u8>,
) -> Next {
    if command == b"mn" {
        out.extend_from_slice(b"MN\r\n");
        return Next::Line;
    }
    let Some(line) = Line::split(tokens) else {
        // memcached wants a key for every meta command but mn.
        if command == b"me" {
            client_error(out, BAD_FORMAT);
        } else {
            out.extend_from_slice(b"ERROR\r\n");
        }
        return Next::Line;
    };
    match command {
        b"mg" => get::meta_get(store, counters, &line, now, out),
        b"ms" => return set::meta_set(store, counters, &line, now, out),
        b"md" => modify::meta_delete(store, counters, &line, now, out),
        b"ma" => modify::meta_arithmetic(store, counters, &line, now, out),
        b"me" => get::meta_debug(store, counters, &line, now, out),
        _ => out.extend_from_slice(b"ERROR\r\n"),
    }
    Next::Line
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::data_block_len;
    use crate::memcached::clock::ManualClock;
    use crate::memcached::{Config, Progress, Session, Store};

    const T0: u64 = 1_700_000_000;

    fn store() -> (Store, Arc<ManualClock>) {
        let clock = Arc::new(ManualClock::new(T0));
        (Store::new(&Config::default(), clock.clone()), clock)
    }

    /// Feeds `input` one byte at a time, as the slowest network would.
    fn bytewise(store: &Store, session: &mut Session, input: &[u8]) -> String {
        let mut pending = Vec::new();
        let mut out = Vec::new();
        for &b in input {
            pending.push(b);
            let (used, progress) = session.process(store, &pending, &mut out);
            assert_eq!(progress, Progress::Continue);
            pending.drain(..used);
        }
        assert!(pending.is_empty());
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn meta_commands_arrive_byte_by_byte() {
        let (store, _) = store();
        let mut session = Session::new();
        let replies = bytewise(
            &store,
            &mut session,
            b"ms k 5 T0 F9 q\r\nhello\r\nmg k v f q\r\nmg x q\r\nms k 2 MX\r\nxx\r\nmn\r\n",
        );
        assert_eq!(
            replies,
            "VA 5 f9\r\nhello\r\nCLIENT_ERROR invalid mode for ms M token\r\nMN\r\n"
        );
    }

    #[test]
    fn ttls_count_down_with_the_clock() {
        let (store, clock) = store();
        let mut session = Session::new();
        let mut out = Vec::new();
        let input = b"ms k 1 T100\r\nv\r\nma n N50 J1\r\n";
        session.process(&store, input, &mut out);
        clock.advance(30);
        out.clear();
        let input = b"mg k t\r\nma n t\r\nme k\r\nmg k T0 t\r\nmg k t\r\n";
        session.process(&store, input, &mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "HD t70\r\nHD t20\r\nME k exp=-70 la=0 cas=1 fetch=no cls=1 size=61\r\nHD t-1\r\nHD t-1\r\n"
        );
        clock.advance(1000);
        let mut out = Vec::new();
        session.process(&store, b"mg n\r\n", &mut out);
        assert_eq!(out, b"EN\r\n");
    }

    #[test]
    fn only_good_ms_lines_carry_a_data_block() {
        assert_eq!(data_block_len(b"ms k 5"), Some(7));
        assert_eq!(data_block_len(b"ms k 5 MX zz"), Some(7));
        assert_eq!(data_block_len(b"  ms k 0 T1"), Some(2));
        assert_eq!(data_block_len(b"ms k"), None);
        assert_eq!(data_block_len(b"ms k -1"), None);
        assert_eq!(data_block_len(b"ms k x"), None);
        assert_eq!(data_block_len(b"mg k 5"), None);
        let many = format!("ms k 1{}", " v".repeat(17));
        assert_eq!(data_block_len(many.as_bytes()), None);
    }
}
