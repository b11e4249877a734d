//! The writer on a real file, without a thread or a loop: what is written
//! when, and what a crash (the writer dropped without [`Backend::close`])
//! leaves for the next start.

use super::{open_backend, SqliteConfig};
use crate::msg::store::{Backend, Bounds, GroupCommit, NewMessage, Op, Outcome, SessionKey};
use rusqlite::Connection;
use std::path::PathBuf;
use std::time::Duration;

/// A database file in a directory of its own (removed with its `-wal` and
/// `-shm` when dropped).
struct TempDb {
    path: PathBuf,
    _dir: testkit::TempDir,
}

impl TempDb {
    fn new(tag: &str) -> TempDb {
        let dir = testkit::TempDir::new(&format!("im-sqlite-{tag}")).unwrap();
        TempDb {
            path: dir.join("msg.db"),
            _dir: dir,
        }
    }

    fn config(&self, defer: Duration) -> SqliteConfig {
        SqliteConfig {
            path: self.path.clone(),
            sync_full: false,
            busy_timeout: super::DEFAULT_BUSY_TIMEOUT,
            commit: GroupCommit {
                batch_max: 100,
                interval: Duration::ZERO,
            },
            defer,
            bounds: Bounds {
                user_msgs: 1000,
                user_bytes: 1 << 20,
                total_bytes: 1 << 24,
            },
        }
    }

    fn count(&self, sql: &str) -> i64 {
        Connection::open(&self.path)
            .unwrap()
            .query_row(sql, [], |r| r.get(0))
            .unwrap()
    }
}

fn message(from: u32, to: u32, text: &str) -> Op {
    Op::Append(NewMessage {
        session: SessionKey::single(from, to),
        from,
        receivers: std::sync::Arc::from([to]),
        msg_type: 1,
        data: text.as_bytes().to_vec(),
        create_time: 1_700_000_000,
    })
}

/// Runs one batch of one operation.
fn run(b: &mut Box<dyn Backend>, op: Op) -> Outcome {
    b.run_batch(vec![op]).unwrap().pop().unwrap()
}

/// Stores a message: its mailbox position.
fn store(b: &mut Box<dyn Backend>, from: u32, to: u32, text: &str) -> u64 {
    match run(b, message(from, to, text)) {
        Outcome::Stored(_, mailbox) => mailbox[0].1,
        other => panic!("not stored: {other:?}"),
    }
}

/// `user`'s mailbox: (position, text).
fn mailbox(b: &mut Box<dyn Backend>, user: u32) -> Vec<(u64, String)> {
    let op = Op::Undelivered {
        user,
        after: 0,
        limit: 100,
    };
    match run(b, op) {
        Outcome::Backlog { items, .. } => items
            .into_iter()
            .map(|(p, m)| (p, String::from_utf8(m.data).unwrap()))
            .collect(),
        other => panic!("{other:?}"),
    }
}

fn sessions(b: &mut Box<dyn Backend>, user: u32) -> Vec<(SessionKey, u32)> {
    let op = Op::Sessions {
        user,
        since: 0,
        unread_only: false,
    };
    match run(b, op) {
        Outcome::Sessions(list) => list.into_iter().map(|s| (s.session, s.unread)).collect(),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_delivery_acked_within_the_defer_time_never_writes_a_mailbox_row() {
    let db = TempDb::new("acked");
    let mut b = open_backend(db.config(Duration::from_secs(3600))).unwrap();
    let pos = store(&mut b, 1, 2, "hello");
    store(&mut b, 1, 3, "kept");
    // Committed: the message row only.
    assert_eq!(db.count("SELECT count(*) FROM messages"), 1 + 1);
    assert_eq!(db.count("SELECT count(*) FROM inbox"), 0);
    assert_eq!(db.count("SELECT count(*) FROM user_sessions"), 0);
    assert_eq!(mailbox(&mut b, 2), [(pos, "hello".to_string())]);
    run(&mut b, Op::Delivered { user: 2, pos });
    assert_eq!(mailbox(&mut b, 2), []);
    // A graceful stop writes what is owed: user 3's mailbox row and every
    // session row, not user 2's acked one.
    b.close().unwrap();
    drop(b);
    assert_eq!(db.count("SELECT count(*) FROM inbox"), 1);
    assert_eq!(db.count("SELECT count(*) FROM inbox WHERE user = 3"), 1);
    assert_eq!(db.count("SELECT count(*) FROM user_sessions"), 4);
    assert_eq!(
        db.count("SELECT value FROM meta WHERE key = 'written_upto'"),
        2
    );
    let mut b = open_backend(db.config(Duration::from_secs(3600))).unwrap();
    assert_eq!(mailbox(&mut b, 2), []);
    assert_eq!(mailbox(&mut b, 3).len(), 1);
}

#[test]
fn rows_not_acked_within_the_defer_time_are_written_then_deleted_at_the_ack() {
    let db = TempDb::new("due");
    let mut b = open_backend(db.config(Duration::ZERO)).unwrap();
    let pos = store(&mut b, 1, 2, "late");
    assert_eq!(db.count("SELECT count(*) FROM inbox"), 1);
    assert_eq!(db.count("SELECT count(*) FROM user_sessions"), 2);
    run(&mut b, Op::Delivered { user: 2, pos });
    assert_eq!(db.count("SELECT count(*) FROM inbox"), 0);
}

#[test]
fn session_rows_are_written_before_anything_reads_or_updates_them() {
    let db = TempDb::new("sessions");
    let mut b = open_backend(db.config(Duration::from_secs(3600))).unwrap();
    store(&mut b, 1, 2, "a");
    store(&mut b, 1, 2, "b");
    let pair = SessionKey::single(1, 2);
    let read = Op::ReadAck {
        user: 2,
        session: pair,
        msg_id: 1,
    };
    run(&mut b, read);
    assert_eq!(sessions(&mut b, 2), [(pair, 1)]);
    assert_eq!(sessions(&mut b, 1), [(pair, 0)]);
    assert_eq!(
        db.count("SELECT count(*) FROM inbox"),
        0,
        "mailbox rows still wait"
    );
}

#[test]
fn after_a_crash_messages_whose_rows_were_owed_are_undelivered_again() {
    let db = TempDb::new("crash");
    let mut b = open_backend(db.config(Duration::from_secs(3600))).unwrap();
    let acked = store(&mut b, 1, 2, "acked before the crash");
    store(&mut b, 3, 2, "not acked");
    run(
        &mut b,
        Op::Delivered {
            user: 2,
            pos: acked,
        },
    );
    drop(b); // no close: what kill -9 leaves
    assert_eq!(db.count("SELECT count(*) FROM inbox"), 0);
    let totals = super::mailbox_totals(&db.path).unwrap();
    assert_eq!(totals.0, 2, "what a restart will deliver");

    let mut b = open_backend(db.config(Duration::from_secs(3600))).unwrap();
    // Both are delivered again (the ack was not written), with their rows.
    let texts: Vec<String> = mailbox(&mut b, 2).into_iter().map(|m| m.1).collect();
    assert_eq!(texts, ["acked before the crash", "not acked"]);
    assert_eq!(db.count("SELECT count(*) FROM inbox"), 2);
    assert_eq!(db.count("SELECT count(*) FROM user_sessions"), 4);
    let mut listed: Vec<SessionKey> = sessions(&mut b, 2).into_iter().map(|s| s.0).collect();
    listed.sort();
    assert_eq!(listed, [SessionKey::single(1, 2), SessionKey::single(2, 3)]);
    // Nothing is recovered twice.
    drop(b);
    let mut b = open_backend(db.config(Duration::from_secs(3600))).unwrap();
    assert_eq!(mailbox(&mut b, 2).len(), 2);
    assert_eq!(db.count("SELECT count(*) FROM inbox"), 2);
}

#[test]
fn a_group_message_owed_at_a_crash_goes_to_every_member_but_its_sender() {
    let db = TempDb::new("group");
    let mut b = open_backend(db.config(Duration::from_secs(3600))).unwrap();
    let group = crate::msg::store::GroupRecord {
        id: 0,
        name: "g".into(),
        avatar: String::new(),
        creator: 1,
        kind: 2,
        version: 1,
        members: vec![1, 2, 3],
        shielded: vec![],
    };
    let Outcome::GroupCreated(g) = run(&mut b, Op::CreateGroup(group)) else {
        panic!("not created")
    };
    let op = Op::Append(NewMessage {
        session: SessionKey::Group(g),
        from: 1,
        receivers: std::sync::Arc::from([2, 3]),
        msg_type: 17,
        data: b"hi all".to_vec(),
        create_time: 1_700_000_000,
    });
    assert!(matches!(run(&mut b, op), Outcome::Stored(..)));
    drop(b);
    let mut b = open_backend(db.config(Duration::from_secs(3600))).unwrap();
    for member in [2, 3] {
        assert_eq!(mailbox(&mut b, member).len(), 1, "member {member}");
    }
    assert_eq!(mailbox(&mut b, 1), []);
    assert_eq!(sessions(&mut b, 1).len(), 1);
}

#[test]
fn ids_go_on_from_the_file_after_a_restart() {
    let db = TempDb::new("ids");
    let mut b = open_backend(db.config(Duration::ZERO)).unwrap();
    store(&mut b, 1, 2, "one");
    store(&mut b, 2, 1, "two");
    drop(b);
    let mut b = open_backend(db.config(Duration::ZERO)).unwrap();
    let Outcome::Stored(m, _) = run(&mut b, message(1, 2, "three")) else {
        panic!("not stored")
    };
    assert_eq!(m.msg_id, 3);
    let Outcome::Stored(m, _) = run(&mut b, message(1, 3, "new session")) else {
        panic!("not stored")
    };
    assert_eq!(m.msg_id, 1);
    let latest = Op::Latest {
        session: SessionKey::single(1, 2),
    };
    assert!(matches!(run(&mut b, latest), Outcome::LatestId(3)));
}

#[test]
fn an_idle_writer_is_woken_to_write_rows_when_they_are_due() {
    let db = TempDb::new("idle");
    let defer = Duration::from_millis(50);
    let mut b = open_backend(db.config(defer)).unwrap();
    assert_eq!(b.wake_at(), None, "nothing held back");
    let before = std::time::Instant::now();
    store(&mut b, 1, 2, "offline");
    let at = b.wake_at().expect("rows held back");
    assert!(at >= before + defer && at <= std::time::Instant::now() + defer);
    // What the writer thread does at `at` with no operation queued.
    std::thread::sleep(at.saturating_duration_since(std::time::Instant::now()));
    assert!(b.run_batch(Vec::new()).unwrap().is_empty());
    assert_eq!(db.count("SELECT count(*) FROM inbox"), 1);
    assert_eq!(b.wake_at(), None);
}

#[test]
fn history_and_unread_counts_see_messages_whose_index_rows_are_still_owed() {
    let db = TempDb::new("index");
    let mut b = open_backend(db.config(Duration::from_secs(3600))).unwrap();
    store(&mut b, 1, 2, "one");
    store(&mut b, 2, 1, "two");
    assert_eq!(db.count("SELECT count(*) FROM message_index"), 0, "owed");
    let pair = SessionKey::single(1, 2);
    let history = Op::History {
        session: pair,
        until: u32::MAX,
        count: 10,
    };
    let Outcome::Messages(list) = run(&mut b, history) else {
        panic!("no history")
    };
    let ids: Vec<u32> = list.iter().map(|m| m.msg_id).collect();
    assert_eq!(ids, [2, 1]);
    store(&mut b, 1, 2, "three");
    let by_id = Op::ById {
        session: pair,
        ids: vec![3],
    };
    let Outcome::Messages(list) = run(&mut b, by_id) else {
        panic!("not found")
    };
    assert_eq!(list[0].data, b"three");
    store(&mut b, 1, 2, "four");
    assert_eq!(sessions(&mut b, 2), [(pair, 3)], "unread: one, three, four");
    assert_eq!(db.count("SELECT count(*) FROM message_index"), 4);
}

#[test]
fn an_old_database_gains_the_new_tables_and_its_index_moves_over() {
    let db = TempDb::new("v1");
    // Version 1: no `group_shields`, no `meta`, and the session index on
    // `messages` itself (here with an empty `message_index` beside it,
    // which the old index must fill).
    let v1 = super::SCHEMA
        .split("CREATE TABLE IF NOT EXISTS group_shields")
        .next()
        .unwrap()
        .to_string()
        + "CREATE UNIQUE INDEX messages_by_session ON messages (sess, msg_id);
           PRAGMA user_version = 1;";
    let old = Connection::open(&db.path).unwrap();
    old.execute_batch(&v1).unwrap();
    // Its messages had every row written when they were stored.
    old.execute(
        "INSERT INTO messages (id, sess, msg_id, sender, receiver, msg_type, data, created)
         VALUES (7, 8589934595, 1, 2, 3, 1, x'68', 0)",
        [],
    )
    .unwrap();
    drop(old);
    assert_eq!(super::migrate(&db.path).unwrap(), (1, 3));
    assert_eq!(db.count("SELECT count(*) FROM group_shields"), 0);
    assert_eq!(
        db.count("SELECT value FROM meta WHERE key = 'written_upto'"),
        7
    );
    assert_eq!(
        db.count("SELECT id FROM message_index WHERE sess = 8589934595"),
        7
    );
    assert_eq!(
        db.count("SELECT count(*) FROM sqlite_master WHERE name = 'messages_by_session'"),
        0
    );
}

/// Stores `n` messages in one batch, from users 1..=50 to users 51..=100
/// (2500 sessions): their (receiver, mailbox position).
fn store_many(b: &mut Box<dyn Backend>, n: u32) -> Vec<(u32, u64)> {
    let ops = (0..n)
        .map(|i| message(1 + i % 50, 51 + (i / 50) % 50, "m"))
        .collect();
    b.run_batch(ops)
        .unwrap()
        .into_iter()
        .map(|o| match o {
            Outcome::Stored(_, mailbox) => mailbox[0],
            other => panic!("not stored: {other:?}"),
        })
        .collect()
}

const WRITTEN_UPTO: &str = "SELECT value FROM meta WHERE key = 'written_upto'";

/// Longer than storing 3000 messages takes on a loaded machine, so that
/// the pass begins after the sleep, with all of them.
const PASS_DEFER: Duration = Duration::from_millis(300);

/// A writer that stored 3000 messages ([`store_many`]) and wrote the
/// first step of their pass; their mailbox positions.
fn first_step_of_a_pass(db: &TempDb) -> (Box<dyn Backend>, Vec<(u32, u64)>) {
    let mut b = open_backend(db.config(PASS_DEFER)).unwrap();
    let stored = store_many(&mut b, 3000);
    std::thread::sleep(PASS_DEFER);
    assert!(b.run_batch(Vec::new()).unwrap().is_empty());
    (b, stored)
}

/// The acks of `deliveries`.
fn acks<'a>(deliveries: impl Iterator<Item = &'a (u32, u64)>) -> Vec<Op> {
    deliveries
        .map(|&(user, pos)| Op::Delivered { user, pos })
        .collect()
}

#[test]
fn a_pass_is_written_over_several_commits_and_moves_the_watermark_at_its_end() {
    let db = TempDb::new("pass");
    let (mut b, stored) = first_step_of_a_pass(&db);
    // The first step: some of the index rows, no mailbox row, the
    // watermark where it was.
    let indexed = db.count("SELECT count(*) FROM message_index");
    assert!(indexed > 0 && indexed < 3000, "{indexed} index rows");
    assert_eq!(db.count("SELECT count(*) FROM inbox"), 0);
    assert_eq!(db.count(WRITTEN_UPTO), 0);
    assert!(b
        .wake_at()
        .is_some_and(|at| at <= std::time::Instant::now()));
    // Half the deliveries are acked while the pass runs: they get no row.
    b.run_batch(acks(stored.iter().step_by(2))).unwrap();
    let mut commits = 2;
    while db.count(WRITTEN_UPTO) == 0 {
        assert!(commits < 40, "the pass is not done after {commits} commits");
        b.run_batch(Vec::new()).unwrap();
        commits += 1;
    }
    assert!(commits > 2, "{commits} commits");
    assert_eq!(db.count(WRITTEN_UPTO), 3000);
    assert_eq!(db.count("SELECT count(*) FROM message_index"), 3000);
    assert_eq!(db.count("SELECT count(*) FROM user_sessions"), 2 * 2500);
    assert_eq!(db.count("SELECT count(*) FROM inbox"), 1500);
    assert_eq!(b.wake_at(), None, "nothing owed");
}

#[test]
fn a_read_during_a_pass_writes_the_rest_of_what_it_reads_first() {
    let db = TempDb::new("pass-read");
    let (mut b, _) = first_step_of_a_pass(&db);
    assert!(db.count("SELECT count(*) FROM message_index") < 3000);
    // User 51 has a message from each of users 1..=50.
    let listed = sessions(&mut b, 51);
    assert_eq!(listed.len(), 50);
    assert!(listed.iter().all(|&(_, unread)| unread > 0));
    assert_eq!(db.count("SELECT count(*) FROM message_index"), 3000);
    assert_eq!(db.count("SELECT count(*) FROM user_sessions"), 2 * 2500);
    // Nothing else was left in the pass: its mailbox rows and the
    // watermark came in the same commit.
    assert_eq!(db.count(WRITTEN_UPTO), 3000);
    assert_eq!(db.count("SELECT count(*) FROM inbox"), 3000);
}

#[test]
fn a_crash_during_a_pass_leaves_every_message_of_it_undelivered_once() {
    let db = TempDb::new("pass-crash");
    let (mut b, stored) = first_step_of_a_pass(&db);
    b.run_batch(acks(stored.iter().take(10))).unwrap();
    assert_eq!(db.count(WRITTEN_UPTO), 0, "still in the pass");
    drop(b); // no close: what kill -9 leaves
    assert_eq!(super::mailbox_totals(&db.path).unwrap().0, 3000);

    let mut b = open_backend(db.config(PASS_DEFER)).unwrap();
    // Every message after the watermark is delivered again (the acks
    // were not written), once; the rows the pass wrote are not doubled.
    assert_eq!(db.count("SELECT count(*) FROM inbox"), 3000);
    assert_eq!(
        db.count("SELECT count(DISTINCT msg) FROM inbox"),
        3000,
        "one mailbox row per message"
    );
    assert_eq!(db.count("SELECT count(*) FROM message_index"), 3000);
    assert_eq!(db.count(WRITTEN_UPTO), 3000);
    // Users 51..=60 have 100 messages each, the others 50.
    assert_eq!(mailbox(&mut b, 51).len(), 100);
    assert_eq!(mailbox(&mut b, 61).len(), 50);
}
