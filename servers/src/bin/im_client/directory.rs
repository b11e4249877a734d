//! Names and ids of users and of the user's groups, fetched at login, and
//! how messages, history and group changes are shown.

use pdu::proto::{
    GroupInfo, GroupModifyType, GroupType, ImGroupChangeMemberNotify, ImMsgData, MsgType,
};
use servers::client::Peer;
use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};

/// Every account, and the groups this user is in.
#[derive(Default)]
pub struct Directory {
    names: HashMap<u32, String>,
    ids: HashMap<String, u32>,
    groups: BTreeMap<u32, GroupInfo>,
}

impl Directory {
    pub fn new(users: Vec<pdu::proto::UserInfo>) -> Directory {
        let mut d = Directory::default();
        for u in users {
            d.ids.insert(u.user_nick_name.clone(), u.user_id);
            d.names.insert(u.user_id, u.user_nick_name);
        }
        d
    }

    /// Replaces the groups (the server's current list).
    pub fn set_groups(&mut self, groups: Vec<GroupInfo>) {
        self.groups = groups.into_iter().map(|g| (g.group_id, g)).collect();
    }

    pub fn has_group(&self, id: u32) -> bool {
        self.groups.contains_key(&id)
    }

    /// A user's name, or `user <id>` for one the server did not list.
    pub fn name(&self, id: u32) -> String {
        self.names
            .get(&id)
            .cloned()
            .unwrap_or_else(|| format!("user {id}"))
    }

    /// A group's name, or `group <id>` for one not (or no longer) ours.
    pub fn group_name(&self, id: u32) -> String {
        self.groups
            .get(&id)
            .map(|g| g.group_name.clone())
            .unwrap_or_else(|| format!("group {id}"))
    }

    /// How a conversation is named: the user's name, or `[group]`.
    pub fn peer_name(&self, peer: Peer) -> String {
        match peer {
            Peer::User(u) => self.name(u),
            Peer::Group(g) => format!("[{}]", self.group_name(g)),
        }
    }

    /// A user (by name or id) the server knows, or - when `group` - one of
    /// our groups (by name or id).
    pub fn resolve(&self, who: &str, group: bool) -> Result<Peer, String> {
        if group {
            let by_name = self.groups.values().find(|g| g.group_name == who);
            let by_id = || who.parse::<u32>().ok().filter(|id| self.has_group(*id));
            return match by_name.map(|g| g.group_id).or_else(by_id) {
                Some(g) => Ok(Peer::Group(g)),
                None => Err(format!("no such group: {who} (not one of your groups)")),
            };
        }
        if let Some(id) = self.ids.get(who) {
            return Ok(Peer::User(*id));
        }
        match who.parse::<u32>() {
            Ok(id) if self.names.contains_key(&id) => Ok(Peer::User(id)),
            _ => Err(format!("no such user: {who}")),
        }
    }

    /// `name (id), ...` of every account, by id.
    pub fn users_line(&self) -> String {
        let mut all: Vec<_> = self.names.iter().collect();
        all.sort();
        let list: Vec<String> = all.iter().map(|(id, n)| format!("{n} ({id})")).collect();
        format!("users: {}", list.join(", "))
    }

    /// One line per group: `name (id): normal group, members: a, b, c`.
    pub fn group_lines(&self) -> Vec<String> {
        if self.groups.is_empty() {
            return vec!["no groups".into()];
        }
        self.groups
            .values()
            .map(|g| {
                let kind = if g.group_type == GroupType::Tmp as i32 {
                    "temporary"
                } else {
                    "normal"
                };
                format!(
                    "{} ({}): {kind} group, members: {}",
                    g.group_name,
                    g.group_id,
                    self.names_of(&g.group_member_list)
                )
            })
            .collect()
    }

    /// `alice, bob` for ids 1 and 2.
    pub fn names_of(&self, ids: &[u32]) -> String {
        let names: Vec<String> = ids.iter().map(|id| self.name(*id)).collect();
        names.join(", ")
    }

    /// `[local time] sender: text`, or `[local time] [group] sender: text`
    /// in a group: how every message and history entry is shown. A voice
    /// message (`MSG_TYPE_*_AUDIO`) is shown as such, not as its bytes.
    pub fn show(&self, peer: Peer, time: u32, from: u32, msg_type: i32, data: &[u8]) -> String {
        let place = match peer {
            Peer::User(_) => String::new(),
            Peer::Group(_) => format!("{} ", self.peer_name(peer)),
        };
        format!(
            "[{}] {place}{}: {}",
            local_time(time),
            self.name(from),
            content(msg_type, data)
        )
    }

    /// A delivered message as user `me` sees it.
    pub fn show_message(&self, me: u32, m: &ImMsgData) -> String {
        let peer = Peer::of_message(m, me);
        self.show(peer, m.create_time, m.from_user_id, m.msg_type, &m.msg_data)
    }

    /// `* alice added dave to team`, `* bob left team`, `* alice removed
    /// bob from lunch`.
    pub fn show_group_change(&self, n: &ImGroupChangeMemberNotify) -> String {
        let group = self.group_name(n.group_id);
        let by = self.name(n.user_id);
        if n.change_type == GroupModifyType::Add as i32 {
            format!(
                "* {by} added {} to {group}",
                self.names_of(&n.chg_user_id_list)
            )
        } else if n.chg_user_id_list == [n.user_id] {
            format!("* {by} left {group}")
        } else {
            format!(
                "* {by} removed {} from {group}",
                self.names_of(&n.chg_user_id_list)
            )
        }
    }
}

/// A message's text, or `(voice message, N bytes)` for audio.
fn content(msg_type: i32, data: &[u8]) -> Cow<'_, str> {
    match MsgType::try_from(msg_type) {
        Ok(MsgType::SingleAudio | MsgType::GroupAudio) => {
            Cow::Owned(format!("(voice message, {} bytes)", data.len()))
        }
        _ => String::from_utf8_lossy(data),
    }
}

/// `unix` seconds as local `YYYY-MM-DD HH:MM:SS`.
pub fn local_time(unix: u32) -> String {
    let t = libc::time_t::from(unix);
    // SAFETY: localtime_r writes only into `tm`, a local we own; both
    // pointers are valid for the call.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    let ok = unsafe { !libc::localtime_r(&t, &mut tm).is_null() };
    if !ok {
        return format!("@{unix}");
    }
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02}",
        tm.tm_year + 1900,
        tm.tm_mon + 1,
        tm.tm_mday,
        tm.tm_hour,
        tm.tm_min,
        tm.tm_sec
    )
}
