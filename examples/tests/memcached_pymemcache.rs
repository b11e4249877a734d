//! A stock Python client, pymemcache from PyPI, against `netlib-memcached`:
//! set/get/get_many/cas/incr/decr/touch/delete/flush_all/noreply and a
//! ~500 KB value (the checks are in `pymemcache_check.py`, which also passes
//! against real memcached).
//!
//! scripts/test.sh pip-installs pymemcache. Without python3 or pymemcache
//! the test says so loudly and passes, unless `NETLIB_REQUIRE_TOOLS=1`.

mod memcached_common;

use memcached_common::{run_with_timeout, ServerProcess};
use std::process::Command;
use std::time::Duration;

#[test]
fn pymemcache_client_sees_memcached() {
    let (status, _) = run_with_timeout(
        Command::new("python3").args(["-c", "import pymemcache"]),
        Duration::from_secs(30),
    );
    if status != Some(0) {
        let message = "python3 with pymemcache not available (pip install pymemcache)";
        if std::env::var_os("NETLIB_REQUIRE_TOOLS").is_some_and(|v| v == "1") {
            panic!("{message}");
        }
        eprintln!("\n********** SKIPPED: {message} **********\n");
        return;
    }
    let server = ServerProcess::start(&[]);
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/pymemcache_check.py");
    let (status, output) = run_with_timeout(
        Command::new("python3")
            .arg(script)
            .arg(server.port().to_string()),
        Duration::from_secs(120),
    );
    println!("{output}");
    assert_eq!(status, Some(0), "pymemcache checks failed:\n{output}");
    assert!(output.contains("ALL OK"), "{output}");
}
