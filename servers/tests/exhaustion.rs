//! One client cannot exhaust msg_server for the others.
//!
//! - Descriptor exhaustion: msg_server started with `RLIMIT_NOFILE` lowered
//!   to 64, then flooded with 200 connections that never log in. The users
//!   who were logged in before must keep chatting, the server must not spin
//!   on the failing `accept` (CPU time from `/proc`), and once the flood
//!   goes away it must accept again - including a login that waited in the
//!   kernel's backlog during the stall.
//! - A query flood: a logged-in client sends 20,000 history requests at
//!   once. It is answered in order, nothing dropped, no faster than
//!   `QueryRateLimit` (burst twice that), while other users' messages and
//!   queries are answered promptly - also with the rate out of the way,
//!   where `ConnQueryInFlightMax` alone keeps the flood out of the store's
//!   queue (without either limit the others wait seconds: the test fails).
//!
//! Run with `cargo test -p servers --test exhaustion -- --nocapture`.

mod common;

use common::*;
use pdu::proto::{ImGetMsgListReq, ImGetMsgListRsp, SessionType};
use pdu::{cid, sid, Header, Pdu};
use servers::client::ImClient;
use std::io::Write;
use std::net::{Shutdown, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const NOFILE: u64 = 64;
const FLOOD: usize = 200;

fn clock_ticks_per_sec() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as u64
    } else {
        100
    }
}

#[test]
fn a_flood_past_the_descriptor_limit_stalls_accept_without_spinning_and_recovers() {
    raise_nofile();
    let users = users_file("exhaustion", 4);
    let users = users.to_str().unwrap();
    let db = common::db_path("flood");
    let args = [
        "--ListenPort",
        "0",
        "--UsersFile",
        users,
        // The flood holds its descriptors for the whole test.
        "--LoginTimeoutMs",
        "120000",
        "--DbPath",
        db.to_str().unwrap(),
    ];
    let mut ms = Proc::start_cmd(
        with_nofile(env!("CARGO_BIN_EXE_msg_server"), &args, NOFILE),
        1,
    );
    ms.db = Some(db.clone());
    let addr = ms.addr("client");
    let mut u1 = user(addr, 1);
    let mut u2 = user(addr, 2);
    still_chatting(&mut u1, &mut u2, "before the flood");
    let base_fds = ms.fd_count();

    // Every connect succeeds (the kernel completes the handshake into the
    // listen backlog); the server accepts until it runs out of descriptors.
    let mut flood: Vec<TcpStream> = (0..FLOOD)
        .map(|i| TcpStream::connect_timeout(&addr, T).unwrap_or_else(|e| panic!("flood {i}: {e}")))
        .collect();
    eventually("the server reaching its descriptor limit", T, || {
        ms.fd_count() as u64 >= NOFILE
    });
    let accepted = ms.fd_count() - base_fds;

    // A login that arrives during the stall waits in the backlog.
    let waiting = std::thread::spawn(move || {
        let mut c = ImClient::connect(addr, T).unwrap();
        let res = c
            .login("u3", "pw3", false, Duration::from_secs(60))
            .unwrap();
        assert_eq!(res.result_code, 0, "login of u3");
        (c, Instant::now())
    });

    // CPU while accept keeps failing with EMFILE and nobody else talks.
    let window = Duration::from_secs(2);
    let before = ms.cpu_ticks();
    std::thread::sleep(window);
    let ticks = ms.cpu_ticks() - before;
    let cpu = ticks as f64 / clock_ticks_per_sec() as f64 / window.as_secs_f64();

    // Logged-in users are served during the stall.
    let chat_start = Instant::now();
    for i in 0..50 {
        still_chatting(&mut u1, &mut u2, &format!("during the flood {i}"));
        still_chatting(&mut u2, &mut u1, &format!("reply {i}"));
    }
    let chat_time = chat_start.elapsed();
    assert!(
        !waiting.is_finished(),
        "u3 logged in while every descriptor was taken"
    );

    let peak_fds = ms.fd_count();
    let closed_at = Instant::now();
    flood.clear();
    let (mut u3, logged_in_at) = waiting.join().unwrap();
    eventually("the flood's descriptors to be released", T, || {
        ms.fd_count() <= base_fds + 1
    });
    let released = closed_at.elapsed();
    let mut u4 = user(addr, 4);
    still_chatting(&mut u3, &mut u4, "after the flood");
    still_chatting(&mut u1, &mut u2, "still here");

    println!(
        "exhaustion: RLIMIT_NOFILE {NOFILE}, {FLOOD} connections: server fds {base_fds} -> {peak_fds} \
         ({accepted} flood connections accepted, the rest left in the backlog); \
         CPU during the stall {:.1}% of a core ({ticks} ticks in {window:?}); \
         100 messages between the logged-in users in {chat_time:?}; \
         login queued during the stall answered {:?} after the flood closed, \
         descriptors back to {} within {released:?}",
        cpu * 100.0,
        logged_in_at.saturating_duration_since(closed_at),
        ms.fd_count(),
    );
    assert!(
        cpu < 0.3,
        "busy while accept fails: {:.1}% of a core",
        cpu * 100.0
    );
}

/// A request for the newest 200 messages of `c`'s session with `peer`.
fn history_request(c: &ImClient, peer: u32) -> ImGetMsgListReq {
    ImGetMsgListReq {
        user_id: c.user_id,
        session_type: SessionType::Single as i32,
        session_id: peer,
        msg_id_begin: 0,
        msg_cnt: 200,
        attach_data: None,
    }
}

/// Messages in the session the flood asks for: each answer reads 200.
const HISTORY: usize = 200;

/// What [`query_flood`] saw.
struct Flood {
    /// (seq, messages) of each answer to the flooder, in arrival order.
    answered: Vec<(u16, usize)>,
    /// From the first request written to when `answered` was taken.
    elapsed: Duration,
}

/// msg_server with `limits`; user 1 writes 20,000 history requests at once
/// (reading the answers on another thread) while users 3 and 4 chat and
/// query; asserts the others were served promptly and the flooder answered
/// in order, whole, nothing skipped, and still connected.
fn query_flood(tag: &str, limits: &[&str]) -> Flood {
    const FLOOD: u16 = 20_000;
    let users = users_file(tag, 4);
    let mut args = vec!["--MsgRateLimit", "100000"];
    args.extend(limits);
    let ms = msg_server(&users, None, &args);
    let addr = ms.addr("client");
    let mut flooder = user(addr, 1);
    for i in 0..HISTORY {
        flooder.send_text(2, &format!("history {i}")).unwrap();
    }
    flooder.wait_acks(HISTORY, Instant::now() + T).unwrap();
    let mut u3 = user(addr, 3);
    let mut u4 = user(addr, 4);
    still_chatting(&mut u3, &mut u4, "before the flood");

    // Every request written at once (as fast as the server lets the socket
    // take them), the answers read on another thread.
    let mut frames = Vec::new();
    let req = history_request(&flooder, 2);
    for seq in 1..=FLOOD {
        let header = Header::new(sid::MSG, cid::msg::LIST_REQUEST).with_seq_num(seq);
        frames.extend_from_slice(Pdu::from_message(header, &req).unwrap().as_bytes());
    }
    let mut out = flooder.stream().try_clone().unwrap();
    let control = flooder.stream().try_clone().unwrap();
    let started = Instant::now();
    let writer = std::thread::spawn(move || {
        let _ = out.write_all(&frames); // ends with an error at the shutdown
    });
    let answers: Arc<Mutex<Vec<(u16, usize)>>> = Arc::default();
    let reader = {
        let answers = Arc::clone(&answers);
        std::thread::spawn(move || loop {
            match flooder.recv_pdu(Instant::now() + T) {
                Ok(p) if p.command_id() == cid::msg::LIST_RESPONSE => {
                    let rsp: ImGetMsgListRsp = p.decode_body().unwrap();
                    answers
                        .lock()
                        .unwrap()
                        .push((p.seq_num(), rsp.msg_list.len()));
                }
                Ok(_) => {}
                Err(e) => return e,
            }
        })
    };

    // The others chat and query while the flood goes on.
    std::thread::sleep(Duration::from_millis(200));
    let mut slowest = Duration::ZERO;
    for i in 0..10 {
        let t = Instant::now();
        still_chatting(&mut u3, &mut u4, &format!("during the flood {i}"));
        let req = history_request(&u4, 3);
        let rsp: ImGetMsgListRsp = ask(
            &mut u4,
            sid::MSG,
            cid::msg::LIST_REQUEST,
            &req,
            cid::msg::LIST_RESPONSE,
        );
        assert_eq!(rsp.msg_list.len(), (i + 2).min(HISTORY));
        slowest = slowest.max(t.elapsed());
        std::thread::sleep(Duration::from_millis(100));
    }
    let answered = answers.lock().unwrap().clone();
    let elapsed = started.elapsed();
    // Held back, not cut off: the flooder's connection is still open.
    assert!(
        !reader.is_finished(),
        "the flooder's connection ended early"
    );
    control.shutdown(Shutdown::Both).unwrap();
    let _ = reader.join().unwrap();
    writer.join().unwrap();
    println!(
        "query flood ({limits:?}): {} of {FLOOD} history requests answered in {elapsed:?}; \
         slowest round of another user's message and query during it: {slowest:?}",
        answered.len(),
    );

    // Others are served promptly: each round waits behind at most
    // ConnQueryInFlightMax of the flooder's queries, not thousands.
    assert!(
        slowest < Duration::from_secs(2),
        "another user waited {slowest:?} for a message and a query"
    );
    // The flooder is answered in order, nothing skipped, every answer whole.
    let seqs: Vec<u16> = answered.iter().map(|(s, _)| *s).collect();
    let want: Vec<u16> = (1..=seqs.len() as u16).collect();
    assert_eq!(seqs, want, "the flooder's requests answered in order");
    assert!(answered.iter().all(|(_, n)| *n == HISTORY));
    assert!(!answered.is_empty(), "the flooder was not answered at all");
    Flood { answered, elapsed }
}

/// With the rate out of the way, `ConnQueryInFlightMax` alone keeps the
/// flood from filling the store's queue (without it, the others' messages
/// wait seconds behind the flood's queries).
#[test]
fn a_query_flood_holds_only_conn_query_in_flight_max_places_in_the_store() {
    // query_flood asserts that the others were served promptly.
    query_flood(
        "qflood-inflight",
        &[
            "--QueryRateLimit",
            "100000000",
            "--ConnQueryInFlightMax",
            "8",
        ],
    );
}

/// The flood is answered no faster than `QueryRateLimit` (burst twice
/// that), and the others are served meanwhile.
#[test]
fn a_query_flood_is_answered_no_faster_than_query_rate_limit() {
    const RATE: usize = 100;
    let rate = RATE.to_string();
    let flood = query_flood("qflood-rate", &["--QueryRateLimit", &rate]);
    // The bucket starts full (2 * RATE) and may go one token into debt.
    let allowed = 2 * RATE + (RATE as f64 * flood.elapsed.as_secs_f64()) as usize + 2;
    assert!(
        flood.answered.len() <= allowed,
        "{} answers in {:?}: over QueryRateLimit {RATE}/s (at most {allowed})",
        flood.answered.len(),
        flood.elapsed
    );
}
