//! The servers' and im_client's command lines as a person meets them:
//! `--help` answers (exit 0) with the keys and their defaults, an unknown
//! key is refused (exit 2), and a bad value in a configuration file is a
//! startup error naming key and value (exit 2) - never a panic.

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const LOGIN: &str = env!("CARGO_BIN_EXE_login_server");
const MSG: &str = env!("CARGO_BIN_EXE_msg_server");
const CLIENT: &str = env!("CARGO_BIN_EXE_im_client");

/// Runs `exe args`, killing it if it is still running after 10 s (a server
/// that accepted its configuration and started would be).
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

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn conf(name: &str, body: &str) -> PathBuf {
    let path = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("{name}-{}.conf", std::process::id()));
    std::fs::write(&path, body).unwrap();
    path
}

#[test]
fn servers_answer_help_with_their_keys_and_defaults() {
    for (exe, keys) in [
        (
            LOGIN,
            &["ClientPort", "[default: 8008]", "HttpPort", "MsgServerPort"][..],
        ),
        (
            MSG,
            &[
                "ListenIP",
                "ListenPort",
                "[default: 8000]",
                "LoginServerIPN",
                "UsersFile",
                "DbPath",
                "[default: sqlite]",
                "MailboxMaxBytes",
            ][..],
        ),
    ] {
        for flag in ["--help", "-h"] {
            let out = run(exe, &[flag]);
            assert_eq!(out.status.code(), Some(0), "{exe} {flag}: {out:?}");
            let help = text(&out.stdout);
            for key in keys {
                assert!(help.contains(key), "{exe} {flag} lacks {key}:\n{help}");
            }
            assert!(text(&out.stderr).is_empty(), "{out:?}");
        }
    }
}

#[test]
fn servers_refuse_unknown_keys() {
    for exe in [LOGIN, MSG] {
        let out = run(exe, &["--NoSuchKey", "1"]);
        assert_eq!(out.status.code(), Some(2), "{exe}: {out:?}");
        let err = text(&out.stderr);
        assert!(err.contains("unknown key --NoSuchKey"), "{exe}: {err}");
    }
    let out = run(MSG, &["--listenport", "0"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(
        text(&out.stderr).contains("did you mean --ListenPort"),
        "{out:?}"
    );
    let out = run(LOGIN, &["stray"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let out = run(MSG, &["-c", "/nonexistent/msgserver.conf"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(
        text(&out.stderr).contains("/nonexistent/msgserver.conf"),
        "{out:?}"
    );
}

#[test]
fn bad_values_are_startup_errors_naming_key_and_value() {
    let empty = conf("empty-listen", "ListenIP=;\nListenPort=0\n");
    let cases: Vec<(&str, Vec<&str>, &str, &str)> = vec![
        (
            MSG,
            vec!["-c", empty.to_str().unwrap()],
            "ListenIP",
            "\";\"",
        ),
        (MSG, vec!["--ListenPort", "70000"], "ListenPort", "70000"),
        (
            MSG,
            vec!["--ListenIP", "localhost", "--ListenPort", "0"],
            "ListenIP",
            "localhost",
        ),
        (
            MSG,
            vec!["--ListenPort", "0", "--MaxConnCnt", "many"],
            "MaxConnCnt",
            "many",
        ),
        (
            MSG,
            vec!["--ListenPort", "0", "--LinkIdleMs", "0"],
            "LinkIdleMs",
            "0",
        ),
        (
            MSG,
            vec![
                "--ListenPort",
                "0",
                "--LoginServerIP1",
                "127.0.0.1",
                "--LoginServerPort1",
                "x",
            ],
            "LoginServerPort1",
            "x",
        ),
        (
            LOGIN,
            vec!["--ClientListenIP=;", "--ClientPort", "0"],
            "ClientListenIP",
            "\";\"",
        ),
        (
            MSG,
            vec!["--ListenPort", "0", "--Store", "disk"],
            "Store",
            "disk",
        ),
        (
            MSG,
            vec!["--ListenPort", "0", "--DbSynchronous", "off"],
            "DbSynchronous",
            "off",
        ),
        (
            MSG,
            vec!["--ListenPort", "0", "--ClientMaxFrameBytes", "100"],
            "ClientMaxFrameBytes",
            "100",
        ),
        (
            MSG,
            vec!["--ListenPort", "0", "--MailboxMaxBytes", "0"],
            "MailboxMaxBytes",
            "0",
        ),
        (
            MSG,
            vec!["--ListenPort", "0", "--DbBusyTimeoutMs", "soon"],
            "DbBusyTimeoutMs",
            "soon",
        ),
        (
            MSG,
            vec!["--ListenPort", "0", "--StoreCommitIntervalUs", "2000000"],
            "StoreCommitIntervalUs",
            "2000000",
        ),
        (LOGIN, vec!["--HttpPort", "-1"], "HttpPort", "-1"),
        (LOGIN, vec!["--HttpTimeoutMs", "0"], "HttpTimeoutMs", "0"),
    ];
    for (exe, args, key, value) in cases {
        let out = run(exe, &args);
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {out:?}");
        assert!(!err.contains("panicked"), "{args:?}: {err}");
        assert!(err.contains(key) && err.contains(value), "{args:?}: {err}");
    }
    let _ = std::fs::remove_file(empty);
}

#[test]
fn im_client_help_and_usage_errors() {
    let out = run(CLIENT, &["--help"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let help = text(&out.stdout);
    for word in ["send", "recv", "adduser", "--user", "--login"] {
        assert!(help.contains(word), "{word} missing:\n{help}");
    }
    let out = run(CLIENT, &["send", "--help"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");

    let out = run(CLIENT, &["--usr", "alice"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(text(&out.stderr).contains("--usr"), "{out:?}");
    let out = run(CLIENT, &["recv"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(text(&out.stderr).contains("--user"), "{out:?}");
    // send needs a receiver and a text.
    let out = run(CLIENT, &["--user", "a", "send", "bob"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let out = run(CLIENT, &["--user", "a", "recv", "--count", "many"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");

    let out = run(CLIENT, &["adduser", "4", "dave", "s4lt", "dave123"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(text(&out.stdout).starts_with("4 dave s4lt "), "{out:?}");
}
