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
