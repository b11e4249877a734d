//! What one client can make msg_server hold, bounded (over the real
//! binary): messages to users that do not exist are refused and kept
//! nowhere; client frames have their own maximum; a connection that does
//! not ack its deliveries is cut off by bytes, not only by count; and a
//! user's mailbox is bounded in messages and bytes, all mailboxes together
//! in bytes - past a bound the sender gets no ack (TeamTalk's refusal) and
//! nothing is stored. Requests that find the store with `StoreInFlightMax`
//! operations to answer are held back, not dropped.
//!
//! Run with `cargo test -p servers --test bounds -- --nocapture`.

mod common;

use common::*;
use pdu::proto::{
    ImGetMsgListReq, ImGetMsgListRsp, ImMsgData, ImMsgDataAck, ImMsgDataReadAck, ImUnreadMsgCntReq,
    ImUnreadMsgCntRsp, MsgType, SessionType,
};
use pdu::{cid, sid, Header, Pdu};
use servers::client::ImClient;
use std::io::Write;
use std::time::{Duration, Instant};

/// Sends `len` bytes of text from `c` to `to`; returns the request's seq.
fn send(c: &mut ImClient, to: u32, len: usize, msg_type: MsgType) -> u16 {
    let msg = ImMsgData {
        from_user_id: c.user_id,
        to_session_id: to,
        msg_id: 0,
        create_time: 0,
        msg_type: msg_type as i32,
        msg_data: vec![b'x'; len],
        attach_data: None,
    };
    c.send_pdu(sid::MSG, cid::msg::DATA, &msg).unwrap()
}

/// Reads until the ack of request `seq`; returns the seqs of every ack
/// seen (that one last).
fn acks_until(c: &mut ImClient, seq: u16) -> Vec<u16> {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut seen = Vec::new();
    loop {
        let p = c.recv_pdu(deadline).unwrap();
        if p.command_id() == cid::msg::DATA_ACK {
            let _: ImMsgDataAck = p.decode_body().unwrap();
            seen.push(p.seq_num());
            if p.seq_num() == seq {
                return seen;
            }
        }
    }
}

#[test]
fn messages_to_nobody_are_refused_and_kept_nowhere() {
    let users = users_file("nobody", 2);
    let db = db_path("nobody");
    let mut ms = msg_server(
        &users,
        None,
        &[
            "--DbPath",
            db.to_str().unwrap(),
            "--MsgRateLimit",
            "1000000",
        ],
    );
    ms.db = Some(db.clone());
    let addr = ms.addr("client");
    let mut u1 = user(addr, 1);
    let rss_before = ms.rss_kb();
    // 20,000 messages of 1 KiB to a user and a group that do not exist:
    // before, each was acked and kept in memory forever.
    let start = Instant::now();
    for i in 0..20_000u32 {
        if i % 2 == 0 {
            send(&mut u1, 999_999 + i, 1024, MsgType::SingleText);
        } else {
            send(&mut u1, 77, 1024, MsgType::GroupText);
        }
    }
    let valid = send(&mut u1, 2, 10, MsgType::SingleText);
    let acks = acks_until(&mut u1, valid);
    let rss_after = ms.rss_kb();
    println!(
        "20,000 messages to nobody in {:?}: RSS {rss_before} -> {rss_after} KiB; acks {acks:?}",
        start.elapsed()
    );
    assert_eq!(acks, [valid], "refused messages were acknowledged");
    assert!(
        rss_after < rss_before + 8 * 1024,
        "20 MiB to nobody grew the server from {rss_before} to {rss_after} KiB"
    );
    let (undelivered, _) = servers::msg::store::sqlite::mailbox_totals(&db).unwrap();
    assert_eq!(undelivered, 1, "only the valid message is stored");
    let mut u2 = user(addr, 2);
    let got = drain(&mut u2, Duration::from_millis(300));
    assert_eq!(got.len(), 1);
    assert_eq!((got[0].0, got[0].1), (1, 1));
}

#[test]
fn client_frames_past_their_maximum_close_only_that_client() {
    let users = users_file("frame", 3);
    let ms = msg_server(&users, None, &["--ClientMaxFrameBytes", "4096"]);
    let addr = ms.addr("client");
    let (mut u1, mut u2, mut u3) = (user(addr, 1), user(addr, 2), user(addr, 3));
    let ok = send(&mut u1, 2, 3000, MsgType::SingleText);
    assert_eq!(acks_until(&mut u1, ok), [ok]);
    assert_eq!(drain(&mut u2, Duration::from_millis(300)).len(), 1);
    send(&mut u1, 2, 5000, MsgType::SingleText);
    wait_closed(u1.stream(), T);
    still_chatting(&mut u3, &mut u2, "the others carry on");
}

#[test]
fn unacknowledged_deliveries_are_bounded_in_bytes() {
    let users = users_file("unacked", 2);
    let ms = msg_server(
        &users,
        None,
        &[
            "--ConnUnackedMaxBytes",
            "65536",
            "--ConnUnackedMax",
            "10000",
        ],
    );
    let addr = ms.addr("client");
    let mut u1 = user(addr, 1);
    let mut silent = user(addr, 2); // reads nothing, acks nothing
    let mut last = 0;
    for _ in 0..100 {
        last = send(&mut u1, 2, 1024, MsgType::SingleText);
    }
    assert_eq!(acks_until(&mut u1, last).len(), 100, "all stored and acked");
    // 64 KiB of unacknowledged content: the connection is cut off, long
    // before the 10,000-delivery count bound.
    wait_closed(silent.stream(), T);
    // Nothing is lost: the mailbox still has all of it.
    let mut u2 = user(addr, 2);
    let got = drain(&mut u2, Duration::from_millis(500));
    let ids: Vec<u32> = got.iter().map(|m| m.1).collect();
    assert_eq!(ids, (1..=100).collect::<Vec<_>>());
}

fn mailbox_bounds(store: &str) {
    let users = users_file(&format!("mailbox-{store}"), 5);
    // Per user: 20 messages or 10,000 bytes (a 1000-byte message counts
    // 1032); all mailboxes: 20,000 bytes.
    let ms = msg_server(
        &users,
        None,
        &[
            "--Store",
            store,
            "--OfflineQueueMax",
            "20",
            "--MailboxMaxBytes",
            "10000",
            "--MailboxTotalMaxBytes",
            "20000",
        ],
    );
    let addr = ms.addr("client");
    let mut u1 = user(addr, 1);
    // Count: 20 small messages to offline u2 fit, the 21st does not.
    let seqs: Vec<u16> = (0..21)
        .map(|_| send(&mut u1, 2, 10, MsgType::SingleText))
        .collect();
    let probe = send(&mut u1, 5, 10, MsgType::SingleText);
    let acks = acks_until(&mut u1, probe);
    assert_eq!(acks[..20], seqs[..20]);
    assert_eq!(acks[20..], [probe], "the 21st was acknowledged");
    // Bytes: 9 messages of 1000 bytes fit u3's 10,000, the 10th does not.
    let seqs: Vec<u16> = (0..10)
        .map(|_| send(&mut u1, 3, 1000, MsgType::SingleText))
        .collect();
    let probe = send(&mut u1, 5, 10, MsgType::SingleText);
    let acks = acks_until(&mut u1, probe);
    assert_eq!(acks[..9], seqs[..9]);
    assert_eq!(acks[9..], [probe], "past MailboxMaxBytes was acknowledged");
    // Total: 9,288 (u3) + 20 * 42 (u2) + 2 * 42 (u5) are held; u4 takes 9
    // more of 1032 (to 19,500), then all mailboxes together refuse one more.
    let seqs: Vec<u16> = (0..9)
        .map(|_| send(&mut u1, 4, 1000, MsgType::SingleText))
        .collect();
    let over = send(&mut u1, 5, 1000, MsgType::SingleText);
    let probe = send(&mut u1, 5, 10, MsgType::SingleText);
    let acks = acks_until(&mut u1, probe);
    assert_eq!(acks[..9], seqs[..9]);
    assert!(
        !acks.contains(&over),
        "past MailboxTotalMaxBytes was acknowledged"
    );
    // Once u2 collects its mail, its mailbox takes messages again.
    let mut u2 = user(addr, 2);
    assert_eq!(drain(&mut u2, Duration::from_millis(500)).len(), 20);
    drop(u2);
    let again = send(&mut u1, 2, 10, MsgType::SingleText);
    assert_eq!(acks_until(&mut u1, again), [again]);
}

#[test]
fn mailboxes_are_bounded_in_the_sqlite_store() {
    mailbox_bounds("sqlite");
}

#[test]
fn mailboxes_are_bounded_in_the_memory_store() {
    mailbox_bounds("memory");
}

/// A store with `StoreInFlightMax` operations to answer holds back the
/// connections that ask more of it: 300 history requests and a read ack
/// written at once, with room for three operations in the store, are all
/// answered (or done), in order - none is dropped.
#[test]
fn requests_past_store_in_flight_max_are_held_back_not_dropped() {
    const REQUESTS: u16 = 300;
    let users = users_file("storebusy", 2);
    let ms = msg_server(
        &users,
        None,
        &["--StoreInFlightMax", "2", "--QueryRateLimit", "100000000"],
    );
    let addr = ms.addr("client");
    // One message at a time, each sent with at most the login's mailbox
    // fetch in the store (a message finding the store full is refused).
    let mut u1 = user(addr, 1);
    for i in 0..5 {
        u1.send_text(2, &format!("read me {i}")).unwrap();
        u1.wait_ack(Instant::now() + T).unwrap();
    }
    let mut u2 = user(addr, 2);
    assert_eq!(drain(&mut u2, Duration::from_millis(300)).len(), 5);

    let list = ImGetMsgListReq {
        user_id: 2,
        session_type: SessionType::Single as i32,
        session_id: 1,
        msg_id_begin: 0,
        msg_cnt: 20,
        attach_data: None,
    };
    let read = ImMsgDataReadAck {
        user_id: 2,
        session_id: 1,
        msg_id: 5,
        session_type: SessionType::Single as i32,
    };
    let unread = ImUnreadMsgCntReq {
        user_id: 2,
        attach_data: None,
    };
    let frame = |seq: u16, cid: u16, body: &dyn Fn(Header) -> Pdu| {
        body(Header::new(sid::MSG, cid).with_seq_num(seq))
            .as_bytes()
            .to_vec()
    };
    let mut frames = Vec::new();
    for seq in 1..=REQUESTS {
        frames.extend(frame(seq, cid::msg::LIST_REQUEST, &|h| {
            Pdu::from_message(h, &list).unwrap()
        }));
    }
    frames.extend(frame(REQUESTS + 1, cid::msg::READ_ACK, &|h| {
        Pdu::from_message(h, &read).unwrap()
    }));
    frames.extend(frame(REQUESTS + 2, cid::msg::UNREAD_CNT_REQUEST, &|h| {
        Pdu::from_message(h, &unread).unwrap()
    }));
    u2.stream().write_all(&frames).unwrap();

    let deadline = Instant::now() + Duration::from_secs(30);
    let mut seqs = Vec::new();
    let total_unread = loop {
        let p = u2.recv_pdu(deadline).unwrap();
        match p.command_id() {
            cid::msg::LIST_RESPONSE => {
                let rsp: ImGetMsgListRsp = p.decode_body().unwrap();
                assert_eq!(rsp.msg_list.len(), 5);
                seqs.push(p.seq_num());
            }
            cid::msg::UNREAD_CNT_RESPONSE => {
                assert_eq!(p.seq_num(), REQUESTS + 2);
                let rsp: ImUnreadMsgCntRsp = p.decode_body().unwrap();
                break rsp.total_cnt;
            }
            _ => {}
        }
    };
    assert_eq!(
        seqs,
        (1..=REQUESTS).collect::<Vec<_>>(),
        "every request answered, in order"
    );
    assert_eq!(total_unread, 0, "the read ack was not dropped");
}
