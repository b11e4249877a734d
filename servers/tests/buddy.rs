//! End to end over the real msg_server binary: what a TeamTalk client asks
//! right after login - client time, user info, all users, departments, user
//! status - and the status notifications between users of a department.
//! Unknown commands after login are ignored, never closing the connection.

mod common;

use common::{Proc, T};
use pdu::proto::{
    ImAllUserReq, ImAllUserRsp, ImClientTimeReq, ImClientTimeRsp, ImDepartmentReq, ImDepartmentRsp,
    ImHeartBeat, ImUsersInfoReq, ImUsersInfoRsp, ImUsersStatReq, ImUsersStatRsp, UserStat,
    UserStatType,
};
use pdu::{cid, sid};
use servers::client::{Event, ImClient};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// The demo accounts: alice (1) and bob (2) in Engineering (1), carol (3) in
/// Sales (2).
const DEMO_USERS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/conf/users.txt");

const ONLINE: i32 = UserStatType::UserStatusOnline as i32;
const OFFLINE: i32 = UserStatType::UserStatusOffline as i32;

fn demo_server() -> Proc {
    common::msg_server(std::path::Path::new(DEMO_USERS), None, &[])
}

fn logged_in(addr: SocketAddr, user: &str, password: &str) -> ImClient {
    let mut c = ImClient::connect(addr, T).unwrap();
    let res = c.login(user, password, false, T).unwrap();
    assert_eq!(res.result_code, 0, "login of {user}");
    c
}

fn stat(c: &mut ImClient, ids: &[u32]) -> Vec<UserStat> {
    let req = ImUsersStatReq {
        user_id: c.user_id,
        user_id_list: ids.to_vec(),
        attach_data: None,
    };
    let rsp: ImUsersStatRsp = c
        .call(
            sid::BUDDY_LIST,
            cid::buddy::USERS_STATUS_REQUEST,
            &req,
            cid::buddy::USERS_STATUS_RESPONSE,
            T,
        )
        .unwrap();
    rsp.user_stat_list
}

/// Status notifications arriving within `within`.
fn notifications(c: &mut ImClient, within: Duration) -> Vec<UserStat> {
    let deadline = Instant::now() + within;
    let mut got = Vec::new();
    while let Some(e) = c.next_event(deadline).unwrap() {
        if let Event::Status(s) = e {
            got.push(s);
        }
    }
    got
}

fn notification(c: &mut ImClient) -> UserStat {
    match c.next_event(Instant::now() + T).unwrap() {
        Some(Event::Status(s)) => s,
        other => panic!("expected a status notification, got {other:?}"),
    }
}

#[test]
fn client_time_is_the_servers_clock() {
    let msg = demo_server();
    let mut alice = logged_in(msg.addr("client"), "alice", "alice123");
    let rsp: ImClientTimeRsp = alice
        .call(
            sid::MSG,
            cid::msg::TIME_REQUEST,
            &ImClientTimeReq {},
            cid::msg::TIME_RESPONSE,
            T,
        )
        .unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    assert!(
        (i64::from(rsp.server_time) - now).abs() <= 5,
        "{rsp:?} vs {now}"
    );
}

#[test]
fn user_info_all_users_and_departments_come_from_the_users_file() {
    let msg = demo_server();
    let mut alice = logged_in(msg.addr("client"), "alice", "alice123");

    let req = ImUsersInfoReq {
        user_id: 1,
        user_id_list: vec![3, 99, 1],
        attach_data: Some(b"echo".to_vec()),
    };
    let rsp: ImUsersInfoRsp = alice
        .call(
            sid::BUDDY_LIST,
            cid::buddy::USER_INFO_REQUEST,
            &req,
            cid::buddy::USER_INFO_RESPONSE,
            T,
        )
        .unwrap();
    let got: Vec<(u32, &str, u32)> = rsp
        .user_info_list
        .iter()
        .map(|u| (u.user_id, u.user_nick_name.as_str(), u.department_id))
        .collect();
    assert_eq!(
        got,
        [(3, "carol", 2), (1, "alice", 1)],
        "unknown 99 left out"
    );
    assert_eq!(rsp.attach_data.as_deref(), Some(&b"echo"[..]));

    let all = |c: &mut ImClient, since: u32| -> ImAllUserRsp {
        let req = ImAllUserReq {
            user_id: 1,
            latest_update_time: since,
            attach_data: None,
        };
        c.call(
            sid::BUDDY_LIST,
            cid::buddy::ALL_USER_REQUEST,
            &req,
            cid::buddy::ALL_USER_RESPONSE,
            T,
        )
        .unwrap()
    };
    let first = all(&mut alice, 0);
    let names: Vec<&str> = first
        .user_list
        .iter()
        .map(|u| u.user_nick_name.as_str())
        .collect();
    assert_eq!(names, ["alice", "bob", "carol"]);
    assert!(first.latest_update_time > 0);
    // A client that has this version gets no list again.
    let again = all(&mut alice, first.latest_update_time);
    assert!(again.user_list.is_empty());
    assert_eq!(again.latest_update_time, first.latest_update_time);
    assert_eq!(alice.all_users(T).unwrap().len(), 3);

    let req = ImDepartmentReq {
        user_id: 1,
        latest_update_time: 0,
        attach_data: None,
    };
    let depts: ImDepartmentRsp = alice
        .call(
            sid::BUDDY_LIST,
            cid::buddy::DEPARTMENT_REQUEST,
            &req,
            cid::buddy::DEPARTMENT_RESPONSE,
            T,
        )
        .unwrap();
    let got: Vec<(u32, &str, u32)> = depts
        .dept_list
        .iter()
        .map(|d| (d.dept_id, d.dept_name.as_str(), d.parent_dept_id))
        .collect();
    assert_eq!(got, [(1, "Engineering", 0), (2, "Sales", 0)]);
}

#[test]
fn user_status_follows_logins_and_logouts() {
    let msg = demo_server();
    let addr = msg.addr("client");
    let mut alice = logged_in(addr, "alice", "alice123");
    let pairs =
        |v: Vec<UserStat>| -> Vec<(u32, i32)> { v.iter().map(|s| (s.user_id, s.status)).collect() };
    assert_eq!(
        pairs(stat(&mut alice, &[1, 2, 3, 42])),
        [(1, ONLINE), (2, OFFLINE), (3, OFFLINE)]
    );
    let carol = logged_in(addr, "carol", "carol123");
    assert_eq!(pairs(stat(&mut alice, &[3])), [(3, ONLINE)]);
    drop(carol);
    common::eventually("carol offline", T, || {
        pairs(stat(&mut alice, &[3])) == [(3, OFFLINE)]
    });
}

#[test]
fn status_notifications_go_to_online_users_of_the_same_department() {
    let msg = demo_server();
    let addr = msg.addr("client");
    let mut alice = logged_in(addr, "alice", "alice123");
    let mut carol = logged_in(addr, "carol", "carol123");
    // carol is in Sales: alice (Engineering) hears nothing of her.
    let bob = logged_in(addr, "bob", "bob123");
    let s = notification(&mut alice);
    assert_eq!((s.user_id, s.status), (2, ONLINE));
    // A second connection of bob (mobile) changes nothing.
    let mut bob_phone = ImClient::connect(addr, T).unwrap();
    assert_eq!(
        bob_phone
            .login("bob", "bob123", true, T)
            .unwrap()
            .result_code,
        0
    );
    drop(bob);
    assert!(
        notifications(&mut alice, Duration::from_millis(500)).is_empty(),
        "bob still has a connection"
    );
    // The last one going: alice hears bob went off line.
    bob_phone
        .send_pdu(sid::LOGIN, cid::login::REQ_LOGINOUT, &ImHeartBeat {})
        .unwrap();
    drop(bob_phone);
    let s = notification(&mut alice);
    assert_eq!((s.user_id, s.status), (2, OFFLINE));
    // carol, in another department, heard nothing of either.
    assert!(notifications(&mut carol, Duration::from_millis(300)).is_empty());
}

#[test]
fn notifications_per_change_are_bounded_by_status_notify_max() {
    // Five users of one department; at most two are told.
    let path = common::users_file_in_dept("buddy-bound", 5, 7);
    let msg = common::msg_server(&path, None, &["--StatusNotifyMax", "2"]);
    let addr = msg.addr("client");
    let mut early: Vec<ImClient> = (1..=4).map(|id| common::user(addr, id)).collect();
    // Drain what the logins of each other caused.
    for c in early.iter_mut() {
        notifications(c, Duration::from_millis(300));
    }
    let _u5 = common::user(addr, 5);
    // The two lowest ids are told (waiting as long as it takes), the
    // others are not (after the same notification reached the first two).
    let told: Vec<bool> = early
        .iter_mut()
        .enumerate()
        .map(|(i, c)| {
            let within = if i < 2 { T } else { Duration::from_millis(500) };
            let deadline = Instant::now() + within;
            while let Some(e) = c.next_event(deadline).unwrap() {
                if matches!(e, Event::Status(s) if s.user_id == 5 && s.status == ONLINE) {
                    return true;
                }
            }
            false
        })
        .collect();
    assert_eq!(
        told,
        [true, true, false, false],
        "the two lowest ids are told"
    );
}

#[test]
fn unknown_commands_after_login_are_ignored_not_fatal() {
    let msg = demo_server();
    let addr = msg.addr("client");
    let mut alice = logged_in(addr, "alice", "alice123");
    let mut bob = logged_in(addr, "bob", "bob123");
    // A buddy command not supported here, a command of an unknown service,
    // and a known command with an undecodable body.
    alice
        .send_pdu(
            sid::BUDDY_LIST,
            cid::buddy::CHANGE_AVATAR_REQUEST,
            &ImHeartBeat {},
        )
        .unwrap();
    alice.send_pdu(0x0042, 0x4242, &ImHeartBeat {}).unwrap();
    alice
        .send_pdu(
            sid::BUDDY_LIST,
            cid::buddy::USERS_STATUS_REQUEST,
            &ImHeartBeat {},
        )
        .unwrap();
    // Still logged in and served.
    assert_eq!(stat(&mut alice, &[2])[0].status, ONLINE);
    common::still_chatting(&mut alice, &mut bob, "still here");
}
