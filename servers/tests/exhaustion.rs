//! Descriptor exhaustion: msg_server started with `RLIMIT_NOFILE` lowered to
//! 64, then flooded with 200 connections that never log in. The users who
//! were logged in before must keep chatting, the server must not spin on
//! the failing `accept` (CPU time from `/proc`), and once the flood goes
//! away it must accept again - including a login that waited in the
//! kernel's backlog during the stall.
//!
//! Run with `cargo test -p servers --test exhaustion -- --nocapture`.

mod common;

use common::*;
use servers::client::ImClient;
use std::net::TcpStream;
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
