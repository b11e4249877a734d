//! What a person typing the example commands sees: `--help` answers with
//! exit 0, an unknown flag or a bad value is an error naming it (exit 2)
//! instead of being ignored.

use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Runs `exe args` with stdin closed, killing it after 10 s.
fn run(exe: &str, args: &[&str]) -> Output {
    let mut child = Command::new(exe)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {exe}: {e}"));
    let deadline = Instant::now() + Duration::from_secs(10);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!("{exe} {args:?} still running after 10 s: {out:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

const ALL: [(&str, &str); 10] = [
    ("echo", env!("CARGO_BIN_EXE_echo")),
    ("pingpong", env!("CARGO_BIN_EXE_pingpong")),
    ("idleconnection", env!("CARGO_BIN_EXE_idleconnection")),
    ("chat", env!("CARGO_BIN_EXE_chat")),
    ("sudoku", env!("CARGO_BIN_EXE_sudoku")),
    ("tcprelay", env!("CARGO_BIN_EXE_tcprelay")),
    ("socks4a", env!("CARGO_BIN_EXE_socks4a")),
    ("roundtrip", env!("CARGO_BIN_EXE_roundtrip")),
    ("procmon", env!("CARGO_BIN_EXE_procmon")),
    ("netlib-memcached", env!("CARGO_BIN_EXE_netlib-memcached")),
];

#[test]
fn help_exits_zero_and_shows_usage() {
    for (name, exe) in ALL {
        let out = run(exe, &["--help"]);
        assert_eq!(out.status.code(), Some(0), "{name} --help: {out:?}");
        let text = stdout(&out);
        assert!(text.contains("Usage:"), "{name} --help printed {text:?}");
    }
    let out = run(env!("CARGO_BIN_EXE_echo"), &["--help"]);
    assert!(stdout(&out).contains("--port"), "{out:?}");
    assert!(stdout(&out).contains("[default: 2007]"), "{out:?}");
    let out = run(env!("CARGO_BIN_EXE_chat"), &["server", "--help"]);
    assert!(stdout(&out).contains("--max-queue"), "{out:?}");
}

#[test]
fn a_misspelt_flag_is_an_error_not_the_default() {
    let out = run(env!("CARGO_BIN_EXE_echo"), &["--prot", "3000"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let err = stderr(&out);
    assert!(err.contains("--prot"), "{err}");
    assert!(
        err.contains("--port"),
        "clap suggests the right flag: {err}"
    );
    for (name, exe) in ALL {
        let out = run(exe, &["--no-such-flag"]);
        assert_eq!(out.status.code(), Some(2), "{name}: {out:?}");
        assert!(stderr(&out).contains("--no-such-flag"), "{name}: {out:?}");
    }
}

#[test]
fn bad_values_name_the_flag() {
    let cases: [(&str, &[&str], &str); 7] = [
        (env!("CARGO_BIN_EXE_echo"), &["--port", "70000"], "--port"),
        (
            env!("CARGO_BIN_EXE_echo"),
            &["--connect", "nowhere"],
            "--connect",
        ),
        (
            env!("CARGO_BIN_EXE_idleconnection"),
            &["--idle", "soon"],
            "--idle",
        ),
        (
            env!("CARGO_BIN_EXE_idleconnection"),
            &["--idle", "1", "--tick", "2"],
            "--tick",
        ),
        (env!("CARGO_BIN_EXE_tcprelay"), &["--port", "0"], "--to"),
        (env!("CARGO_BIN_EXE_pingpong"), &["client"], "--connect"),
        (
            env!("CARGO_BIN_EXE_netlib-memcached"),
            &["-t", "0"],
            "--threads",
        ),
    ];
    for (exe, args, flag) in cases {
        let out = run(exe, args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {out:?}");
        assert!(stderr(&out).contains(flag), "{args:?}: {out:?}");
    }
    let out = run(env!("CARGO_BIN_EXE_chat"), &[]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(stderr(&out).contains("server"), "{out:?}");
}
