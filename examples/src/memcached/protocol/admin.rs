//! memcached's administrative commands: `cache_memlimit`, `slabs`,
//! `lru_crawler`, `watch` and `shutdown`, with memcached 1.6's argument
//! checks and reply strings (proto_text.c). This store has no slab classes,
//! no log watchers and no metadump, so those answer what memcached answers
//! when the classes do not exist or the feature is turned off.

use super::{reply, CloseReason, BAD_FORMAT, ERROR, OK};
use crate::memcached::store::Store;
use crate::memcached::text::{parse_u32, Args};

/// memcached's largest slab class id plus one (`MAX_NUMBER_OF_SLAB_CLASSES`).
const MAX_SLAB_CLASSES: u32 = 64;

/// `cache_memlimit <megabytes> [noreply]` (memcached's
/// `process_memlimit_command`).
pub(super) fn cache_memlimit(store: &Store, args: Args<'_>, out: &mut Vec<u8>) {
    if !(1..=2).contains(&args.len()) {
        out.extend_from_slice(ERROR);
        return;
    }
    let noreply = args.last_is_noreply();
    let message: &[u8] = match parse_u32(args.get(0)) {
        None => ERROR,
        Some(mb) if mb < 8 => b"MEMLIMIT_TOO_SMALL cannot set maxbytes to less than 8m\r\n",
        Some(mb) if mb > 1_000_000_000 => {
            b"MEMLIMIT_ADJUST_FAILED input value is megabytes not bytes\r\n"
        }
        Some(mb) => {
            let bytes = (mb as usize).saturating_mul(1024 * 1024);
            if store.set_memory_limit(bytes) {
                log::info!("memcached: maxbytes adjusted to {mb}m");
                OK
            } else {
                b"MEMLIMIT_ADJUST_FAILED out of bounds or unable to adjust\r\n"
            }
        }
    };
    reply(out, noreply, message);
}

/// `slabs reassign <src> <dst>` and `slabs automove <0|1|2>` (memcached's
/// `process_slabs_command`). There are no slab classes here, so every
/// reassignment names a class that does not exist.
pub(super) fn slabs(args: Args<'_>, out: &mut Vec<u8>) {
    if args.len() == 3 && args.get(0) == b"reassign" {
        let (Some(src), Some(dst)) = (parse_i32_arg(args.get(1)), parse_i32_arg(args.get(2)))
        else {
            out.extend_from_slice(BAD_FORMAT);
            return;
        };
        out.extend_from_slice(if src == dst {
            b"SAME src and dst class are identical\r\n"
        } else {
            b"BADCLASS invalid src or dst class id\r\n"
        });
    } else if args.len() >= 2 && args.get(0) == b"automove" {
        slabs_automove(args, out);
    } else {
        out.extend_from_slice(ERROR);
    }
}

fn parse_i32_arg(token: &[u8]) -> Option<i32> {
    crate::memcached::text::parse_i32(token)
}

/// `slabs automove <0|1|2>` or `slabs automove ratio <r>` (memcached's
/// `process_slabs_automove_command`): accepted, nothing to move here.
fn slabs_automove(args: Args<'_>, out: &mut Vec<u8>) {
    let noreply = args.last_is_noreply();
    if args.get(1) == b"ratio" {
        let ratio = std::str::from_utf8(args.get(2))
            .ok()
            .and_then(|s| s.parse::<f64>().ok());
        if args.len() < 3 || ratio.is_none() {
            reply(out, noreply, ERROR);
            return;
        }
    } else {
        match parse_u32(args.get(1)) {
            None => {
                reply(out, noreply, BAD_FORMAT);
                return;
            }
            Some(0..=2) => {}
            Some(_) => {
                reply(out, noreply, ERROR);
                return;
            }
        }
    }
    reply(out, noreply, OK);
}

/// `lru_crawler <enable|disable|crawl|metadump|mgdump|tocrawl|sleep>`
/// (memcached's `process_lru_crawler_command`). The crawler is the store's
/// background reclaimer: `disable` stops it, `enable` restarts it, `crawl`
/// is accepted while it runs (it already walks every item). Dumps answer as
/// memcached does with dumping disabled (`-X`).
pub(super) fn lru_crawler(store: &Store, args: Args<'_>, out: &mut Vec<u8>) {
    let message: &[u8] = match (args.len(), args.get(0)) {
        (2, b"crawl") => {
            if !store.crawler_enabled() {
                b"CLIENT_ERROR lru crawler disabled\r\n"
            } else if valid_classes(args.get(1)) {
                OK
            } else {
                b"BADCLASS invalid class id\r\n"
            }
        }
        (2, b"metadump") if !store.crawler_enabled() => b"CLIENT_ERROR lru crawler disabled\r\n",
        (2, b"metadump") => b"ERROR metadump not allowed\r\n",
        (2, b"mgdump") if !store.crawler_enabled() => b"CLIENT_ERROR lru crawler disabled\r\n",
        (2, b"mgdump") => b"ERROR key dump not allowed\r\n",
        (2, b"tocrawl") => match parse_u32(args.get(1)) {
            Some(_) => OK,
            None => BAD_FORMAT,
        },
        (2, b"sleep") => match parse_u32(args.get(1)) {
            Some(us) if us > 1_000_000 => b"CLIENT_ERROR sleep must be one second or less\r\n",
            Some(_) => OK,
            None => BAD_FORMAT,
        },
        (1, b"enable") => {
            if store.set_crawler_enabled(true) {
                b"ERROR failed to start lru crawler thread\r\n"
            } else {
                OK
            }
        }
        (1, b"disable") => {
            store.set_crawler_enabled(false);
            OK
        }
        _ => ERROR,
    };
    out.extend_from_slice(message);
}

/// memcached's class list for `lru_crawler crawl`: `all`, or ids from 1 to
/// 63 separated by commas.
fn valid_classes(list: &[u8]) -> bool {
    list == b"all"
        || list
            .split(|&b| b == b',')
            .filter(|id| !id.is_empty())
            .all(|id| parse_u32(id).is_some_and(|id| (1..MAX_SLAB_CLASSES).contains(&id)))
}

/// `watch ...`: log watchers are not implemented; memcached's answer when
/// they are turned off (`-W`).
pub(super) fn watch(args: Args<'_>, out: &mut Vec<u8>) {
    reply(
        out,
        args.last_is_noreply(),
        b"CLIENT_ERROR watch commands not allowed\r\n",
    );
}

/// `shutdown [graceful]` (memcached's `process_shutdown_command`): only
/// with `-A`; then the connection closes without a reply and the server
/// stops.
pub(super) fn shutdown(store: &Store, args: Args<'_>, out: &mut Vec<u8>) -> Option<CloseReason> {
    if !store.config().shutdown_enabled {
        out.extend_from_slice(b"ERROR: shutdown not enabled\r\n");
        return None;
    }
    match (args.len(), args.get(0)) {
        (0, _) | (1, b"graceful") => Some(CloseReason::Shutdown),
        _ => {
            out.extend_from_slice(b"CLIENT_ERROR invalid shutdown mode\r\n");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use crate::memcached::{
        CloseReason, Config, ManualClock, NewItem, Progress, Session, Store, StoreMode,
    };

    const T0: u64 = 1_700_000_000;

    fn store(config: Config) -> (Store, Arc<ManualClock>) {
        let clock = Arc::new(ManualClock::new(T0));
        (Store::new(&config, clock.clone()), clock)
    }

    fn run(store: &Store, input: &[u8]) -> (Vec<u8>, Progress) {
        let mut out = Vec::new();
        let (_, progress) = Session::new().process(store, input, &mut out);
        (out, progress)
    }

    #[test]
    fn http_and_binary_close_without_a_reply() {
        let (s, _) = store(Config::default());
        for line in [
            &b"GET / HTTP/1.0\r\n"[..],
            b"PUT /x HTTP/1.1\r\n",
            b"DELETE HTTP/1.1\r\n",
        ] {
            assert_eq!(run(&s, line), (vec![], Progress::Close(CloseReason::Http)));
        }
        // A one-letter command is an ERROR first, as in memcached.
        assert_eq!(run(&s, b"G HTTP/1.0\r\n").0, b"ERROR\r\n");
        assert_eq!(
            run(&s, b"version\r\n\x80\x00\x00\x01"),
            (
                b"VERSION 1.6.21\r\n".to_vec(),
                Progress::Close(CloseReason::BinaryProtocol)
            )
        );
    }

    #[test]
    fn shutdown_and_flush_follow_the_flags() {
        let (s, _) = store(Config {
            shutdown_enabled: true,
            flush_enabled: false,
            ..Config::default()
        });
        assert_eq!(
            run(&s, b"shutdown\r\n"),
            (vec![], Progress::Close(CloseReason::Shutdown))
        );
        assert_eq!(
            run(&s, b"shutdown graceful\r\n").1,
            Progress::Close(CloseReason::Shutdown)
        );
        assert_eq!(
            run(&s, b"shutdown now\r\n").0,
            b"CLIENT_ERROR invalid shutdown mode\r\n"
        );
        assert_eq!(
            run(&s, b"flush_all\r\n").0,
            b"CLIENT_ERROR flush_all not allowed\r\n"
        );
    }

    #[test]
    fn the_reclaimer_removes_expired_items_a_slice_at_a_time() {
        let (s, clock) = store(Config::default());
        for i in 0..10 {
            let key = format!("k{i}");
            let exptime = if i < 8 { T0 + 1 } else { 0 };
            let item = NewItem::new(key.as_bytes(), b"v", 0, exptime).unwrap();
            s.store(StoreMode::Set, item, T0);
        }
        assert_eq!(s.reclaim_expired(100), 0);
        clock.advance(2);
        // Bounded: four slots per step.
        assert_eq!(s.reclaim_expired(4), 4);
        assert_eq!(s.reclaim_expired(4), 4);
        assert_eq!(s.reclaim_expired(4), 0);
        let stats = s.item_stats();
        assert_eq!((stats.curr_items, stats.reclaimed), (2, 8));
    }

    #[test]
    fn memlimit_refuses_what_cannot_hold_an_item() {
        let (s, _) = store(Config {
            item_size_max: 16 << 20,
            memory_limit: 64 << 20,
            ..Config::default()
        });
        assert_eq!(
            run(&s, b"cache_memlimit 8\r\n").0,
            b"MEMLIMIT_ADJUST_FAILED out of bounds or unable to adjust\r\n"
        );
        assert_eq!(s.memory_limit(), 64 << 20);
        assert_eq!(run(&s, b"cache_memlimit 32\r\n").0, b"OK\r\n");
        assert_eq!(s.memory_limit(), 32 << 20);
    }
}
