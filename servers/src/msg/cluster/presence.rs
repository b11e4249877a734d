//! Who is online on the other msg_servers, for the status query (0x020a)
//! and the departments' status notifications (0x0203, what changed is
//! returned as [`Change`]s): logins and logouts on `im.presence`, a refresh of every server's users
//! every [`PRESENCE_REFRESH`], entries that expire after [`PRESENCE_TTL`].
//! Why this design: the parent module's docs.

use super::{queue, Out, PRESENCE, PRESENCE_SID};
use crate::msg::MsgState;
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// Presence kinds in a [`PRESENCE`](super::PRESENCE) payload.
pub(super) const OFF: u8 = 0;
pub(super) const ON: u8 = 1;
pub(super) const STILL_ON: u8 = 2;
/// "Tell me who is online on you" (a server whose link just came up).
pub(super) const ASK: u8 = 3;

/// Every how often a server republishes who is online on it.
pub const PRESENCE_REFRESH: Duration = Duration::from_secs(10);
/// How long a remote user counts as online without a refresh.
pub const PRESENCE_TTL: Duration = Duration::from_secs(35);
/// Most servers a user is remembered online on (more at once are a user's
/// stale entries from restarted servers; the oldest goes).
pub const PRESENCE_SERVERS_MAX: usize = 4;
/// Most user ids per refresh message (16 KiB of payload).
const REFRESH_CHUNK: usize = 4096;

/// Users online on other servers: user -> (server, last heard), bounded by
/// the users file and [`PRESENCE_SERVERS_MAX`].
#[derive(Debug, Default)]
pub(super) struct RemotePresence {
    users: HashMap<u32, Vec<(u64, Instant)>>,
}

impl RemotePresence {
    fn online(&self, user: u32, now: Instant) -> bool {
        self.users.get(&user).is_some_and(|v| {
            v.iter()
                .any(|(_, at)| now.duration_since(*at) < PRESENCE_TTL)
        })
    }

    fn heard(&mut self, server: u64, user: u32, on: bool, now: Instant) {
        let list = self.users.entry(user).or_default();
        list.retain(|(s, _)| *s != server);
        if on {
            if list.len() >= PRESENCE_SERVERS_MAX {
                list.sort_by_key(|(_, at)| std::cmp::Reverse(*at));
                list.truncate(PRESENCE_SERVERS_MAX - 1);
            }
            list.push((server, now));
        } else if list.is_empty() {
            self.users.remove(&user);
        }
    }

    /// Drops what was not heard within [`PRESENCE_TTL`]; returns the users
    /// left with no server.
    fn expire(&mut self, now: Instant) -> Vec<u32> {
        let mut gone = Vec::new();
        self.users.retain(|user, v| {
            v.retain(|(_, at)| now.duration_since(*at) < PRESENCE_TTL);
            if v.is_empty() {
                gone.push(*user);
            }
            !v.is_empty()
        });
        gone
    }
}

/// An id for this run of this server: random enough that two servers (or
/// two runs of one) do not share it.
pub(super) fn run_id() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u32(std::process::id());
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    h.finish()
}

/// Publishes a presence change (`kind`) of `users` here.
pub(super) fn publish_presence(state: &mut MsgState, kind: u8, users: &[u32]) {
    let Some(c) = state.cluster.as_ref() else {
        return;
    };
    let mut p = Vec::with_capacity(10 + 4 * users.len());
    p.push(PRESENCE);
    p.extend_from_slice(&c.server_id.to_le_bytes());
    p.push(kind);
    for u in users {
        p.extend_from_slice(&u.to_le_bytes());
    }
    queue(state, Out::Pub(PRESENCE_SID, p));
}

/// A user's status as seen from this server changed because of what the
/// other servers told (or stopped telling): (user, on line now). Users on
/// line here are left out: their own logins and logouts here tell.
pub(crate) type Change = (u32, bool);

/// Every [`PRESENCE_REFRESH`]: who is online here, to the others; forgets
/// remote users not heard of for [`PRESENCE_TTL`] and returns those of them
/// now off line everywhere (a server killed, a logout lost while NATS was
/// down).
pub(super) fn refresh_presence(state: &mut MsgState) -> Vec<Change> {
    let Some(c) = state.cluster.as_mut() else {
        return Vec::new();
    };
    let gone = c.remote.expire(Instant::now());
    let mut users: Vec<u32> = state.sessions.values().map(|s| s.user_id).collect();
    users.sort_unstable();
    users.dedup();
    for chunk in users.chunks(REFRESH_CHUNK) {
        publish_presence(state, STILL_ON, chunk);
    }
    gone.into_iter()
        .filter(|u| !state.online.is_online(*u))
        .map(|u| (u, false))
        .collect()
}

/// Whether `user` is online on another msg_server, as last heard.
pub(crate) fn online_elsewhere(state: &MsgState, user: u32) -> bool {
    state
        .cluster
        .as_ref()
        .is_some_and(|c| c.remote.online(user, Instant::now()))
}

/// A presence message from server `server`: `users` went on or off line
/// there, are still on line there, or (`ASK`) the server wants a refresh.
/// Returns whose status, seen from here, changed: a login or logout there,
/// or a refresh naming a user this server had stopped counting (after an
/// outage of NATS, or a login published while a link was down).
pub(super) fn heard(state: &mut MsgState, server: u64, kind: u8, users: Vec<u32>) -> Vec<Change> {
    if kind == ASK {
        return refresh_presence(state);
    }
    let now = Instant::now();
    let mut changes = Vec::new();
    if let Some(c) = state.cluster.as_mut() {
        for u in users.into_iter().filter(|u| state.user_ids.contains(u)) {
            let was = c.remote.online(u, now);
            c.remote.heard(server, u, kind != OFF, now);
            let is = c.remote.online(u, now);
            if was != is && !state.online.is_online(u) {
                changes.push((u, is));
            }
        }
    }
    changes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remote_presence_expires_and_is_bounded_per_user() {
        let t0 = Instant::now();
        let mut r = RemotePresence::default();
        r.heard(1, 7, true, t0);
        assert!(r.online(7, t0 + PRESENCE_TTL / 2));
        assert!(!r.online(7, t0 + PRESENCE_TTL), "not refreshed");
        r.heard(1, 7, true, t0 + PRESENCE_TTL / 2); // a refresh
        assert!(r.online(7, t0 + PRESENCE_TTL));
        r.heard(2, 7, true, t0);
        r.heard(1, 7, false, t0); // off line on server 1, still on 2
        assert!(r.online(7, t0));
        r.heard(2, 7, false, t0);
        assert!(!r.online(7, t0));
        assert!(r.users.is_empty(), "nothing kept for an off-line user");
        for server in 0..10u64 {
            r.heard(server, 8, true, t0 + Duration::from_millis(server));
        }
        let kept: Vec<u64> = r.users[&8].iter().map(|(s, _)| *s).collect();
        assert_eq!(kept.len(), PRESENCE_SERVERS_MAX);
        assert!(kept.contains(&9), "the newest stays");
        assert_eq!(r.expire(t0 + PRESENCE_TTL + Duration::from_secs(1)), [8]);
        assert!(r.users.is_empty());
    }
}
