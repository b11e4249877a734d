//! Shared pieces of the benchmark binaries: a counting global allocator, a
//! stats thread that publishes its count, and the PDU-echo frame layout.
//!
//! Everything here is benchmark-only; nothing in netlib, imconn or pdu
//! depends on this crate.
#![warn(missing_docs)]

use std::time::Duration;

/// The workspace's counting global allocator (see the `alloc-count` crate);
/// each server binary installs it and publishes [`alloc_count::total_allocs`].
pub use alloc_count::CountingAlloc;

/// Writes the allocation count to `path` every 50 ms from a background
/// thread (the same in every server, so its cost cancels out). The driver
/// reads it before and after a run.
pub fn publish_allocs(path: Option<String>) {
    let Some(path) = path else { return };
    std::thread::spawn(move || {
        let tmp = format!("{path}.tmp");
        loop {
            let n = alloc_count::total_allocs();
            if std::fs::write(&tmp, n.to_string()).is_ok() {
                let _ = std::fs::rename(&tmp, &path);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    });
}

/// The command line every benchmark server takes: `SERVER [ADDR] [STATS]`.
#[derive(clap::Parser)]
struct ServerArgs {
    /// Address to listen on
    #[arg(default_value = "127.0.0.1:2008")]
    addr: std::net::SocketAddr,
    /// File to keep the process's allocation count in (updated every 50 ms)
    stats: Option<String>,
}

/// The listen address (first argument) and optional stats path (second);
/// `--help` describes them, anything else is an error (exit 2).
pub fn server_args() -> (std::net::SocketAddr, Option<String>) {
    let args: ServerArgs = clap::Parser::parse();
    (args.addr, args.stats)
}

/// Body bytes of a PDU-echo frame.
pub const BODY_LEN: usize = 64;
/// Whole TeamTalk frame: 16-byte header + body.
pub const FRAME_LEN: usize = pdu::HEADER_LEN + BODY_LEN;

/// Raises RLIMIT_NOFILE to `want` (soft and, when permitted, hard).
pub fn raise_nofile(want: u64) -> u64 {
    // SAFETY: getrlimit/setrlimit only read or write the local `rlimit`
    // structs whose valid pointers we pass.
    unsafe {
        let mut r = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut r);
        if r.rlim_cur >= want {
            return r.rlim_cur;
        }
        let mut n = libc::rlimit {
            rlim_cur: want,
            rlim_max: want.max(r.rlim_max),
        };
        if libc::setrlimit(libc::RLIMIT_NOFILE, &n) != 0 {
            n.rlim_cur = r.rlim_max;
            n.rlim_max = r.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &n);
        }
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut r);
        r.rlim_cur
    }
}
