//! Group requests as a TeamTalk client sends them, for the group tests
//! (`groups.rs`, `cluster.rs`): create, change members, shield, info, group
//! messages, and waiting for (or ruling out) a command.

use super::{ask, T};
use pdu::proto::*;
use pdu::{cid, sid, Pdu};
use servers::client::{ImClient, Peer};
use std::time::{Duration, Instant};

/// The next frame with command `command` (others are skipped).
pub fn next_cmd(c: &mut ImClient, command: u16) -> Pdu {
    let deadline = Instant::now() + T;
    loop {
        let p = c.recv_pdu(deadline).unwrap();
        if p.command_id() == command {
            return p;
        }
    }
}

/// The next membership notify (0x040b).
pub fn next_notify(c: &mut ImClient) -> ImGroupChangeMemberNotify {
    next_cmd(c, cid::group::CHANGE_MEMBER_NOTIFY)
        .decode_body()
        .unwrap()
}

/// Panics if a frame with `command` arrives within `quiet`.
pub fn no_cmd(c: &mut ImClient, command: u16, quiet: Duration) {
    let deadline = Instant::now() + quiet;
    loop {
        match c.recv_pdu(deadline) {
            Ok(p) => assert_ne!(p.command_id(), command, "unexpected {command:#06x}"),
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => return,
            Err(e) => panic!("connection lost: {e}"),
        }
    }
}

/// A temporary group of `c` and `members` (0x0405): its id.
pub fn create_tmp(c: &mut ImClient, name: &str, members: &[u32]) -> u32 {
    let rsp = c.create_group(name, members, T).unwrap();
    assert_eq!(rsp.result_code, 0, "group {name} created");
    rsp.group_id.unwrap()
}

/// Adds (`add`) or removes `members` (0x0407).
pub fn change(c: &mut ImClient, group: u32, add: bool, members: &[u32]) -> ImGroupChangeMemberRsp {
    let how = if add {
        GroupModifyType::Add
    } else {
        GroupModifyType::Del
    };
    c.change_group(group, how, members, T).unwrap()
}

/// Shields `group` (or not) for `c`'s user (0x0409): the result code.
pub fn shield(c: &mut ImClient, group: u32, on: bool) -> u32 {
    let rsp: ImGroupShieldRsp = ask(
        c,
        sid::GROUP,
        cid::group::SHIELD_GROUP_REQUEST,
        &ImGroupShieldReq {
            user_id: c.user_id,
            group_id: group,
            shield_status: u32::from(on),
            attach_data: Some(b"mine".to_vec()),
        },
        cid::group::SHIELD_GROUP_RESPONSE,
    );
    assert_eq!(rsp.attach_data.as_deref(), Some(&b"mine"[..]));
    assert_eq!(rsp.group_id, group);
    rsp.result_code
}

/// The group's info as `c` sees it (0x0403, from version 0), if a member.
pub fn info(c: &mut ImClient, group: u32) -> Option<GroupInfo> {
    let rsp: ImGroupInfoListRsp = ask(
        c,
        sid::GROUP,
        cid::group::INFO_REQUEST,
        &ImGroupInfoListReq {
            user_id: c.user_id,
            group_version_list: vec![GroupVersionInfo {
                group_id: group,
                version: 0,
            }],
            attach_data: None,
        },
        cid::group::INFO_RESPONSE,
    );
    rsp.group_info_list.into_iter().next()
}

/// Sends a group text: the request's sequence number.
pub fn send_group(c: &mut ImClient, group: u32, text: &str) -> u16 {
    c.send_to(Peer::Group(group), text).unwrap()
}

/// Sends a group text; waits for its ack (panics if none comes).
pub fn say(c: &mut ImClient, group: u32, text: &str) {
    send_group(c, group, text);
    let ack: ImMsgDataAck = next_cmd(c, cid::msg::DATA_ACK).decode_body().unwrap();
    assert_eq!(
        (ack.session_id, ack.session_type),
        (group, SessionType::Group as i32)
    );
}

/// The next message to `c`, acknowledged by the client with the session it
/// came in (a group delivery as a group's).
pub fn group_message(c: &mut ImClient) -> ImMsgData {
    c.next_message(Instant::now() + T)
        .unwrap()
        .expect("a message in time")
}

/// [`group_message`] as (group, sender, text).
pub fn heard(c: &mut ImClient) -> (u32, u32, Vec<u8>) {
    let m = group_message(c);
    (m.to_session_id, m.from_user_id, m.msg_data)
}
