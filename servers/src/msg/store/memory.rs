//! [`MemoryStore`]: the store's model in memory, on the loop thread.
//!
//! Lost when the process exits: `Store=memory` is the comparator that shows
//! what durability costs, and a store for tests. Operations run when
//! submitted; their outcomes still reach the loop through [`Completions`]
//! (after the current batch of events), exactly as a real store's do, so the
//! loop has one code path. History is kept per session up to
//! `MemoryHistoryPerSession` messages (older ones are dropped unless still
//! undelivered); mailboxes are bounded by [`Bounds`].

use super::{
    Bounds, Completions, Done, GroupRecord, MessageStore, NewMessage, Op, Outcome, SessionKey,
    StoredMessage, Usage, UserSession,
};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;

#[derive(Debug, Default, Clone, Copy)]
struct SessionState {
    updated: u32,
    removed: bool,
    unread: u32,
    read_id: u32,
}

/// The in-memory store. See the module docs.
pub struct MemoryStore {
    completions: Completions,
    bounds: Bounds,
    history_max: usize,
    history: HashMap<SessionKey, VecDeque<Arc<StoredMessage>>>,
    last_id: HashMap<SessionKey, u32>,
    /// Per user: mailbox position -> message.
    inbox: HashMap<u32, BTreeMap<u64, Arc<StoredMessage>>>,
    next_pos: u64,
    sessions: HashMap<u32, HashMap<SessionKey, SessionState>>,
    usage: Usage,
    groups: HashMap<u32, GroupRecord>,
}

impl MemoryStore {
    /// A store answering through `completions`.
    pub fn new(completions: Completions, bounds: Bounds, history_max: usize) -> MemoryStore {
        MemoryStore {
            completions,
            bounds,
            history_max: history_max.max(1),
            history: HashMap::new(),
            last_id: HashMap::new(),
            inbox: HashMap::new(),
            next_pos: 1,
            sessions: HashMap::new(),
            usage: Usage::default(),
            groups: HashMap::new(),
        }
    }

    fn append(&mut self, mut m: NewMessage) -> Outcome {
        let id = self.last_id.get(&m.session).copied().unwrap_or(0) + 1;
        let stored = Arc::new(m.take_stored(id));
        let size = stored.size();
        let receivers = match self
            .usage
            .admit_message(&self.bounds, m.session, &m.receivers, size)
        {
            Ok(r) => r,
            Err(r) => return Outcome::Refused(r),
        };
        self.last_id.insert(m.session, id);
        let h = self.history.entry(m.session).or_default();
        h.push_back(Arc::clone(&stored));
        if h.len() > self.history_max {
            h.pop_front();
        }
        let mut mailbox = Vec::with_capacity(receivers.len());
        for &r in &receivers {
            let pos = self.next_pos;
            self.next_pos += 1;
            self.inbox
                .entry(r)
                .or_default()
                .insert(pos, Arc::clone(&stored));
            mailbox.push((r, pos));
            self.usage.add(r, size);
            let s = self.session(r, m.session);
            s.updated = m.create_time;
            s.removed = false;
            s.unread += 1;
        }
        let s = self.session(m.from, m.session);
        s.updated = m.create_time;
        s.removed = false;
        s.read_id = id;
        Outcome::Stored(stored, mailbox)
    }

    fn session(&mut self, user: u32, session: SessionKey) -> &mut SessionState {
        self.sessions
            .entry(user)
            .or_default()
            .entry(session)
            .or_default()
    }

    fn find(&self, session: SessionKey, id: u32) -> Option<&Arc<StoredMessage>> {
        let h = self.history.get(&session)?;
        let first = h.front()?.msg_id;
        // Ids in a session's history are consecutive.
        h.get(id.checked_sub(first)? as usize)
            .filter(|m| m.msg_id == id)
    }

    fn latest(&self, session: SessionKey) -> Option<StoredMessage> {
        self.history
            .get(&session)
            .and_then(|h| h.back())
            .map(|m| (**m).clone())
    }

    fn run(&mut self, op: Op) -> Outcome {
        match op {
            Op::Append(m) => self.append(m),
            Op::Delivered { user, pos } => {
                if let Some(inbox) = self.inbox.get_mut(&user) {
                    if let Some(m) = inbox.remove(&pos) {
                        self.usage.remove(user, m.size());
                    }
                    if inbox.is_empty() {
                        self.inbox.remove(&user);
                    }
                }
                Outcome::Done
            }
            Op::Undelivered { user, after, limit } => {
                let Some(inbox) = self.inbox.get(&user) else {
                    return Outcome::Backlog {
                        items: Vec::new(),
                        complete: true,
                    };
                };
                let mut range = inbox.range(after + 1..);
                let items: Vec<(u64, StoredMessage)> = range
                    .by_ref()
                    .take(limit)
                    .map(|(p, m)| (*p, (**m).clone()))
                    .collect();
                let complete = range.next().is_none();
                Outcome::Backlog { items, complete }
            }
            Op::History {
                session,
                until,
                count,
            } => {
                let list = self
                    .history
                    .get(&session)
                    .map(|h| {
                        h.iter()
                            .rev()
                            .filter(|m| m.msg_id <= until)
                            .take(count as usize)
                            .map(|m| (**m).clone())
                            .collect()
                    })
                    .unwrap_or_default();
                Outcome::Messages(list)
            }
            Op::ById { session, ids } => Outcome::Messages(
                ids.iter()
                    .filter_map(|id| self.find(session, *id).map(|m| (**m).clone()))
                    .collect(),
            ),
            Op::Latest { session } => {
                Outcome::LatestId(self.last_id.get(&session).copied().unwrap_or(0))
            }
            Op::ReadAck {
                user,
                session,
                msg_id,
            } => {
                let read_id = {
                    let s = self.session(user, session);
                    s.read_id = s.read_id.max(msg_id);
                    s.read_id
                };
                let unread = self.history.get(&session).map_or(0, |h| {
                    h.iter()
                        .filter(|m| m.msg_id > read_id && m.from != user)
                        .count() as u32
                });
                self.session(user, session).unread = unread;
                Outcome::Done
            }
            Op::Sessions {
                user,
                since,
                unread_only,
            } => {
                let mut list: Vec<UserSession> = self
                    .sessions
                    .get(&user)
                    .map(|all| {
                        all.iter()
                            .filter(|(_, s)| s.updated > since && (!unread_only || s.unread > 0))
                            .map(|(k, s)| UserSession {
                                session: *k,
                                removed: s.removed,
                                updated: s.updated,
                                unread: s.unread,
                                latest: self.latest(*k),
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                super::sort_recent_first(&mut list);
                Outcome::Sessions(list)
            }
            Op::RemoveSession { user, session } => {
                if let Some(s) = self
                    .sessions
                    .get_mut(&user)
                    .and_then(|m| m.get_mut(&session))
                {
                    s.removed = true;
                    s.updated = super::super::unix_now();
                }
                Outcome::Done
            }
            Op::CreateGroup(mut g) => {
                if g.id == 0 {
                    g.id = self.groups.keys().max().copied().unwrap_or(0) + 1;
                }
                let id = g.id;
                self.groups.entry(id).or_insert(g);
                Outcome::GroupCreated(id)
            }
            Op::SetMembers {
                group,
                members,
                version,
            } => match self.groups.get_mut(&group) {
                Some(g) if g.version.wrapping_add(1) == version => {
                    g.shielded.retain(|u| members.binary_search(u).is_ok());
                    g.members = members;
                    g.version = version;
                    Outcome::Done
                }
                _ => super::group_conflict(group, version),
            },
            Op::SetShield { group, user, on } => {
                if let Some(g) = self.groups.get_mut(&group) {
                    match (on, g.shielded.binary_search(&user)) {
                        (true, Err(at)) if g.members.binary_search(&user).is_ok() => {
                            g.shielded.insert(at, user)
                        }
                        (false, Ok(at)) => {
                            g.shielded.remove(at);
                        }
                        _ => {}
                    }
                }
                Outcome::Done
            }
            Op::LoadGroups { only } => Outcome::Groups(
                self.groups
                    .values()
                    .filter(|g| only.is_none_or(|id| id == g.id))
                    .cloned()
                    .collect(),
            ),
        }
    }
}

impl MessageStore for MemoryStore {
    fn submit(&mut self, op: Op, done: Option<Done>) {
        let outcome = self.run(op);
        if let Some(done) = done {
            self.completions.complete([(done, outcome)]);
        }
    }

    fn describe(&self) -> String {
        let (n, bytes) = self.usage.totals();
        format!("memory ({n} undelivered, {bytes} bytes)")
    }

    fn take_groups(&mut self) -> Vec<GroupRecord> {
        Vec::new() // nothing survives a restart
    }
}
