//! The retrieval commands `get`, `gets`, `gat` and `gats` (memcached's
//! `process_get_command`) and the `VALUE` lines they answer with.

use super::{Session, BAD_EXPTIME, BAD_FORMAT, END, ERROR, NO_MEMORY_GET};
use crate::memcached::stats::{Counter, DetailOp};
use crate::memcached::store::{expiry_deadline, is_valid_key, ItemView, Store};
use crate::memcached::text::{parse_i32, push_u64, Tokens};

/// Which retrieval command a line asked for.
#[derive(Debug, Clone, Copy)]
pub(super) struct Retrieve {
    pub(super) with_cas: bool,
    pub(super) touch: bool,
}

impl Session {
    /// get, gets, gat, gats (memcached's `process_get_command`).
    pub(super) fn retrieve(
        &mut self,
        store: &Store,
        mut tokens: Tokens<'_>,
        kind: Retrieve,
        now: u64,
        out: &mut Vec<u8>,
    ) {
        if tokens.clone().next().is_none() {
            out.extend_from_slice(ERROR);
            return;
        }
        let touch = if kind.touch {
            match tokens.next().and_then(parse_i32) {
                Some(exptime) => Some(expiry_deadline(i64::from(exptime), now)),
                None => {
                    out.extend_from_slice(BAD_EXPTIME);
                    return;
                }
            }
        } else {
            None
        };
        let start = out.len();
        let budget = store.config().max_get_response;
        for key in tokens {
            if !is_valid_key(key) {
                // Like memcached, drop the values already queued for this
                // command and answer with the error alone.
                out.truncate(start);
                out.extend_from_slice(BAD_FORMAT);
                return;
            }
            let write = |item: ItemView<'_>| write_value(out, start, budget, item, kind.with_cas);
            let found = match touch {
                Some(exptime) => store.get_and_touch(key, exptime, now, write),
                None => store.get(key, now, write),
            };
            let (hit, miss) = if kind.touch {
                self.counters.bump(Counter::CmdTouch);
                (Counter::TouchHits, Counter::TouchMisses)
            } else {
                self.counters.bump(Counter::CmdGet);
                (Counter::GetHits, Counter::GetMisses)
            };
            let detail = if found.is_some() {
                DetailOp::GetHit
            } else {
                DetailOp::GetMiss
            };
            store.counters().record_detail(key, detail);
            match found {
                Some(written) => {
                    self.counters.bump(hit);
                    if !written {
                        out.truncate(start);
                        out.extend_from_slice(NO_MEMORY_GET);
                        return;
                    }
                }
                None => self.counters.bump(miss),
            }
        }
        out.extend_from_slice(END);
    }
}

/// Appends `VALUE <key> <flags> <bytes>[ <cas>]\r\n<data>\r\n`, unless that
/// would take this reply (begun at `start`) past `budget`; returns whether it
/// was written.
fn write_value(
    out: &mut Vec<u8>,
    start: usize,
    budget: usize,
    item: ItemView<'_>,
    with_cas: bool,
) -> bool {
    // 60 bytes covers the fixed text and three numbers.
    let needed = item.key.len() + item.value.len() + 60;
    if (out.len() - start).saturating_add(needed) > budget {
        return false;
    }
    out.reserve(needed);
    out.extend_from_slice(b"VALUE ");
    out.extend_from_slice(item.key);
    out.push(b' ');
    push_u64(out, u64::from(item.flags));
    out.push(b' ');
    push_u64(out, item.value.len() as u64);
    if with_cas {
        out.push(b' ');
        push_u64(out, item.cas);
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(item.value);
    out.extend_from_slice(b"\r\n");
    true
}
