//! Groups end to end over the real msg_server: a normal group from the
//! groups file, group messages fanned out to online members and kept for
//! offline ones, temporary groups, membership changes with notifications,
//! who may change what, and all of it across a restart.

mod common;

use common::groups::{change, group_message, info as group_info, next_cmd, send_group};
use common::*;
use pdu::proto::*;
use pdu::{cid, sid};
use servers::client::{ImClient, Peer};
use std::time::Instant;

/// The user's groups as (id, version), through the client (0x0401, 0x0403).
fn my_groups(c: &mut ImClient) -> Vec<(u32, u32)> {
    let groups = c.groups(T).unwrap();
    groups.iter().map(|g| (g.group_id, g.version)).collect()
}

#[test]
fn groups_from_file_and_clients_route_and_persist() {
    let users = users_file("groups", 5);
    let groups = users.with_extension("groups");
    std::fs::write(&groups, "# id name creator members\n100 team 1 2,3\n").unwrap();
    let db = db_path("groups");
    let extra = [
        "--GroupsFile",
        groups.to_str().unwrap(),
        "--DbPath",
        db.to_str().unwrap(),
    ];
    let ms = msg_server(&users, None, &extra);
    let addr = ms.addr("client");
    let (mut u1, mut u2, mut u4) = (user(addr, 1), user(addr, 2), user(addr, 4));

    // The normal group, as its members see it (0x0401, 0x0403).
    assert_eq!(my_groups(&mut u2), [(100, 1)]);
    assert!(my_groups(&mut u4).is_empty());
    let info = group_info(&mut u2, 100).unwrap();
    assert_eq!(info.group_member_list, [1, 2, 3]);
    assert_eq!(
        (
            info.group_type,
            info.group_creator_id,
            info.group_name.as_str()
        ),
        (GroupType::Normal as i32, 1, "team")
    );
    assert!(group_info(&mut u4, 100).is_none(), "not a member");

    // A group message: acked to the sender as a group message, to the online
    // member at once, to the offline one (u3) at its login.
    send_group(&mut u1, 100, "hello team");
    let ack: ImMsgDataAck = next_cmd(&mut u1, cid::msg::DATA_ACK).decode_body().unwrap();
    assert_eq!(
        (ack.session_id, ack.msg_id, ack.session_type),
        (100, 1, SessionType::Group as i32)
    );
    let m = group_message(&mut u2);
    assert_eq!((m.from_user_id, m.to_session_id, m.msg_id), (1, 100, 1));
    // Not a member, no such group: refused (no ack before the probe's).
    send_group(&mut u4, 100, "let me in");
    send_group(&mut u4, 999, "anyone?");
    u4.send_text(5, "probe").unwrap();
    let ack: ImMsgDataAck = next_cmd(&mut u4, cid::msg::DATA_ACK).decode_body().unwrap();
    assert_eq!(
        (ack.session_id, ack.session_type),
        (5, SessionType::Single as i32)
    );
    assert_eq!(history_of_group(&mut u2, 100), [1]);
    assert!(history_of_group(&mut u4, 100).is_empty());
    let mut u3 = user(addr, 3);
    let m = group_message(&mut u3);
    assert_eq!(
        (m.from_user_id, m.to_session_id, m.msg_data),
        (1, 100, b"hello team".to_vec())
    );

    // A temporary group (0x0405): unknown ids are left out.
    let created = u4.create_group("lunch", &[5, 999], T).unwrap();
    assert_eq!(created.result_code, 0);
    assert_eq!(created.user_id_list, [4, 5]);
    let tmp = created.group_id.unwrap();
    assert_ne!(tmp, 100);
    // What the client does not do: ask for a normal group.
    let normal: ImGroupCreateRsp = ask(
        &mut u4,
        sid::GROUP,
        cid::group::CREATE_REQUEST,
        &ImGroupCreateReq {
            user_id: 4,
            group_type: GroupType::Normal as i32,
            group_name: "mine".into(),
            group_avatar: String::new(),
            member_id_list: vec![],
            attach_data: None,
        },
        cid::group::CREATE_RESPONSE,
    );
    assert_eq!(
        normal.result_code, 1,
        "clients create temporary groups only"
    );

    // Membership changes (0x0407) and their notify (0x040b).
    let mut u5 = user(addr, 5);
    let r = change(&mut u4, tmp, true, &[1]);
    assert_eq!(
        (
            r.result_code,
            r.cur_user_id_list.clone(),
            r.chg_user_id_list.clone()
        ),
        (0, vec![1, 4, 5], vec![1])
    );
    for c in [&mut u1, &mut u5] {
        let n: ImGroupChangeMemberNotify = next_cmd(c, cid::group::CHANGE_MEMBER_NOTIFY)
            .decode_body()
            .unwrap();
        assert_eq!(
            (n.user_id, n.group_id, n.chg_user_id_list),
            (4, tmp, vec![1])
        );
        assert_eq!(n.cur_user_id_list, [1, 4, 5]);
    }
    assert_eq!(
        change(&mut u5, tmp, false, &[4]).result_code,
        1,
        "only the creator removes others"
    );
    let r = change(&mut u5, tmp, false, &[5]);
    assert_eq!(
        (r.result_code, r.cur_user_id_list),
        (0, vec![1, 4]),
        "anyone may leave"
    );
    assert_eq!(
        change(&mut u2, 100, true, &[4]).result_code,
        1,
        "normal groups: creator only"
    );
    send_group(&mut u1, tmp, "in the lunch group");
    let m = group_message(&mut u4);
    assert_eq!((m.from_user_id, m.to_session_id), (1, tmp));

    // Everything survives a restart.
    drop((u1, u2, u3, u4, u5));
    drop(ms);
    let mut ms = msg_server(&users, None, &extra);
    ms.db = Some(db.clone());
    let addr = ms.addr("client");
    let mut u1 = user(addr, 1);
    let mut list = my_groups(&mut u1);
    list.sort_unstable();
    assert_eq!(list, [(100, 1), (tmp, 3)]);
    assert_eq!(group_info(&mut u1, tmp).unwrap().group_member_list, [1, 4]);
    assert_eq!(history_of_group(&mut u1, 100), [1]);
    let _ = std::fs::remove_file(&groups);
}

/// The ids in a group's history, oldest first.
fn history_of_group(c: &mut ImClient, group: u32) -> Vec<u32> {
    let list = c.history(Peer::Group(group), 50, T).unwrap();
    list.iter().map(|m| m.msg_id).collect()
}

/// What im_client's library acks leaves the mailbox: a group delivery acked
/// through `next_message` (live, and fed from the mailbox at login) is not
/// fed again at the next login. Acked as a single chat, as the client once
/// did, it stayed and came first again at every login.
#[test]
fn group_deliveries_acked_by_the_client_leave_the_mailbox() {
    let users = users_file("groups-ack", 3);
    let groups = users.with_extension("ackgroups");
    std::fs::write(&groups, "100 team 1 2,3\n").unwrap();
    let ms = msg_server(&users, None, &["--GroupsFile", groups.to_str().unwrap()]);
    let addr = ms.addr("client");
    let (mut u1, mut u2) = (user(addr, 1), user(addr, 2));
    assert_eq!(said(&mut u1, "one"), 1);
    assert_eq!(group_message(&mut u2).msg_data, b"one", "live");
    leave(u2);
    assert_eq!(said(&mut u1, "two"), 2);
    // At the next login only what is new; u3, offline so far, gets both from
    // its mailbox.
    next_login_gets(addr, 2, &["two"]);
    next_login_gets(addr, 3, &["one", "two"]);
    assert_eq!(said(&mut u1, "three"), 3);
    next_login_gets(addr, 2, &["three"]);
    next_login_gets(addr, 3, &["three"]);
    let _ = std::fs::remove_file(&groups);
}

/// `c` says `text` in group 100; the id the server acked it with.
fn said(c: &mut ImClient, text: &str) -> u32 {
    send_group(c, 100, text);
    c.wait_ack(Instant::now() + T).unwrap()
}

/// Leaves once the server has read everything `c` sent (it answers a later
/// request only after the acks before it).
fn leave(mut c: ImClient) {
    let names: Vec<String> = c
        .groups(T)
        .unwrap()
        .into_iter()
        .map(|g| g.group_name)
        .collect();
    assert_eq!(names, ["team"]);
}

/// User `id` logs in, gets `texts` of group 100 first and in order (acked
/// by the client), and leaves.
fn next_login_gets(addr: std::net::SocketAddr, id: u32, texts: &[&str]) {
    let mut c = user(addr, id);
    for text in texts {
        let m = group_message(&mut c);
        assert_eq!(
            (m.to_session_id, String::from_utf8_lossy(&m.msg_data)),
            (100, (*text).into()),
            "user {id}"
        );
    }
    leave(c);
}

#[test]
fn a_groups_file_with_a_stranger_stops_msg_server_at_startup() {
    let users = users_file("groups-bad", 2);
    let groups = users.with_extension("badgroups");
    std::fs::write(&groups, "100 team 1 2,7\n").unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_msg_server"))
        .args([
            "--ListenPort",
            "0",
            "--UsersFile",
            users.to_str().unwrap(),
            "--GroupsFile",
            groups.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("user 7"), "{err}");
    let _ = std::fs::remove_file(&groups);
}

/// A new temporary group is announced (0x040b) to its members' connections
/// but the creating one, and to no one else; a member's shield (0x0409) is
/// reported in its own group info only, changes nothing in delivery, goes
/// when the member leaves, and (`restart`: on a store that keeps it)
/// survives a restart.
fn announce_and_shield(extra: &[&str], restart: bool) {
    use common::groups::*;
    use std::time::Duration;
    let users = users_file("groups-shield", 4);
    let mut ms = msg_server(&users, None, extra);
    let addr = ms.addr("client");
    let (mut u1, mut u2, mut u4) = (user(addr, 1), user(addr, 2), user(addr, 4));
    let mut u1_phone = ImClient::connect(addr, common::T).unwrap();
    assert_eq!(
        u1_phone
            .login("u1", "pw1", true, common::T)
            .unwrap()
            .result_code,
        0
    );
    let g = create_tmp(&mut u1, "shielded", &[2, 3]);
    for c in [&mut u2, &mut u1_phone] {
        let n = next_notify(c);
        assert_eq!(
            (n.user_id, n.change_type, n.group_id),
            (1, GroupModifyType::Add as i32, g)
        );
        assert_eq!(n.cur_user_id_list, [1, 2, 3]);
        assert_eq!(n.chg_user_id_list, [2, 3]);
    }
    let quiet = Duration::from_millis(300);
    no_cmd(&mut u1, cid::group::CHANGE_MEMBER_NOTIFY, quiet);
    no_cmd(&mut u4, cid::group::CHANGE_MEMBER_NOTIFY, quiet);

    assert_eq!(shield(&mut u2, g, true), 0);
    assert_eq!(shield(&mut u4, g, true), 1, "not a member");
    assert_eq!(shield(&mut u2, 999, true), 1, "no such group");
    assert_eq!(info(&mut u2, g).unwrap().shield_status, 1);
    assert_eq!(info(&mut u1, g).unwrap().shield_status, 0, "u2's own");
    // Still delivered (TeamTalk's clients mute it themselves).
    say(&mut u1, g, "muted but here");
    assert_eq!(heard(&mut u2), (g, 1, b"muted but here".to_vec()));
    assert_eq!(shield(&mut u2, g, false), 0);
    assert_eq!(info(&mut u2, g).unwrap().shield_status, 0);
    assert_eq!(shield(&mut u2, g, true), 0);
    assert_eq!(shield(&mut u2, g, true), 0, "twice is once");
    // Leaving drops it: back in the group, u2 is not shielded.
    assert_eq!(shield(&mut u1, g, true), 0);
    assert_eq!(change(&mut u1, g, false, &[1]).result_code, 0);
    assert_eq!(change(&mut u2, g, true, &[1]).result_code, 0);
    assert_eq!(info(&mut u1, g).unwrap().shield_status, 0);
    if restart {
        drop((u1, u2, u4, u1_phone));
        let db = ms.db.take();
        drop(ms);
        let mut again = extra.to_vec();
        let db_arg = db.as_ref().map(|d| d.to_str().unwrap().to_string());
        if let Some(d) = &db_arg {
            again.extend(["--DbPath", d]);
        }
        ms = msg_server(&users, None, &again);
        ms.db = db;
        let addr = ms.addr("client");
        let (mut u1, mut u2) = (user(addr, 1), user(addr, 2));
        assert_eq!(info(&mut u2, g).unwrap().shield_status, 1, "kept");
        assert_eq!(info(&mut u1, g).unwrap().shield_status, 0);
    }
}

#[test]
fn a_new_group_is_announced_and_shields_persist_in_sqlite() {
    announce_and_shield(&[], true);
}

#[test]
fn a_new_group_is_announced_and_shields_work_in_memory() {
    announce_and_shield(&["--Store", "memory"], false);
}
