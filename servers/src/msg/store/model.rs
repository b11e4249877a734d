//! The data the store keeps: sessions, messages (new and stored), one
//! user's view of a session, and groups - plain values shared by every
//! store and by the loop.

use pdu::proto::{ImMsgData, MsgInfo, SessionType};

/// A conversation: two users (either order) or a group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SessionKey {
    /// Users `lo <= hi`.
    Pair(u32, u32),
    /// A group.
    Group(u32),
}

impl SessionKey {
    /// The session between users `a` and `b`.
    pub fn single(a: u32, b: u32) -> SessionKey {
        SessionKey::Pair(a.min(b), a.max(b))
    }

    /// The session `session_id` of type `session_type` as `user` names it
    /// (the peer's id for a single chat, the group's id for a group).
    pub fn of(user: u32, session_type: i32, session_id: u32) -> SessionKey {
        if session_type == SessionType::Group as i32 {
            SessionKey::Group(session_id)
        } else {
            SessionKey::single(user, session_id)
        }
    }

    /// One integer for the database: `lo << 32 | hi`, a group as `0 << 32 |
    /// id` (user id 0 does not exist).
    pub fn to_i64(self) -> i64 {
        let (lo, hi) = match self {
            SessionKey::Pair(lo, hi) => (lo, hi),
            SessionKey::Group(g) => (0, g),
        };
        ((u64::from(lo) << 32) | u64::from(hi)) as i64
    }

    /// The inverse of [`to_i64`](Self::to_i64).
    pub fn from_i64(v: i64) -> SessionKey {
        let v = v as u64;
        let (lo, hi) = ((v >> 32) as u32, v as u32);
        if lo == 0 {
            SessionKey::Group(hi)
        } else {
            SessionKey::Pair(lo, hi)
        }
    }

    /// The session id `user` knows this session by.
    pub fn id_for(self, user: u32) -> u32 {
        match self {
            SessionKey::Pair(lo, hi) => {
                if lo == user {
                    hi
                } else {
                    lo
                }
            }
            SessionKey::Group(g) => g,
        }
    }

    /// TeamTalk's session type.
    pub fn session_type(self) -> SessionType {
        match self {
            SessionKey::Pair(..) => SessionType::Single,
            SessionKey::Group(_) => SessionType::Group,
        }
    }
}

/// A message to store; the store assigns its id in its session.
#[derive(Debug, Clone)]
pub struct NewMessage {
    /// Its session.
    pub session: SessionKey,
    /// The sender.
    pub from: u32,
    /// Who it is delivered to: the peer, or every group member but the
    /// sender (shared with the code that delivers it once stored).
    pub receivers: std::sync::Arc<[u32]>,
    /// `MsgType` as sent.
    pub msg_type: i32,
    /// The content.
    pub data: Vec<u8>,
    /// Seconds since the epoch, set by the server.
    pub create_time: u32,
}

impl NewMessage {
    /// The message as stored under `msg_id` (its content moves out; the
    /// receivers stay for the mailboxes).
    pub fn take_stored(&mut self, msg_id: u32) -> StoredMessage {
        StoredMessage {
            session: self.session,
            msg_id,
            from: self.from,
            create_time: self.create_time,
            msg_type: self.msg_type,
            data: std::mem::take(&mut self.data),
        }
    }
}

/// A stored message.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredMessage {
    /// Its session.
    pub session: SessionKey,
    /// Its id in the session: 1, 2, 3...
    pub msg_id: u32,
    /// The sender.
    pub from: u32,
    /// Seconds since the epoch.
    pub create_time: u32,
    /// `MsgType`.
    pub msg_type: i32,
    /// The content.
    pub data: Vec<u8>,
}

impl StoredMessage {
    /// Bytes it counts against a mailbox.
    pub fn size(&self) -> usize {
        StoredMessage::size_of(self.data.len())
    }

    /// What a message with `data_len` bytes of content counts in a mailbox.
    pub fn size_of(data_len: usize) -> usize {
        data_len + 32
    }

    /// The frame body delivered to `receiver`.
    pub fn to_msg_data(&self, receiver: u32) -> ImMsgData {
        ImMsgData {
            from_user_id: self.from,
            to_session_id: self.session_id_for(receiver),
            msg_id: self.msg_id,
            create_time: self.create_time,
            msg_type: self.msg_type,
            msg_data: self.data.clone(),
            attach_data: None,
        }
    }

    /// `to_session_id` of the frame body delivered to `receiver`: the
    /// receiver in a pair session, the group in a group session.
    pub fn session_id_for(&self, receiver: u32) -> u32 {
        match self.session {
            SessionKey::Pair(..) => receiver,
            SessionKey::Group(g) => g,
        }
    }

    /// The history entry.
    pub fn to_msg_info(&self) -> MsgInfo {
        MsgInfo {
            msg_id: self.msg_id,
            from_session_id: self.from,
            create_time: self.create_time,
            msg_type: self.msg_type,
            msg_data: self.data.clone(),
        }
    }
}

/// One session as one user sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct UserSession {
    /// The session.
    pub session: SessionKey,
    /// Removed by the user (0x0206); comes back with the next message.
    pub removed: bool,
    /// Last change, seconds since the epoch.
    pub updated: u32,
    /// Messages from others after the read position.
    pub unread: u32,
    /// The newest message, if any is still stored.
    pub latest: Option<StoredMessage>,
}

impl UserSession {
    /// A session as a store keeps it for a user: created at `created`,
    /// removed (-1: never) when its newest id was `removed_at`, at
    /// `removed_time`; removed still unless a newer message came, and
    /// updated at its newest message (or its removal, if later).
    pub fn from_stored(
        session: SessionKey,
        created: u32,
        removed_at: i64,
        removed_time: u32,
        unread: u32,
        latest: Option<StoredMessage>,
    ) -> UserSession {
        let latest_id = latest.as_ref().map_or(0, |m| i64::from(m.msg_id));
        let latest_time = latest.as_ref().map_or(created, |m| m.create_time);
        let removed = removed_at >= 0 && latest_id <= removed_at;
        UserSession {
            session,
            removed,
            updated: if removed {
                removed_time.max(latest_time)
            } else {
                latest_time
            },
            unread,
            latest,
        }
    }

    /// Whether [`Op::Sessions`](super::Op::Sessions) with `since` and
    /// `unread_only` lists it.
    pub fn listed(&self, since: u32, unread_only: bool) -> bool {
        self.updated > since && (!unread_only || self.unread > 0)
    }
}

/// Orders the answer to [`Op::Sessions`](super::Op::Sessions): the most
/// recently updated first, ties by session.
pub fn sort_recent_first(list: &mut [UserSession]) {
    list.sort_by(|a, b| b.updated.cmp(&a.updated).then(a.session.cmp(&b.session)));
}

/// A group as the store keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupRecord {
    /// Its id (0 in an [`Op::CreateGroup`](super::Op::CreateGroup): the
    /// store picks one).
    pub id: u32,
    /// Name.
    pub name: String,
    /// Avatar URL.
    pub avatar: String,
    /// Who created it.
    pub creator: u32,
    /// `GroupType`: 1 normal (from the groups file), 2 temporary.
    pub kind: i32,
    /// Bumped at every membership change.
    pub version: u32,
    /// Member user ids, ascending.
    pub members: Vec<u32>,
    /// Members who shielded the group (0x0409), ascending.
    pub shielded: Vec<u32>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_keys_round_trip_and_name_the_peer() {
        let k = SessionKey::single(7, 3);
        assert_eq!(k, SessionKey::Pair(3, 7));
        assert_eq!(SessionKey::from_i64(k.to_i64()), k);
        assert_eq!(k.id_for(3), 7);
        assert_eq!(k.id_for(7), 3);
        let g = SessionKey::Group(u32::MAX);
        assert_eq!(SessionKey::from_i64(g.to_i64()), g);
        let big = SessionKey::single(u32::MAX, u32::MAX - 1);
        assert_eq!(SessionKey::from_i64(big.to_i64()), big);
        assert_ne!(g.to_i64(), big.to_i64());
    }
}
