//! Groups and user status across msg_servers (one shared PostgreSQL and a
//! nats-server, started by the tests): a temporary group created or changed
//! on one server is announced to its members and routes group messages on
//! every server; concurrent changes on two servers never overwrite each
//! other; a shield set on one server is seen on the other; a user online
//! on one server is online when asked on another, also after a NATS
//! outage.

mod common;

use common::cluster::*;
use common::groups::*;
use common::nats::Nats;
use common::*;
use pdu::proto::*;
use pdu::{cid, sid};
use servers::client::{ImClient, Peer};
use std::time::{Duration, Instant};

fn phone(addr: std::net::SocketAddr, id: u32) -> ImClient {
    let mut c = ImClient::connect(addr, T).unwrap();
    let res = c
        .login(&format!("u{id}"), &format!("pw{id}"), true, T)
        .unwrap();
    assert_eq!(res.result_code, 0);
    c
}

fn assert_notify(n: &ImGroupChangeMemberNotify, by: u32, add: bool, cur: &[u32], chg: &[u32]) {
    let kind = if add {
        GroupModifyType::Add
    } else {
        GroupModifyType::Del
    };
    assert_eq!((n.user_id, n.change_type), (by, kind as i32), "{n:?}");
    assert_eq!(n.cur_user_id_list, cur, "{n:?}");
    assert_eq!(n.chg_user_id_list, chg, "{n:?}");
}

#[test]
fn groups_created_and_changed_on_one_server_work_on_every_server() {
    let c = cluster("cg-groups", 2, 4);
    let (a, b) = (c.addr(0), c.addr(1));
    let (mut u1, mut u4) = (user(a, 1), user(a, 4));
    let (mut u2, mut u3) = (user(b, 2), user(b, 3));
    linked(&mut u1, &mut u2);

    // Created on A: the members on B are told by B, which read it back.
    let g = create_tmp(&mut u1, "across", &[2, 3]);
    for m in [&mut u2, &mut u3] {
        let n = next_notify(m);
        assert_eq!(n.group_id, g);
        assert_notify(&n, 1, true, &[1, 2, 3], &[2, 3]);
    }
    // B routes the group's messages, to members on both servers.
    say(&mut u2, g, "from b");
    assert_eq!(heard(&mut u1), (g, 2, b"from b".to_vec()));
    assert_eq!(heard(&mut u3), (g, 2, b"from b".to_vec()));

    // Changed on B: A tells its members and routes the new member's words.
    let r = change(&mut u3, g, true, &[4]);
    assert_eq!((r.result_code, r.cur_user_id_list), (0, vec![1, 2, 3, 4]));
    for m in [&mut u1, &mut u4] {
        assert_notify(&next_notify(m), 3, true, &[1, 2, 3, 4], &[4]);
    }
    say(&mut u4, g, "from a");
    for m in [&mut u1, &mut u2, &mut u3] {
        assert_eq!(heard(m), (g, 4, b"from a".to_vec()));
    }

    // A shield set on A is stored, and B reports it.
    assert_eq!(shield(&mut u1, g, true), 0);
    let mut u1_on_b = phone(b, 1);
    eventually("B reports u1's shield", T, || {
        info(&mut u1_on_b, g).unwrap().shield_status == 1
    });
    assert_eq!(info(&mut u2, g).unwrap().shield_status, 0, "u1's own");

    // Removed on A: the removed member on B is told, and B refuses its
    // group messages (no ack before the probe's).
    let r = change(&mut u1, g, false, &[3]);
    assert_eq!((r.result_code, r.cur_user_id_list), (0, vec![1, 2, 4]));
    assert_notify(&next_notify(&mut u3), 1, false, &[1, 2, 4], &[3]);
    let text = ImMsgData {
        from_user_id: 3,
        to_session_id: g,
        msg_id: 0,
        create_time: 0,
        msg_type: MsgType::GroupText as i32,
        msg_data: b"still here?".to_vec(),
        attach_data: None,
    };
    u3.send_pdu(sid::MSG, cid::msg::DATA, &text).unwrap();
    u3.send_text(2, "probe").unwrap();
    let ack: ImMsgDataAck = next_cmd(&mut u3, cid::msg::DATA_ACK).decode_body().unwrap();
    assert_eq!(
        ack.session_type,
        SessionType::Single as i32,
        "group text refused"
    );
}

#[test]
fn concurrent_changes_on_two_servers_are_never_lost() {
    let c = cluster("cg-race", 2, 20);
    let (mut u1, mut u2) = (user(c.addr(0), 1), user(c.addr(1), 2));
    linked(&mut u1, &mut u2);
    let g = create_tmp(&mut u1, "race", &[2]);
    eventually("B knows the group", T, || info(&mut u2, g).is_some());
    // u1 on A adds 3..=10 and u2 on B adds 11..=18, one at a time, at once;
    // a change refused (the other server changed the group first) is tried
    // again, as a client would.
    let add_all = |c: &mut ImClient, ids: std::ops::RangeInclusive<u32>| {
        let deadline = Instant::now() + T;
        let mut refused = 0;
        for id in ids {
            while change(c, g, true, &[id]).result_code != 0 {
                refused += 1;
                assert!(Instant::now() < deadline, "{id} never added");
                std::thread::sleep(Duration::from_millis(5));
            }
        }
        refused
    };
    let (r1, r2) = std::thread::scope(|s| {
        let t1 = s.spawn(|| add_all(&mut u1, 3..=10));
        let t2 = s.spawn(|| add_all(&mut u2, 11..=18));
        (t1.join().unwrap(), t2.join().unwrap())
    });
    eprintln!("refused and retried: {r1} on A, {r2} on B");
    let everyone: Vec<u32> = (1..=18).collect();
    eventually("both servers hold every change", T, || {
        info(&mut u1, g).unwrap().group_member_list == everyone
            && info(&mut u2, g).unwrap().group_member_list == everyone
    });
    // And so does the store: a server started now reads the same.
    assert_eq!(
        info(&mut user(c.addr(1), 18), g).unwrap().group_member_list,
        everyone
    );
}

#[test]
fn a_user_online_on_one_server_is_online_when_asked_on_another() {
    let mut c = cluster("cg-status", 2, 3);
    let (a, b) = (c.addr(0), c.addr(1));
    let u1 = user(a, 1);
    let mut u2 = user(b, 2);
    eventually("u1 (on A) online as told by B", T, || {
        online(&mut u2, &[1, 2, 3]) == [true, true, false]
    });
    drop(u1);
    eventually("u1 off line as told by B", T, || {
        online(&mut u2, &[1]) == [false]
    });
    let _u1 = user(a, 1);
    eventually("u1 back", T, || online(&mut u2, &[1]) == [true]);

    // NATS down: B still answers at once, from what it last heard (until
    // the entries expire); a login on A meanwhile is not known on B...
    let nats_addr = c.nats.addr;
    c.nats = Nats::start_on(free_addr()); // the old one is killed
    let _u3 = user(a, 3);
    let asked = Instant::now();
    assert_eq!(online(&mut u2, &[1, 2, 3]), [true, true, false]);
    assert!(asked.elapsed() < Duration::from_secs(2), "answered at once");
    // ... until NATS is back: A republishes who is online on it.
    c.nats = Nats::start_on(nats_addr);
    eventually("u3 online as told by B after the outage", T, || {
        online(&mut u2, &[3]) == [true]
    });
}

fn free_addr() -> std::net::SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

#[test]
fn a_group_created_while_nats_is_down_is_read_from_the_store_on_another_server() {
    let mut c = cluster("cg-unheard", 2, 3);
    let (a, b) = (c.addr(0), c.addr(1));
    let (mut u1, mut u2) = (user(a, 1), user(b, 2));
    linked(&mut u1, &mut u2);
    c.nats = Nats::start_on(free_addr()); // the old one is killed: B hears nothing

    // Created on A: B was not told, but the group is in the shared store.
    let g = create_tmp(&mut u1, "unheard", &[2, 3]);
    say(&mut u2, g, "sent on b");
    let h = u1.history(Peer::Group(g), 50, T).unwrap();
    assert!(h.iter().any(|m| m.msg_data == b"sent on b"), "{h:?}");

    // A group that exists nowhere is still refused after the lookup.
    send_group(&mut u2, 999_999, "nobody");
    no_cmd(&mut u2, cid::msg::DATA_ACK, Duration::from_millis(500));
}

#[test]
fn members_changed_while_nats_is_down_are_told_when_it_is_back() {
    let mut c = cluster("cg-missed", 2, 4);
    let (a, b) = (c.addr(0), c.addr(1));
    let mut u1 = user(a, 1);
    let (mut u2, mut u3) = (user(b, 2), user(b, 3));
    linked(&mut u1, &mut u2);
    let g = create_tmp(&mut u1, "missed", &[2]);
    assert_notify(&next_notify(&mut u2), 1, true, &[1, 2], &[2]);

    // NATS down: A's changes are committed, B hears nothing.
    let nats_addr = c.nats.addr;
    c.nats = Nats::start_on(free_addr()); // the old one is killed
    let r = change(&mut u1, g, true, &[3]);
    assert_eq!((r.result_code, r.cur_user_id_list), (0, vec![1, 2, 3]));
    let r = change(&mut u1, g, false, &[2]);
    assert_eq!((r.result_code, r.cur_user_id_list), (0, vec![1, 3]));
    no_cmd(
        &mut u3,
        cid::group::CHANGE_MEMBER_NOTIFY,
        Duration::from_millis(500),
    );

    // NATS back: B reads the group back and tells its members here what
    // changed since its copy (who changed it is not stored: user 0).
    c.nats = Nats::start_on(nats_addr);
    assert_notify(&next_notify(&mut u3), 0, true, &[1, 3], &[3]);
    assert_notify(&next_notify(&mut u3), 0, false, &[1, 3], &[2]);
    assert_notify(&next_notify(&mut u2), 0, false, &[1, 3], &[2]);
    // And routes the group as it now is, once A is linked again too.
    linked(&mut u1, &mut u3);
    say(&mut u3, g, "after the outage");
    assert_eq!(heard(&mut u1), (g, 3, b"after the outage".to_vec()));
}
