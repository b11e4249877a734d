//! The reading meta commands: `mg` (get, touch and leases) and `me`
//! (memcached's debug line).

use super::flags::{keyed_flags, opaque_too_long, Line};
use super::reply::{client_error, echo_one, push_ttl, status};
use super::{BAD_FORMAT, NO_BASE64};
use crate::memcached::stats::{Counter, LocalCounters};
use crate::memcached::store::{is_valid_key, item_size, ItemView, Lease, LeaseGet, Store};
use crate::memcached::text::push_u64;

/// `mg <key> <flags>*`.
pub(super) fn meta_get(
    store: &Store,
    counters: &mut LocalCounters,
    line: &Line<'_>,
    now: u64,
    out: &mut Vec<u8>,
) {
    let (tokens, flags) = match keyed_flags(line, now, "options flags are too long", None) {
        Ok(parsed) => parsed,
        Err(e) => return client_error(out, e),
    };
    if opaque_too_long(tokens) {
        return client_error(out, "opaque token too long");
    }
    let key = line.key;
    let write = |item: ItemView<'_>, lease: Lease| {
        if flags.value {
            out.extend_from_slice(b"VA ");
            push_u64(out, item.value.len() as u64);
        } else {
            out.extend_from_slice(b"HD");
        }
        for token in tokens {
            match token[0] {
                b's' => {
                    out.extend_from_slice(b" s");
                    push_u64(out, item.value.len() as u64);
                }
                b't' => push_ttl(out, item.exptime, now),
                b'c' => {
                    out.extend_from_slice(b" c");
                    push_u64(out, item.cas);
                }
                b'f' => {
                    out.extend_from_slice(b" f");
                    push_u64(out, u64::from(item.flags));
                }
                b'l' => out.extend_from_slice(b" l0"),
                b'h' => out.extend_from_slice(if lease.fetched { b" h1" } else { b" h0" }),
                _ => {}
            }
            echo_one(out, token, item.key);
        }
        // After the requested flags, as memcached appends them.
        for (on, flag) in [
            (lease.token_sent, b" Z"),
            (lease.stale, b" X"),
            (lease.won, b" W"),
        ] {
            if on {
                out.extend_from_slice(flag);
            }
        }
        out.extend_from_slice(b"\r\n");
        if flags.value {
            out.extend_from_slice(item.value);
            out.extend_from_slice(b"\r\n");
        }
    };
    let ask = LeaseGet {
        touch: flags.ttl,
        vivify: flags.vivify,
        recache: flags.recache,
    };
    let found = store.meta_get(key, ask, now, write);
    let (cmd, hit, miss) = if flags.ttl.is_some() {
        (Counter::CmdTouch, Counter::TouchHits, Counter::TouchMisses)
    } else {
        (Counter::CmdGet, Counter::GetHits, Counter::GetMisses)
    };
    counters.bump(cmd);
    if found.is_some() {
        counters.bump(hit);
        return;
    }
    counters.bump(miss);
    if !flags.quiet {
        status(out, b"EN", tokens, key);
    }
}

/// `me <key>`: memcached's debug line, with what this server keeps; counts
/// `cmd_meta` as memcached 1.6.18 does (only here, once the key is valid).
pub(super) fn meta_debug(
    store: &Store,
    counters: &mut LocalCounters,
    line: &Line<'_>,
    now: u64,
    out: &mut Vec<u8>,
) {
    if !is_valid_key(line.key) {
        return client_error(out, BAD_FORMAT);
    }
    if line.after().first() == Some(&&b"b"[..]) {
        return client_error(out, NO_BASE64);
    }
    counters.bump(Counter::CmdMeta);
    let found = store.get(line.key, now, |item| {
        out.extend_from_slice(b"ME ");
        out.extend_from_slice(item.key);
        out.extend_from_slice(b" exp=");
        if item.exptime == 0 {
            out.extend_from_slice(b"-1");
        } else {
            // memcached prints `current_time - exptime`: minus the TTL left.
            let left = item.exptime.saturating_sub(now);
            if left > 0 {
                out.push(b'-');
            }
            push_u64(out, left);
        }
        out.extend_from_slice(b" la=0 cas=");
        push_u64(out, item.cas);
        out.extend_from_slice(b" fetch=no cls=1 size=");
        push_u64(
            out,
            item_size(item.key.len(), item.flags, item.value.len()) as u64,
        );
        out.extend_from_slice(b"\r\n");
    });
    if found.is_none() {
        out.extend_from_slice(b"EN\r\n");
    }
}
