//! Server-wide commands that run on the session: `flush_all`, `stats` and
//! `verbosity`. The administrative commands that need no session state are
//! in [`admin`](super::admin).

use super::{reply, Session, BAD_EXPTIME, BAD_FORMAT, ERROR, FLUSH_DISABLED, MAX_VERBOSITY, OK};
use crate::memcached::stats::Counter;
use crate::memcached::store::{expiry_deadline, Store};
use crate::memcached::text::{parse_i32, parse_u32, Args};

impl Session {
    /// flush_all [delay] [noreply] (memcached's `process_flush_all_command`).
    ///
    /// The delay is an exptime (relative or absolute). memcached then
    /// invalidates every item last stored at or before one second before
    /// that moment; a moment already reached means "now".
    pub(super) fn flush_all(&mut self, store: &Store, args: Args<'_>, now: u64, out: &mut Vec<u8>) {
        if args.len() > 2 {
            out.extend_from_slice(ERROR);
            return;
        }
        let noreply = args.last_is_noreply();
        self.counters.bump(Counter::CmdFlush);
        if !store.config().flush_enabled {
            reply(out, noreply, FLUSH_DISABLED);
            return;
        }
        let mut delay = 0;
        if args.len() != usize::from(noreply) {
            match parse_i32(args.get(0)) {
                Some(d) => delay = d,
                None => {
                    reply(out, noreply, BAD_EXPTIME);
                    return;
                }
            }
        }
        let at = if delay > 0 {
            let oldest_live = expiry_deadline(i64::from(delay), now).saturating_sub(1);
            (oldest_live > now).then_some(oldest_live)
        } else {
            None
        };
        store.flush_all(at, now);
        reply(out, noreply, OK);
    }

    /// stats and its subcommands (see [`crate::memcached::stats::command`]).
    pub(super) fn stats(&mut self, store: &Store, args: Args<'_>, now: u64, out: &mut Vec<u8>) {
        // Include this connection's own counts so far.
        store.counters().absorb(&mut self.counters);
        crate::memcached::stats::command(store, &args, self.conn.as_ref(), now, out);
    }
}

/// verbosity <level> [noreply]. Like memcached 1.6, a lone `noreply` is
/// taken as the level, fails to parse, and the error is silenced.
pub(super) fn verbosity(store: &Store, args: Args<'_>, out: &mut Vec<u8>) {
    if !(1..=2).contains(&args.len()) {
        out.extend_from_slice(ERROR);
        return;
    }
    let noreply = args.last_is_noreply();
    match parse_u32(args.get(0)) {
        Some(level) => {
            store.set_verbosity(level.min(MAX_VERBOSITY));
            reply(out, noreply, OK);
        }
        None => reply(out, noreply, BAD_FORMAT),
    }
}
