//! The message store end to end, over the real msg_server binary: nothing
//! acknowledged is lost across `kill -9`, and the commands answered from the
//! store (unread counts, history, latest id, messages by id, read acks with
//! read notify, recent sessions, removing one, client time), and a database
//! that fails under a running server (locked by another writer, its file
//! removed; PostgreSQL stopped) refuses messages and comes back without a
//! restart.

mod common;

use common::*;
use pdu::proto::*;
use pdu::{cid, sid};
use servers::client::ImClient;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const SENDERS: std::ops::RangeInclusive<u32> = 1..=6;
const ONLINE: std::ops::RangeInclusive<u32> = 7..=9;
const OFFLINE: std::ops::RangeInclusive<u32> = 10..=12;

/// (from, to, msg_id, text) of every message acknowledged to `from`, sent
/// pipelined (64 in flight) until the connection dies.
fn send_until_killed(addr: std::net::SocketAddr, from: u32) -> Vec<(u32, u32, u32, Vec<u8>)> {
    let mut c = user(addr, from);
    let mut in_flight: HashMap<u16, (u32, String)> = HashMap::new();
    let mut acked = Vec::new();
    for n in 0.. {
        while in_flight.len() < 64 {
            let to = 7 + (n + in_flight.len() as u32) % 6;
            let text = format!("m{from}-{n}-{}", in_flight.len());
            match c.send_text(to, &text) {
                Ok(seq) => in_flight.insert(seq, (to, text)),
                Err(_) => return acked,
            };
        }
        match c.recv_pdu(Instant::now() + T) {
            Ok(p) if p.command_id() == cid::msg::DATA_ACK => {
                let ack: ImMsgDataAck = p.decode_body().unwrap();
                let (to, text) = in_flight
                    .remove(&p.seq_num())
                    .expect("ack of a sent message");
                assert_eq!(ack.session_id, to);
                assert!(ack.msg_id > 0);
                acked.push((from, to, ack.msg_id, text.into_bytes()));
            }
            Ok(_) => {}
            Err(_) => return acked,
        }
    }
    acked
}

#[test]
fn kill_9_under_load_loses_nothing_acknowledged_sqlite() {
    let db = db_path("restart");
    kill_9_loses_nothing_acknowledged(
        "sqlite",
        &["--DbPath", db.to_str().unwrap()],
        Some(db.clone()),
        1500,
    );
}

#[test]
fn kill_9_under_load_loses_nothing_acknowledged_postgres() {
    let pg = pg::TempPostgres::start();
    let url = pg.url();
    kill_9_loses_nothing_acknowledged(
        "postgres",
        &["--Store", "postgres", "--PostgresUrl", &url],
        None,
        3000, // a batch costs round trips to another process
    );
}

/// The same scenario over the store `store_args` select.
fn kill_9_loses_nothing_acknowledged(
    tag: &str,
    store_args: &[&str],
    db: Option<std::path::PathBuf>,
    run_ms: u64,
) {
    let users = users_file(&format!("restart-{tag}"), 12);
    let mut extra = vec!["--MsgRateLimit", "1000000"];
    extra.extend(store_args);
    let ms = msg_server(&users, None, &extra);
    let addr = ms.addr("client");
    let stop = Arc::new(AtomicBool::new(false));
    let receivers: Vec<_> = ONLINE
        .map(|r| {
            let stop = Arc::clone(&stop);
            let mut c = user(addr, r);
            std::thread::spawn(move || {
                let mut got = HashSet::new();
                loop {
                    match c.next_message(Instant::now() + Duration::from_millis(200)) {
                        Ok(Some(m)) => {
                            got.insert((m.from_user_id, r, m.msg_id, m.msg_data));
                        }
                        Ok(None) if !stop.load(Ordering::Relaxed) => {}
                        _ => return got,
                    }
                }
            })
        })
        .collect();
    let senders: Vec<_> = SENDERS
        .map(|s| std::thread::spawn(move || send_until_killed(addr, s)))
        .collect();
    std::thread::sleep(Duration::from_millis(run_ms));
    drop(ms); // SIGKILL, mid-stream
    let acked: Vec<_> = senders
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect();
    stop.store(true, Ordering::Relaxed);
    let mut delivered: HashSet<(u32, u32, u32, Vec<u8>)> = receivers
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect();
    eprintln!("acked {} delivered {}", acked.len(), delivered.len());
    assert!(
        acked.len() >= 200,
        "only {} messages acknowledged before the kill",
        acked.len()
    );

    let mut ms = msg_server(&users, None, &extra);
    ms.db = db; // removed with the process
    let addr = ms.addr("client");
    // Every acknowledged message is in its session's history, under its id;
    // ids in a session run 1, 2, 3... without gaps.
    let mut latest: BTreeMap<(u32, u32), u32> = BTreeMap::new();
    for s in SENDERS {
        let mut c = user(addr, s);
        for r in ONLINE.chain(OFFLINE) {
            let h = history(&mut c, r);
            let ids: Vec<u32> = h.iter().map(|m| m.0).collect();
            assert_eq!(ids, (1..=h.len() as u32).collect::<Vec<_>>(), "{s}->{r}");
            let stored: HashMap<u32, &Vec<u8>> = h.iter().map(|m| (m.0, &m.2)).collect();
            for (_, _, id, text) in acked.iter().filter(|m| m.0 == s && m.1 == r) {
                assert_eq!(
                    stored.get(id),
                    Some(&text),
                    "acked {s}->{r} #{id} in history"
                );
            }
            latest.insert((s, r), h.len() as u32);
        }
    }
    // Each receiver gets, at its next login, whatever it had not acked.
    for r in ONLINE.chain(OFFLINE) {
        let mut c = user(addr, r);
        for (from, id, text) in drain(&mut c, Duration::from_millis(1500)) {
            delivered.insert((from, r, id, text));
        }
        for m in acked.iter().filter(|m| m.1 == r) {
            assert!(delivered.contains(m), "acked message {m:?} never delivered");
        }
        // Nothing was read: every stored message of a session is unread.
        let rsp: ImUnreadMsgCntRsp = ask(
            &mut c,
            sid::MSG,
            cid::msg::UNREAD_CNT_REQUEST,
            &ImUnreadMsgCntReq {
                user_id: r,
                attach_data: None,
            },
            cid::msg::UNREAD_CNT_RESPONSE,
        );
        let unread: HashMap<u32, u32> = rsp
            .unreadinfo_list
            .iter()
            .map(|u| (u.session_id, u.unread_cnt))
            .collect();
        for s in SENDERS {
            let n = latest[&(s, r)];
            assert_eq!(unread.get(&s).copied().unwrap_or(0), n, "unread {s}->{r}");
        }
        assert_eq!(rsp.total_cnt, unread.values().sum::<u32>());
    }
}

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

#[test]
fn postgres_going_away_refuses_messages_and_its_return_needs_no_restart() {
    let pg = pg::TempPostgres::start();
    let url = pg.url();
    let users = users_file("pg-outage", 2);
    let ms = msg_server(
        &users,
        None,
        &["--Store", "postgres", "--PostgresUrl", &url],
    );
    let addr = ms.addr("client");
    let (mut alice, mut bob) = (user(addr, 1), user(addr, 2));
    alice.send_text(2, "before").unwrap();
    alice.wait_ack(Instant::now() + T).unwrap();
    pg.pause();
    // Not stored, so not acknowledged.
    alice.send_text(2, "while down").unwrap();
    assert!(alice
        .wait_ack(Instant::now() + Duration::from_millis(1500))
        .is_err());
    pg.resume();
    // The writer reconnects at its next batch.
    let mut n = 0;
    let id = loop {
        assert!(n < 50, "messages never acknowledged again");
        alice.send_text(2, &format!("after-{n}")).unwrap();
        if let Ok(id) = alice.wait_ack(Instant::now() + Duration::from_millis(500)) {
            break id;
        }
        n += 1;
    };
    assert_eq!(id, 2, "the refused message used no id");
    let got: Vec<Vec<u8>> = drain(&mut bob, Duration::from_millis(500))
        .into_iter()
        .map(|m| m.2)
        .collect();
    assert_eq!(got, [b"before".to_vec(), format!("after-{n}").into_bytes()]);
}

/// Sends `text-N` from `c` to `to` until one is acknowledged (N counting
/// the refused ones); its id and text.
fn send_until_acked(c: &mut ImClient, to: u32, text: &str) -> (u32, String) {
    for n in 0..60 {
        let text = format!("{text}-{n}");
        c.send_text(to, &text).unwrap();
        if let Ok(id) = c.wait_ack(Instant::now() + Duration::from_millis(500)) {
            return (id, text);
        }
    }
    panic!("messages never acknowledged again");
}

/// msg_server on a fresh SQLite file; its users 1 and 2 logged in, and 1's
/// first message to 2 acknowledged (not yet read by 2).
fn chatting_on_sqlite(tag: &str) -> (Proc, std::path::PathBuf, ImClient, ImClient) {
    let db = db_path(tag);
    let users = users_file(tag, 2);
    let mut ms = msg_server(&users, None, &["--DbPath", db.to_str().unwrap()]);
    ms.db = Some(db.clone());
    let addr = ms.addr("client");
    let (mut alice, bob) = (user(addr, 1), user(addr, 2));
    alice.send_text(2, "before").unwrap();
    assert_eq!(alice.wait_ack(Instant::now() + T).unwrap(), 1);
    (ms, db, alice, bob)
}

#[test]
fn a_locked_sqlite_database_refuses_messages_and_its_release_needs_no_restart() {
    let (_ms, db, mut alice, mut bob) = chatting_on_sqlite("locked");
    // Another process (here: this test) holds the database's write lock:
    // the writer waits its busy timeout (5 s), fails, and the store is
    // unavailable - not stored, so not acknowledged.
    let lock = rusqlite::Connection::open(&db).unwrap();
    lock.execute_batch("BEGIN IMMEDIATE").unwrap();
    alice.send_text(2, "while locked").unwrap();
    assert!(alice
        .wait_ack(Instant::now() + Duration::from_millis(7000))
        .is_err());
    lock.execute_batch("ROLLBACK").unwrap();
    // A retry commits: acknowledged again, with the next id (the refused
    // messages took none), delivered, and nothing refused was stored.
    let (id, after) = send_until_acked(&mut alice, 2, "after");
    assert_eq!(id, 2, "the refused messages used no id");
    let got: Vec<Vec<u8>> = drain(&mut bob, Duration::from_millis(500))
        .into_iter()
        .map(|m| m.2)
        .collect();
    assert_eq!(got, [b"before".to_vec(), after.clone().into_bytes()]);
    let texts: Vec<Vec<u8>> = history(&mut alice, 2).into_iter().map(|m| m.2).collect();
    assert_eq!(texts, [b"before".to_vec(), after.into_bytes()]);
}

#[test]
fn a_removed_sqlite_file_is_not_written_blind_and_a_new_one_takes_over() {
    let (_ms, db, mut alice, mut bob) = chatting_on_sqlite("removed");
    assert_eq!(drain(&mut bob, Duration::from_millis(300)).len(), 1);
    // SQLite in WAL mode would go on writing to the removed file, and
    // whatever it acknowledged would be gone at the next start.
    for suffix in ["", "-wal", "-shm"] {
        std::fs::remove_file(format!("{}{suffix}", db.display())).unwrap();
    }
    alice.send_text(2, "into the void").unwrap();
    assert!(alice
        .wait_ack(Instant::now() + Duration::from_millis(1000))
        .is_err());
    // The retry opens a new database at the configured path.
    let (id, after) = send_until_acked(&mut alice, 2, "after");
    assert_eq!(id, 1, "a new database: ids start again");
    assert!(db.exists());
    let got: Vec<Vec<u8>> = drain(&mut bob, Duration::from_millis(500))
        .into_iter()
        .map(|m| m.2)
        .collect();
    assert_eq!(got, [after.clone().into_bytes()]);
    let conn = rusqlite::Connection::open(&db).unwrap();
    let stored: Vec<u8> = conn
        .query_row("SELECT data FROM messages", [], |r| r.get(0))
        .unwrap();
    assert_eq!(stored, after.into_bytes());
}

#[test]
fn a_graceful_stop_writes_the_deferred_rows_and_delivers_nothing_twice() {
    // Mailbox and session rows are written StoreDeferMs after their
    // message (an hour here): only a graceful stop writes them.
    let db = db_path("graceful");
    let users = users_file("graceful", 3);
    let args = [
        "--DbPath",
        db.to_str().unwrap(),
        "--StoreDeferMs",
        "3600000",
    ];
    let mut ms = msg_server(&users, None, &args);
    let addr = ms.addr("client");
    let (mut alice, mut bob) = (user(addr, 1), user(addr, 2));
    alice.send_text(2, "read at once").unwrap();
    alice.send_text(3, "for later").unwrap();
    for _ in 0..2 {
        alice.wait_ack(Instant::now() + T).unwrap();
    }
    assert_eq!(drain(&mut bob, Duration::from_millis(300)).len(), 1);
    let rows = |sql: &str| -> i64 {
        let conn = rusqlite::Connection::open(&db).unwrap();
        conn.query_row(sql, [], |r| r.get(0)).unwrap()
    };
    assert_eq!(rows("SELECT count(*) FROM inbox"), 0, "rows still deferred");

    let stopped = std::process::Command::new("kill")
        .args(["-TERM", &ms.pid().to_string()])
        .status()
        .unwrap();
    assert!(stopped.success());
    eventually("msg_server stopped", T, || !ms.alive());
    // Carol's mailbox row and the four session rows are written; Bob's
    // acked delivery never got a row.
    assert_eq!(rows("SELECT count(*) FROM inbox WHERE user = 3"), 1);
    assert_eq!(rows("SELECT count(*) FROM inbox"), 1);
    assert_eq!(rows("SELECT count(*) FROM user_sessions"), 4);

    let mut ms = msg_server(&users, None, &args);
    ms.db = Some(db);
    let addr = ms.addr("client");
    let mut bob = user(addr, 2);
    assert_eq!(drain(&mut bob, Duration::from_millis(500)), []);
    let mut carol = user(addr, 3);
    let got = drain(&mut carol, Duration::from_millis(500));
    assert_eq!(got, [(1, 1, b"for later".to_vec())]);
}

#[test]
fn deferred_rows_are_written_on_time_also_when_nothing_else_comes() {
    let db = db_path("idle");
    let users = users_file("idle", 3);
    let args = ["--DbPath", db.to_str().unwrap(), "--StoreDeferMs", "100"];
    let mut ms = msg_server(&users, None, &args);
    ms.db = Some(db.clone());
    let mut alice = user(ms.addr("client"), 1);
    alice.send_text(3, "for later").unwrap();
    alice.wait_ack(Instant::now() + T).unwrap();
    // No more traffic: the writer wakes by itself when the row is due, so
    // a crash after that cannot deliver anything acked long ago twice.
    eventually("the mailbox row written", T, || {
        let conn = rusqlite::Connection::open(&db).unwrap();
        let n: i64 = conn
            .query_row("SELECT count(*) FROM inbox WHERE user = 3", [], |r| {
                r.get(0)
            })
            .unwrap();
        n == 1
    });
}
