//! A database failing under a running msg_server: nothing is acknowledged
//! while it is unavailable, and a retry brings it back without a restart.

use crate::common::*;
use servers::client::ImClient;
use std::time::{Duration, Instant};

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
    let (id, after) = send_until_acked(&mut alice, 2, "after");
    assert_eq!(id, 2, "the refused message used no id");
    let got: Vec<Vec<u8>> = drain(&mut bob, Duration::from_millis(500))
        .into_iter()
        .map(|m| m.2)
        .collect();
    assert_eq!(got, [b"before".to_vec(), after.into_bytes()]);
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

/// How long the store's writes wait for another process's lock here
/// (`DbBusyTimeoutMs`).
const BUSY_TIMEOUT_MS: u64 = 300;

/// msg_server on a fresh SQLite file; its users 1 and 2 logged in, and 1's
/// first message to 2 acknowledged (not yet read by 2).
fn chatting_on_sqlite(tag: &str) -> (Proc, std::path::PathBuf, ImClient, ImClient) {
    let db = db_path(tag);
    let users = users_file(tag, 2);
    let busy = BUSY_TIMEOUT_MS.to_string();
    let args = ["--DbPath", db.to_str().unwrap(), "--DbBusyTimeoutMs", &busy];
    let mut ms = msg_server(&users, None, &args);
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
    // the writer waits its busy timeout, fails, and the store is
    // unavailable - not stored, so not acknowledged. The lock is held well
    // past the timeout but released before SQLite's own default (5 s): a
    // writer still waiting for it would commit the message then.
    let lock = rusqlite::Connection::open(&db).unwrap();
    lock.execute_batch("BEGIN IMMEDIATE").unwrap();
    alice.send_text(2, "while locked").unwrap();
    let held = Duration::from_millis(BUSY_TIMEOUT_MS * 6);
    assert!(alice.wait_ack(Instant::now() + held).is_err());
    lock.execute_batch("ROLLBACK").unwrap();
    assert!(
        alice
            .wait_ack(Instant::now() + Duration::from_millis(1000))
            .is_err(),
        "the message sent while locked was refused, not committed late"
    );
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
