//! libmemcached's conformance test, `memcapable -a` (every ASCII-protocol
//! test), against `netlib-memcached`.
//!
//! Debian's `libmemcached-tools` installs it as `memccapable`; older builds
//! call it `memcapable`. scripts/test.sh installs the package. When neither
//! is on PATH the test says so loudly and passes, unless
//! `NETLIB_REQUIRE_TOOLS=1` demands the tools.

mod memcached_common;

use memcached_common::{on_path, run_with_timeout, ServerProcess};
use std::process::Command;
use std::time::Duration;

fn memcapable() -> Option<&'static str> {
    ["memccapable", "memcapable"]
        .into_iter()
        .find(|name| on_path(name))
}

fn run_memcapable(server_args: &[&str]) {
    let Some(tool) = memcapable() else {
        let message = "memccapable/memcapable not installed (apt-get install libmemcached-tools)";
        if std::env::var_os("NETLIB_REQUIRE_TOOLS").is_some_and(|v| v == "1") {
            panic!("{message}");
        }
        eprintln!("\n********** SKIPPED: {message} **********\n");
        return;
    };
    let server = ServerProcess::start(server_args);
    let port = server.port().to_string();
    // -t: per-operation timeout in seconds, so a wrong reply cannot hang it.
    let (status, output) = run_with_timeout(
        Command::new(tool).args(["-a", "-t", "10", "-h", "127.0.0.1", "-p", &port]),
        Duration::from_secs(120),
    );
    println!("{output}");
    assert_eq!(status, Some(0), "{tool} -a failed:\n{output}");
    assert!(output.contains("All tests passed"), "{output}");
    assert!(!output.contains("[FAIL]"), "{output}");
}

#[test]
fn memcapable_ascii_passes_every_test() {
    run_memcapable(&[]);
}

#[test]
fn memcapable_ascii_passes_with_two_reactor_threads() {
    run_memcapable(&["-t", "2"]);
}
