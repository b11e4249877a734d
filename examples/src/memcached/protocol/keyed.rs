//! The commands that change one existing item in place: `incr`, `decr`,
//! `touch` and `delete`, with memcached 1.6's argument checks and replies.

use super::{
    reply, Session, BAD_DELTA, BAD_EXPTIME, BAD_FORMAT, DELETED, DELETE_USAGE, ERROR, NON_NUMERIC,
    NOT_FOUND, NO_MEMORY, TOUCHED,
};
use crate::memcached::stats::{Counter, DetailOp};
use crate::memcached::store::{expiry_deadline, is_valid_key, DeltaError, Store};
use crate::memcached::text::{parse_i32, parse_u64, push_u64, Args};

impl Session {
    /// incr and decr (memcached's `process_arithmetic_command`).
    pub(super) fn arithmetic(
        &mut self,
        store: &Store,
        args: Args<'_>,
        incr: bool,
        now: u64,
        out: &mut Vec<u8>,
    ) {
        if !(2..=3).contains(&args.len()) {
            out.extend_from_slice(ERROR);
            return;
        }
        let noreply = args.last_is_noreply();
        let key = args.get(0);
        if !is_valid_key(key) {
            reply(out, noreply, BAD_FORMAT);
            return;
        }
        let Some(delta) = parse_u64(args.get(1)) else {
            reply(out, noreply, BAD_DELTA);
            return;
        };
        let (hits, misses) = if incr {
            (Counter::IncrHits, Counter::IncrMisses)
        } else {
            (Counter::DecrHits, Counter::DecrMisses)
        };
        match store.delta(key, incr, delta, now) {
            Ok(value) => {
                self.counters.bump(hits);
                if !noreply {
                    push_u64(out, value);
                    out.extend_from_slice(b"\r\n");
                }
            }
            Err(DeltaError::NotFound) => {
                self.counters.bump(misses);
                reply(out, noreply, NOT_FOUND);
            }
            Err(DeltaError::NonNumeric) => reply(out, noreply, NON_NUMERIC),
            Err(DeltaError::OutOfMemory) => reply(out, noreply, NO_MEMORY),
        }
    }

    /// touch (memcached's `process_touch_command`).
    pub(super) fn touch(&mut self, store: &Store, args: Args<'_>, now: u64, out: &mut Vec<u8>) {
        if !(2..=3).contains(&args.len()) {
            out.extend_from_slice(ERROR);
            return;
        }
        let noreply = args.last_is_noreply();
        let key = args.get(0);
        if !is_valid_key(key) {
            reply(out, noreply, BAD_FORMAT);
            return;
        }
        let Some(exptime) = parse_i32(args.get(1)) else {
            reply(out, noreply, BAD_EXPTIME);
            return;
        };
        self.counters.bump(Counter::CmdTouch);
        if store.touch(key, expiry_deadline(i64::from(exptime), now), now) {
            self.counters.bump(Counter::TouchHits);
            reply(out, noreply, TOUCHED);
        } else {
            self.counters.bump(Counter::TouchMisses);
            reply(out, noreply, NOT_FOUND);
        }
    }

    /// delete (memcached's `process_delete_command`): `delete <key> [0]
    /// [noreply]`; the legacy hold time is accepted only as `0`.
    pub(super) fn delete(&mut self, store: &Store, args: Args<'_>, now: u64, out: &mut Vec<u8>) {
        if !(1..=3).contains(&args.len()) {
            out.extend_from_slice(ERROR);
            return;
        }
        let mut noreply = false;
        if args.len() > 1 {
            let hold_is_zero = args.get(1) == b"0";
            noreply = args.last_is_noreply();
            let valid = (args.len() == 2 && (hold_is_zero || noreply))
                || (args.len() == 3 && hold_is_zero && noreply);
            if !valid {
                reply(out, noreply, DELETE_USAGE);
                return;
            }
        }
        let key = args.get(0);
        if !is_valid_key(key) {
            reply(out, noreply, BAD_FORMAT);
            return;
        }
        store.counters().record_detail(key, DetailOp::Delete);
        if store.delete(key, now) {
            self.counters.bump(Counter::DeleteHits);
            reply(out, noreply, DELETED);
        } else {
            self.counters.bump(Counter::DeleteMisses);
            reply(out, noreply, NOT_FOUND);
        }
    }
}
