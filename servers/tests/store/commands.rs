//! The commands answered from the store, on each store; two servers
//! writing one session through PostgreSQL; `msg_server migrate`.

use crate::common::*;
use pdu::proto::*;
use pdu::{cid, sid};
use std::time::{Duration, Instant};

fn read_notify(c: &mut servers::client::ImClient) -> ImMsgDataReadNotify {
    let deadline = Instant::now() + T;
    loop {
        let p = c.recv_pdu(deadline).unwrap();
        if p.command_id() == cid::msg::READ_NOTIFY {
            return p.decode_body().unwrap();
        }
    }
}

fn unread_of(c: &mut servers::client::ImClient) -> ImUnreadMsgCntRsp {
    ask(
        c,
        sid::MSG,
        cid::msg::UNREAD_CNT_REQUEST,
        &ImUnreadMsgCntReq {
            user_id: c.user_id,
            attach_data: Some(b"ctx".to_vec()),
        },
        cid::msg::UNREAD_CNT_RESPONSE,
    )
}

fn recent(c: &mut servers::client::ImClient) -> Vec<ContactSessionInfo> {
    let rsp: ImRecentContactSessionRsp = ask(
        c,
        sid::BUDDY_LIST,
        RECENT_CONTACT_SESSION_REQUEST,
        &ImRecentContactSessionReq {
            user_id: c.user_id,
            latest_update_time: 0,
            attach_data: None,
        },
        RECENT_CONTACT_SESSION_RESPONSE,
    );
    rsp.contact_session_list
}

fn commands_answered_from(store: &str, extra: &[&str]) {
    let users = users_file(&format!("commands-{store}"), 3);
    let mut args = vec!["--Store", store];
    args.extend(extra);
    let ms = msg_server(&users, None, &args);
    let addr = ms.addr("client");
    let (mut alice, mut bob) = (user(addr, 1), user(addr, 2));
    let mut bob_phone = servers::client::ImClient::connect(addr, T).unwrap();
    assert_eq!(
        bob_phone.login("u2", "pw2", true, T).unwrap().result_code,
        0
    );
    for text in ["a", "b", "c"] {
        alice.send_text(2, text).unwrap();
        alice.wait_ack(Instant::now() + T).unwrap();
    }
    assert_eq!(alice.acked, [1, 2, 3], "ids count per session from 1");
    for c in [&mut bob, &mut bob_phone] {
        let got: Vec<u32> = drain(c, Duration::from_millis(300))
            .iter()
            .map(|m| m.1)
            .collect();
        assert_eq!(got, [1, 2, 3]);
    }

    // Unread counts (0x0307).
    let u = unread_of(&mut bob);
    assert_eq!((u.user_id, u.total_cnt), (2, 3));
    assert_eq!(u.attach_data.as_deref(), Some(&b"ctx"[..]));
    assert_eq!(u.unreadinfo_list.len(), 1);
    let info = &u.unreadinfo_list[0];
    assert_eq!(
        (info.session_id, info.unread_cnt, info.latest_msg_id),
        (1, 3, 3)
    );
    assert_eq!(
        (
            info.latest_msg_data.as_slice(),
            info.latest_msg_from_user_id
        ),
        (&b"c"[..], 1)
    );
    assert_eq!(unread_of(&mut alice).total_cnt, 0, "own messages are read");

    // Latest id (0x030b), history (0x0309), by id (0x030d).
    let l: ImGetLatestMsgIdRsp = ask(
        &mut bob,
        sid::MSG,
        cid::msg::GET_LATEST_MSG_ID_REQ,
        &ImGetLatestMsgIdReq {
            user_id: 2,
            session_type: SessionType::Single as i32,
            session_id: 1,
            attach_data: None,
        },
        cid::msg::GET_LATEST_MSG_ID_RSP,
    );
    assert_eq!((l.session_id, l.latest_msg_id), (1, 3));
    let page: ImGetMsgListRsp = ask(
        &mut bob,
        sid::MSG,
        cid::msg::LIST_REQUEST,
        &ImGetMsgListReq {
            user_id: 2,
            session_type: SessionType::Single as i32,
            session_id: 1,
            msg_id_begin: 2,
            msg_cnt: 10,
            attach_data: None,
        },
        cid::msg::LIST_RESPONSE,
    );
    let ids: Vec<(u32, u32)> = page
        .msg_list
        .iter()
        .map(|m| (m.msg_id, m.from_session_id))
        .collect();
    assert_eq!(ids, [(2, 1), (1, 1)], "newest first from msg_id_begin");
    assert_eq!(history(&mut alice, 2).len(), 3, "both ends see the session");
    let by_id: ImGetMsgByIdRsp = ask(
        &mut bob,
        sid::MSG,
        cid::msg::GET_BY_MSG_ID_REQ,
        &ImGetMsgByIdReq {
            user_id: 2,
            session_type: SessionType::Single as i32,
            session_id: 1,
            msg_id_list: vec![3, 1, 99],
            attach_data: None,
        },
        cid::msg::GET_BY_MSG_ID_RES,
    );
    let got: Vec<(u32, &[u8])> = by_id
        .msg_list
        .iter()
        .map(|m| (m.msg_id, m.msg_data.as_slice()))
        .collect();
    assert_eq!(got, [(3, &b"c"[..]), (1, &b"a"[..])]);
    // Another user cannot read the session: carol's session 1 is her own.
    let mut carol = user(addr, 3);
    assert!(history(&mut carol, 1).is_empty());
    assert!(history(&mut carol, 2).is_empty());

    // Read ack (0x0303): the reader's other connection is told (0x0304),
    // and the unread count follows.
    bob.send_pdu(
        sid::MSG,
        cid::msg::READ_ACK,
        &ImMsgDataReadAck {
            user_id: 2,
            session_id: 1,
            msg_id: 2,
            session_type: SessionType::Single as i32,
        },
    )
    .unwrap();
    let n = read_notify(&mut bob_phone);
    assert_eq!((n.user_id, n.session_id, n.msg_id), (2, 1, 2));
    let u = unread_of(&mut bob);
    assert_eq!((u.total_cnt, u.unreadinfo_list[0].unread_cnt), (1, 1));

    // Recent sessions (0x0201) and removing one (0x0206).
    let r = recent(&mut bob);
    assert_eq!(r.len(), 1);
    assert_eq!((r[0].session_id, r[0].latest_msg_id), (1, 3));
    assert_eq!(
        r[0].session_status,
        SessionStatusType::SessionStatusOk as i32
    );
    let removed: ImRemoveSessionRsp = ask(
        &mut bob,
        sid::BUDDY_LIST,
        REMOVE_SESSION_REQ,
        &ImRemoveSessionReq {
            user_id: 2,
            session_type: SessionType::Single as i32,
            session_id: 1,
            attach_data: None,
        },
        REMOVE_SESSION_RES,
    );
    assert_eq!((removed.result_code, removed.session_id), (0, 1));
    assert_eq!(
        recent(&mut bob)[0].session_status,
        SessionStatusType::SessionStatusDelete as i32
    );
    alice.send_text(2, "back").unwrap();
    alice.wait_ack(Instant::now() + T).unwrap();
    let r = recent(&mut bob);
    assert_eq!(
        (r[0].session_status, r[0].latest_msg_id),
        (SessionStatusType::SessionStatusOk as i32, 4),
        "a new message brings the session back"
    );

    // Client time (0x0305).
    let t: ImClientTimeRsp = ask(
        &mut carol,
        sid::MSG,
        cid::msg::TIME_REQUEST,
        &ImClientTimeReq {},
        cid::msg::TIME_RESPONSE,
    );
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    assert!((i64::from(t.server_time) - now).abs() < 60);
}

#[test]
fn commands_are_answered_from_the_sqlite_store() {
    commands_answered_from("sqlite", &[]);
}

#[test]
fn commands_are_answered_from_the_postgres_store() {
    let pg = pg::TempPostgres::start();
    commands_answered_from("postgres", &["--PostgresUrl", &pg.url()]);
}

#[test]
fn commands_are_answered_from_the_memory_store() {
    commands_answered_from("memory", &[]);
}

/// Sends `n` messages to `to` pipelined (32 in flight); the ids acked, in
/// the order of the acks.
fn send_pipelined(c: &mut servers::client::ImClient, to: u32, n: usize) -> Vec<u32> {
    let mut sent = 0;
    let mut in_flight = 0;
    while sent < n || in_flight > 0 {
        while sent < n && in_flight < 32 {
            c.send_text(to, &format!("m{sent}")).unwrap();
            sent += 1;
            in_flight += 1;
        }
        c.wait_ack(Instant::now() + T).unwrap();
        in_flight -= 1;
    }
    std::mem::take(&mut c.acked)
}

#[test]
fn two_servers_writing_one_session_give_unique_increasing_ids() {
    let pg = pg::TempPostgres::start();
    let url = pg.url();
    let users = users_file("pg-two-writers", 2);
    let args = [
        "--Store",
        "postgres",
        "--PostgresUrl",
        &url,
        "--MsgRateLimit",
        "1000000",
    ];
    let (a, b) = (
        msg_server(&users, None, &args),
        msg_server(&users, None, &args),
    );
    let (addr_a, addr_b) = (a.addr("client"), b.addr("client"));
    const N: usize = 400;
    // u1 on server A and u2 on server B write session (1, 2) at once.
    let one = std::thread::spawn(move || send_pipelined(&mut user(addr_a, 1), 2, N));
    let two = std::thread::spawn(move || send_pipelined(&mut user(addr_b, 2), 1, N));
    let (ids1, ids2) = (one.join().unwrap(), two.join().unwrap());
    for ids in [&ids1, &ids2] {
        assert!(
            ids.windows(2).all(|w| w[0] < w[1]),
            "ids of one sender increase"
        );
    }
    // Both were writing at once: their ids interleave.
    assert!(
        ids1[0] < ids2[N - 1] && ids2[0] < ids1[N - 1],
        "writers overlapped"
    );
    let mut all: Vec<u32> = ids1.iter().chain(&ids2).copied().collect();
    all.sort_unstable();
    assert_eq!(
        all,
        (1..=2 * N as u32).collect::<Vec<_>>(),
        "unique, no gaps"
    );
    // Both writers' messages interleave in the history (both were writing
    // at once), in id order.
    let mut c = user(addr_a, 1);
    let h = history(&mut c, 2);
    assert_eq!(h.len(), 2 * N);
    let ids: Vec<u32> = h.iter().map(|m| m.0).collect();
    assert_eq!(ids, (1..=2 * N as u32).collect::<Vec<_>>());
}

fn migrate(args: &[&str]) -> String {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_msg_server"))
        .arg("migrate")
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn migrate_creates_then_keeps_the_schema_of_both_stores() {
    let db = db_path("migrate");
    let sqlite = ["--DbPath", db.to_str().unwrap()];
    assert!(migrate(&sqlite).contains("schema version 0 -> 3"));
    assert!(migrate(&sqlite).contains("schema version 3 -> 3"));
    let pg = pg::TempPostgres::start();
    let url = pg.url();
    let postgres = ["--Store", "postgres", "--PostgresUrl", &url];
    assert!(migrate(&postgres).contains("schema version 0 -> 2"));
    assert!(migrate(&postgres).contains("schema version 2 -> 2"));
    // A database newer than the program is refused, not touched.
    let mut c = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    c.batch_execute("UPDATE schema_version SET version = 99")
        .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_msg_server"))
        .arg("migrate")
        .args(postgres)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("newer"));
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", db.display()));
    }
}
