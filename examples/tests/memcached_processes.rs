//! `netlib-memcached --processes 2`: two worker processes under a prefork
//! master, each with its own cache (half of `-m` and of `-c`), both
//! accepting on the one port; SIGTERM drains and the master exits 0 with
//! its workers gone.

mod memcached_common;

use memcached_common::{ServerProcess, TextClient};
use std::time::{Duration, Instant};

fn stat(client: &mut TextClient, name: &str) -> String {
    client.send(b"stats\r\n");
    let mut value = None;
    loop {
        let line = client.line();
        let line = line.trim_end();
        if line == "END" {
            return value.unwrap_or_else(|| panic!("no stat {name}"));
        }
        if let Some(v) = line.strip_prefix(&format!("STAT {name} ")) {
            value = Some(v.to_string());
        }
    }
}

#[test]
fn two_worker_processes_serve_split_caches_and_stop_on_sigterm() {
    let mut server = ServerProcess::start(&["--processes", "2", "-m", "64", "-c", "100"]);
    let mut pids = std::collections::BTreeSet::new();
    for i in 0..20 {
        let mut c = TextClient::connect(server.addr);
        let key = format!("k{i}");
        c.set(&key, b"value");
        assert_eq!(c.get(&key).as_deref(), Some(&b"value"[..]));
        assert_eq!(stat(&mut c, "limit_maxbytes"), (32 << 20).to_string());
        assert_eq!(stat(&mut c, "max_connections"), "50");
        pids.insert(stat(&mut c, "pid"));
    }
    assert!(
        !pids.contains(&server.pid().to_string()),
        "the master served"
    );
    // SAFETY: kill has no memory effects.
    unsafe { libc::kill(server.pid() as i32, libc::SIGTERM) };
    let deadline = Instant::now() + Duration::from_secs(10);
    while server.is_alive() {
        assert!(
            Instant::now() < deadline,
            "master still running after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    for pid in pids {
        let gone = !std::path::Path::new(&format!("/proc/{pid}")).exists()
            || std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .is_ok_and(|s| s.contains(") Z"));
        assert!(gone, "worker {pid} outlived its master");
    }
}
