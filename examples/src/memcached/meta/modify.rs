//! The meta commands that change an existing item: `md` (delete or mark
//! stale) and `ma` (increment or decrement, optionally creating).

use super::flags::{keyed_flags, opaque_too_long, Line};
use super::reply::{client_error, echo_one, push_ttl, status};
use crate::memcached::stats::{Counter, LocalCounters};
use crate::memcached::store::{DeltaError, MarkStale, NewItem, Store, StoreMode, StoreOutcome};
use crate::memcached::text::{format_u64, push_u64};

/// `md <key> <flags>*`.
pub(super) fn meta_delete(
    store: &Store,
    counters: &mut LocalCounters,
    line: &Line<'_>,
    now: u64,
    out: &mut Vec<u8>,
) {
    let (tokens, flags) = match keyed_flags(
        line,
        now,
        "options flags too long",
        Some("invalid or duplicate flag"),
    ) {
        Ok(parsed) => parsed,
        Err(e) => return client_error(out, e),
    };
    if opaque_too_long(tokens) {
        return client_error(out, "opaque token too long");
    }
    let key = line.key;
    if flags.invalidate {
        let code: &[u8] = match store.mark_stale(key, flags.cas, flags.ttl, now) {
            Ok(()) if flags.quiet => return,
            Ok(()) => b"HD",
            Err(MarkStale::Exists) => b"EX",
            Err(MarkStale::NotFound) => b"NF",
        };
        if code != b"HD" {
            counters.bump(Counter::DeleteMisses);
        }
        return status(out, code, tokens, key);
    }
    let code: &[u8] = match store.get(key, now, |i| i.cas) {
        Some(cas) if flags.cas.is_some_and(|c| c != cas) => {
            counters.bump(Counter::DeleteMisses);
            b"EX"
        }
        Some(_) if store.delete(key, now) => {
            counters.bump(Counter::DeleteHits);
            if flags.quiet {
                return;
            }
            b"HD"
        }
        _ => {
            counters.bump(Counter::DeleteMisses);
            b"NF"
        }
    };
    status(out, code, tokens, key);
}

/// `ma <key> <flags>*`.
pub(super) fn meta_arithmetic(
    store: &Store,
    counters: &mut LocalCounters,
    line: &Line<'_>,
    now: u64,
    out: &mut Vec<u8>,
) {
    let (tokens, flags) = match keyed_flags(
        line,
        now,
        "options flags too long",
        Some("invalid or duplicate flag"),
    ) {
        Ok(parsed) => parsed,
        Err(e) => return client_error(out, e),
    };
    let incr = match flags.mode {
        None | Some(b'I' | b'i' | b'+') => true,
        Some(b'D' | b'd' | b'-') => false,
        Some(_) => return client_error(out, "invalid mode for ma M token"),
    };
    if opaque_too_long(tokens) {
        return client_error(out, "opaque token too long");
    }
    let key = line.key;
    let (hits, misses) = if incr {
        (Counter::IncrHits, Counter::IncrMisses)
    } else {
        (Counter::DecrHits, Counter::DecrMisses)
    };
    let cas_mismatch = flags
        .cas
        .is_some_and(|c| store.get(key, now, |i| i.cas).is_some_and(|cas| cas != c));
    let result = if cas_mismatch {
        Err(b"EX" as &[u8])
    } else {
        match store.delta(key, incr, flags.delta.unwrap_or(1), now) {
            Ok(value) => {
                counters.bump(hits);
                Ok((value, false))
            }
            Err(DeltaError::NonNumeric) => {
                return client_error(out, "cannot increment or decrement non-numeric value")
            }
            Err(DeltaError::OutOfMemory) => {
                out.extend_from_slice(b"SERVER_ERROR out of memory\r\n");
                return;
            }
            Err(DeltaError::NotFound) => match flags.vivify {
                Some(deadline) => {
                    let mut digits = [0u8; 20];
                    let digits = format_u64(flags.initial, &mut digits);
                    let stored = NewItem::new(key, digits, 0, deadline)
                        .map(|item| store.store(StoreMode::Add, item, now));
                    match stored {
                        Some(StoreOutcome::Stored) => Ok((flags.initial, true)),
                        _ => Err(b"NS" as &[u8]),
                    }
                }
                None => {
                    counters.bump(misses);
                    Err(b"NF" as &[u8])
                }
            },
        }
    };
    let (value, created) = match result {
        Ok(found) => found,
        Err(code) => {
            return status(out, code, tokens, key);
        }
    };
    if let (Some(deadline), false) = (flags.ttl, created) {
        store.touch(key, deadline, now);
    }
    if flags.quiet && !created {
        return;
    }
    let mut digits = [0u8; 20];
    let digits = format_u64(value, &mut digits);
    let (cas, exptime) = store
        .get(key, now, |i| (i.cas, i.exptime))
        .unwrap_or((0, 0));
    if flags.value {
        out.extend_from_slice(b"VA ");
        push_u64(out, digits.len() as u64);
    } else {
        out.extend_from_slice(b"HD");
    }
    for token in tokens {
        match token[0] {
            b'c' => {
                out.extend_from_slice(b" c");
                push_u64(out, cas);
            }
            b't' => push_ttl(out, exptime, now),
            _ => echo_one(out, token, key),
        }
    }
    out.extend_from_slice(b"\r\n");
    if flags.value {
        out.extend_from_slice(digits);
        out.extend_from_slice(b"\r\n");
    }
}
