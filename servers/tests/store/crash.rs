//! Nothing acknowledged is lost: `kill -9` under load, a graceful stop
//! and an idle server with rows deferred.

use crate::common::*;
use pdu::proto::*;
use pdu::{cid, sid};
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
