//! Conversations: sending to a user or a group, what the server pushes
//! (each delivery acked with the session it came in, so the server can take
//! it out of the mailbox), a session's history, the user's groups, and
//! temporary groups (creating one, changing its members).

use super::{decode, ImClient};
use pdu::proto::{
    GroupInfo, GroupModifyType, GroupType, GroupVersionInfo, ImGetMsgListReq, ImGetMsgListRsp,
    ImGroupChangeMemberNotify, ImGroupChangeMemberReq, ImGroupChangeMemberRsp, ImGroupCreateReq,
    ImGroupCreateRsp, ImGroupInfoListReq, ImGroupInfoListRsp, ImKickUser, ImMsgData, ImMsgDataAck,
    ImNormalGroupListReq, ImNormalGroupListRsp, ImUserStatNotify, MsgInfo, MsgType, SessionType,
    UserStat,
};
use pdu::{cid, sid};
use std::io;
use std::time::{Duration, Instant};

/// A conversation as this user names it: with one user, or in a group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Peer {
    /// The one-to-one session with this user id.
    User(u32),
    /// The session of this group id (normal or temporary).
    Group(u32),
}

impl Peer {
    /// The conversation a delivered message belongs to, for user `me`: its
    /// group for a group message (`MSG_TYPE_GROUP_TEXT`/`_AUDIO`, 0x11 and
    /// 0x12), otherwise its sender - or its receiver for a copy of a message
    /// `me` sent from another device.
    pub fn of_message(m: &ImMsgData, me: u32) -> Peer {
        if is_group_type(m.msg_type) {
            Peer::Group(m.to_session_id)
        } else if m.from_user_id == me {
            Peer::User(m.to_session_id)
        } else {
            Peer::User(m.from_user_id)
        }
    }

    /// `SESSION_TYPE_SINGLE` or `SESSION_TYPE_GROUP`.
    pub fn session_type(self) -> SessionType {
        match self {
            Peer::User(_) => SessionType::Single,
            Peer::Group(_) => SessionType::Group,
        }
    }

    /// The user's or the group's id (TeamTalk's `session_id`).
    pub fn id(self) -> u32 {
        match self {
            Peer::User(id) | Peer::Group(id) => id,
        }
    }

    /// The message type of a text sent to this conversation.
    fn text_type(self) -> MsgType {
        match self {
            Peer::User(_) => MsgType::SingleText,
            Peer::Group(_) => MsgType::GroupText,
        }
    }
}

/// A group message type (text or audio)?
fn is_group_type(msg_type: i32) -> bool {
    matches!(
        MsgType::try_from(msg_type),
        Ok(MsgType::GroupText | MsgType::GroupAudio)
    )
}

/// Something the server pushed to a logged-in client.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// A message, one to one or in a group (already acked to the server).
    Message(ImMsgData),
    /// A user went on or off line (`IMUserStatNotify`).
    Status(UserStat),
    /// Members were added to or removed from one of our groups, or we were
    /// (`IMGroupChangeMemberNotify`).
    GroupChange(ImGroupChangeMemberNotify),
    /// This session was kicked (`IMKickUser`); the server closes it next.
    Kicked(ImKickUser),
}

impl ImClient {
    /// Sends a text message to user `to`; the ack arrives later (see
    /// [`wait_ack`](Self::wait_ack)).
    pub fn send_text(&mut self, to: u32, text: &str) -> io::Result<u16> {
        self.send_to(Peer::User(to), text)
    }

    /// Sends a text message to a user or a group (`MSG_TYPE_SINGLE_TEXT` or
    /// `MSG_TYPE_GROUP_TEXT`); the ack arrives later (see
    /// [`wait_ack`](Self::wait_ack)).
    pub fn send_to(&mut self, to: Peer, text: &str) -> io::Result<u16> {
        let msg = ImMsgData {
            from_user_id: self.user_id,
            to_session_id: to.id(),
            msg_id: 0,
            create_time: 0,
            msg_type: to.text_type() as i32,
            msg_data: text.as_bytes().to_vec(),
            attach_data: None,
        };
        self.send_pdu(sid::MSG, cid::msg::DATA, &msg)
    }

    /// Acknowledges the delivery of `m` with the session it came in (its
    /// group, or its sender), which takes it out of our mailbox.
    pub fn ack_delivery(&mut self, m: &ImMsgData) -> io::Result<()> {
        let session = Peer::of_message(m, self.user_id);
        let ack = ImMsgDataAck {
            user_id: self.user_id,
            session_id: session.id(),
            msg_id: m.msg_id,
            session_type: session.session_type() as i32,
        };
        self.send_pdu(sid::MSG, cid::msg::DATA_ACK, &ack)?;
        Ok(())
    }

    /// The newest `count` messages of the session with `peer`
    /// (`IMGetMsgListReq`), oldest first.
    pub fn history(
        &mut self,
        peer: Peer,
        count: u32,
        timeout: Duration,
    ) -> io::Result<Vec<MsgInfo>> {
        let req = ImGetMsgListReq {
            user_id: self.user_id,
            session_type: peer.session_type() as i32,
            session_id: peer.id(),
            msg_id_begin: 0,
            msg_cnt: count,
            attach_data: None,
        };
        let rsp: ImGetMsgListRsp = self.call(
            sid::MSG,
            cid::msg::LIST_REQUEST,
            &req,
            cid::msg::LIST_RESPONSE,
            timeout,
        )?;
        let mut list = rsp.msg_list;
        list.sort_by_key(|m| m.msg_id);
        Ok(list)
    }

    /// The groups we are a member of, with names and members: the list
    /// (`IMNormalGroupListReq`, 0x0401), then every group's info
    /// (`IMGroupInfoListReq`, 0x0403); ordered by id.
    pub fn groups(&mut self, timeout: Duration) -> io::Result<Vec<GroupInfo>> {
        let deadline = Instant::now() + timeout;
        let list: ImNormalGroupListRsp = self.call(
            sid::GROUP,
            cid::group::NORMAL_LIST_REQUEST,
            &ImNormalGroupListReq {
                user_id: self.user_id,
                attach_data: None,
            },
            cid::group::NORMAL_LIST_RESPONSE,
            timeout,
        )?;
        if list.group_version_list.is_empty() {
            return Ok(Vec::new());
        }
        // Version 0: the whole info of each, whatever version it is at.
        let req = ImGroupInfoListReq {
            user_id: self.user_id,
            group_version_list: list
                .group_version_list
                .iter()
                .map(|g| GroupVersionInfo {
                    group_id: g.group_id,
                    version: 0,
                })
                .collect(),
            attach_data: None,
        };
        let rsp: ImGroupInfoListRsp = self.call(
            sid::GROUP,
            cid::group::INFO_REQUEST,
            &req,
            cid::group::INFO_RESPONSE,
            deadline.saturating_duration_since(Instant::now()),
        )?;
        let mut groups = rsp.group_info_list;
        groups.sort_by_key(|g| g.group_id);
        Ok(groups)
    }

    /// Creates a temporary group named `name` of us and `members`
    /// (`IMGroupCreateReq`, 0x0405). The answer says whether it was created
    /// (`result_code` 0), its id and its members (ids that are not accounts
    /// are left out).
    pub fn create_group(
        &mut self,
        name: &str,
        members: &[u32],
        timeout: Duration,
    ) -> io::Result<ImGroupCreateRsp> {
        let req = ImGroupCreateReq {
            user_id: self.user_id,
            group_type: GroupType::Tmp as i32,
            group_name: name.into(),
            group_avatar: String::new(),
            member_id_list: members.to_vec(),
            attach_data: None,
        };
        self.call(
            sid::GROUP,
            cid::group::CREATE_REQUEST,
            &req,
            cid::group::CREATE_RESPONSE,
            timeout,
        )
    }

    /// Adds `members` to `group` or removes them (ourselves: leaving)
    /// (`IMGroupChangeMemberReq`, 0x0407). The answer says whether it was
    /// done (`result_code` 0) and the members after it; the other members
    /// get an [`Event::GroupChange`].
    pub fn change_group(
        &mut self,
        group: u32,
        change: GroupModifyType,
        members: &[u32],
        timeout: Duration,
    ) -> io::Result<ImGroupChangeMemberRsp> {
        let req = ImGroupChangeMemberReq {
            user_id: self.user_id,
            change_type: change as i32,
            group_id: group,
            member_id_list: members.to_vec(),
            attach_data: None,
        };
        self.call(
            sid::GROUP,
            cid::group::CHANGE_MEMBER_REQUEST,
            &req,
            cid::group::CHANGE_MEMBER_RESPONSE,
            timeout,
        )
    }

    /// Waits for the next event the server pushes: a message (acked on the
    /// way with its own session, see [`ack_delivery`](Self::ack_delivery)),
    /// a status change, a group change, a kick. Records acks of our own
    /// messages on the way. `Ok(None)` when `deadline` passes.
    pub fn next_event(&mut self, deadline: Instant) -> io::Result<Option<Event>> {
        loop {
            let pdu = match self.recv_pdu(deadline) {
                Ok(p) => p,
                Err(e) if e.kind() == io::ErrorKind::TimedOut => return Ok(None),
                Err(e) => return Err(e),
            };
            match (pdu.service_id(), pdu.command_id()) {
                (sid::MSG, cid::msg::DATA) => {
                    let msg: ImMsgData = decode(&pdu)?;
                    self.ack_delivery(&msg)?;
                    return Ok(Some(Event::Message(msg)));
                }
                (sid::MSG, cid::msg::DATA_ACK) => {
                    let ack: ImMsgDataAck = decode(&pdu)?;
                    self.acked.push(ack.msg_id);
                }
                (sid::BUDDY_LIST, cid::buddy::STATUS_NOTIFY) => {
                    let n: ImUserStatNotify = decode(&pdu)?;
                    return Ok(Some(Event::Status(n.user_stat)));
                }
                (sid::GROUP, cid::group::CHANGE_MEMBER_NOTIFY) => {
                    return Ok(Some(Event::GroupChange(decode(&pdu)?)));
                }
                (sid::LOGIN, cid::login::KICK_USER) => {
                    return Ok(Some(Event::Kicked(decode(&pdu)?)));
                }
                _ => {}
            }
        }
    }

    /// Waits for the next incoming message, one to one or in a group,
    /// acking it; records acks of our own messages on the way. `Ok(None)`
    /// when `deadline` passes; a kick is an error.
    pub fn next_message(&mut self, deadline: Instant) -> io::Result<Option<ImMsgData>> {
        loop {
            match self.next_event(deadline)? {
                None => return Ok(None),
                Some(Event::Message(m)) => return Ok(Some(m)),
                Some(Event::Status(_) | Event::GroupChange(_)) => {}
                Some(Event::Kicked(_)) => {
                    return Err(io::Error::new(
                        io::ErrorKind::ConnectionAborted,
                        "kicked: logged in elsewhere",
                    ))
                }
            }
        }
    }
}
