use super::*;

fn run(args: &[&str]) -> Options {
    match parse(args.iter().copied()) {
        Ok(Command::Run(options)) => *options,
        other => panic!("{args:?}: {other:?}"),
    }
}

fn error(args: &[&str]) -> String {
    match parse(args.iter().copied()) {
        Err(e) => {
            assert_eq!(e.exit_code(), 2, "{args:?}: {e}");
            e.to_string()
        }
        other => panic!("{args:?} should fail: {other:?}"),
    }
}

#[test]
fn defaults_are_memcacheds() {
    let o = run(&[]);
    assert_eq!(o.server.listen, vec!["0.0.0.0:11211".parse().unwrap()]);
    assert_eq!(o.server.threads, 1);
    assert_eq!(o.server.cache.memory_limit, 64 << 20);
    assert_eq!(o.server.cache.item_size_max, 1 << 20);
    assert_eq!(o.server.cache.max_connections, 1024);
    assert_eq!(o.verbosity, 0);
    assert!(o.port_file.is_none());
}

#[test]
fn short_long_and_attached_forms() {
    let o = run(&[
        "-p11311",
        "--listen=127.0.0.1,::1",
        "-m",
        "128",
        "--conn-limit",
        "10",
        "-I",
        "2m",
        "--threads=4",
        "-vvv",
        "--port-file=/tmp/p",
        "-U",
        "0",
    ]);
    assert_eq!(
        o.server.listen,
        vec![
            "127.0.0.1:11311".parse().unwrap(),
            "[::1]:11311".parse().unwrap()
        ]
    );
    assert_eq!(o.server.cache.memory_limit, 128 << 20);
    assert_eq!(o.server.cache.max_connections, 10);
    assert_eq!(o.server.cache.item_size_max, 2 << 20);
    assert_eq!(o.server.threads, 4);
    assert_eq!(o.server.cache.threads, 4);
    assert_eq!(o.verbosity, 3);
    assert_eq!(o.port_file, Some(PathBuf::from("/tmp/p")));
}

#[test]
fn admin_flags() {
    let o = run(&[]);
    assert!(o.server.cache.flush_enabled && !o.server.cache.shutdown_enabled);
    assert_eq!(o.server.cache.idle_timeout, None);
    let o = run(&["-F", "-A", "-o", "idle_timeout=5"]);
    assert!(!o.server.cache.flush_enabled && o.server.cache.shutdown_enabled);
    assert_eq!(
        o.server.cache.idle_timeout,
        Some(std::time::Duration::from_secs(5))
    );
    assert_eq!(
        run(&["-o", "idle_timeout=0"]).server.cache.idle_timeout,
        None
    );
}

#[test]
fn listen_entries_may_carry_ports() {
    let o = run(&["-l", "127.0.0.1:1234,[::1]:99,[::1]", "-p", "7"]);
    assert_eq!(
        o.server.listen,
        vec![
            "127.0.0.1:1234".parse().unwrap(),
            "[::1]:99".parse().unwrap(),
            "[::1]:7".parse().unwrap()
        ]
    );
    assert!(run(&["-l", "localhost", "-p", "0"])
        .server
        .listen
        .iter()
        .all(|a| a.ip().is_loopback() && a.port() == 0));
}

#[test]
fn tuning_options_are_ignored_and_reported() {
    let o = run(&[
        "-o",
        "slab_reassign,lru_crawler,slab_chunk_max=4096",
        "-o",
        "relaxed_privileges,idle_timeout=3",
        "-u",
        "nobody",
    ]);
    assert_eq!(
        o.ignored,
        ["slab_reassign", "slab_chunk_max=4096", "relaxed_privileges"]
    );
    assert_eq!(
        o.server.cache.idle_timeout,
        Some(std::time::Duration::from_secs(3))
    );
    assert_eq!(o.user.as_deref(), Some("nobody"));
    assert!(o.server.cache.lru_crawler);
    let o = run(&["-o", "no_modern"]);
    assert!(
        !o.server.cache.lru_crawler,
        "no_modern turns the crawler off"
    );
    assert_eq!(o.ignored, ["no_modern"], "and the rest of it is ignored");
    let o = run(&["-o", "no_lru_crawler,lru_crawler"]);
    assert!(o.server.cache.lru_crawler && o.ignored.is_empty());
}

#[test]
fn daemon_and_pid_file() {
    let o = run(&["-d", "-P", "/run/mc.pid"]);
    assert!(o.daemonize);
    assert_eq!(o.pid_file, Some(PathBuf::from("/run/mc.pid")));
    let o = run(&[]);
    assert!(!o.daemonize && o.pid_file.is_none());
}

#[test]
fn unix_socket_and_mask() {
    let o = run(&["-s", "/tmp/mc.sock"]);
    let unix = o.server.unix.unwrap();
    assert_eq!(unix.path, PathBuf::from("/tmp/mc.sock"));
    assert_eq!(unix.mode, 0o700, "memcached's default -a");
    let o = run(&["-s", "/tmp/mc.sock", "-a", "0766"]);
    assert_eq!(o.server.unix.unwrap().mode, 0o766);
    let o = run(&["--unix-socket=/tmp/x", "--unix-mask=640"]);
    assert_eq!(o.server.unix.unwrap().mode, 0o640);
    assert!(run(&[]).server.unix.is_none());
}

#[test]
fn backlog_and_protocol() {
    let o = run(&["-b", "8675", "-B", "auto"]);
    assert_eq!(
        (o.server.cache.backlog, o.server.cache.binding_auto),
        (8675, true)
    );
    let o = run(&["-B", "ascii"]);
    assert_eq!(
        (o.server.cache.backlog, o.server.cache.binding_auto),
        (1024, false)
    );
    assert!(error(&["-B", "binary"]).contains("binary protocol is not supported"));
    assert!(error(&["-b", "0"]).contains("--listen-backlog"));
}

#[test]
fn sizes() {
    assert_eq!(parse_size("1024").unwrap(), 1024);
    assert_eq!(parse_size("64k").unwrap(), 64 << 10);
    assert_eq!(parse_size("3M").unwrap(), 3 << 20);
    assert!(error(&["-I", "512"]).contains("between 1k and 1024m"));
    assert!(error(&["-I", "2000m", "-m", "4096"]).contains("between"));
    assert!(error(&["-I", "40m"]).contains("1/2 of memory"));
    assert!(error(&["-I", "x"]).contains("invalid item size"));
    assert!(error(&["-I", "40m"]).contains("1/2 of memory"));
}

#[test]
fn bad_command_lines_say_why() {
    assert!(error(&["-p"]).contains("a value is required"));
    assert!(error(&["-p", "70000"]).contains("70000"));
    assert!(error(&["-t", "0"]).contains("--threads"));
    assert!(error(&["-c", "0"]).contains("at least 1"));
    assert!(error(&["-U", "11211"]).contains("UDP"));
    assert!(error(&["-a", "800"]).contains("invalid octal access mask"));
    assert!(error(&["-a", "1777"]).contains("invalid octal access mask"));
    assert!(error(&["-o", "ext_path=/tmp/x:64m"]).contains("unsupported -o option"));
    assert!(error(&["-o", "ssl_key=k"]).contains("unsupported -o option"));
    assert!(error(&["-o", "idle_timeout=x"]).contains("invalid idle_timeout"));
    assert!(error(&["-x"]).contains("unexpected argument '-x'"));
    assert!(error(&["-C"]).contains("unexpected argument '-C'"));
    assert!(error(&["-P"]).contains("a value is required"));
    assert!(error(&["-"]).contains("unexpected argument"));
    assert!(error(&["--frobnicate"]).contains("unexpected argument '--frobnicate'"));
    assert!(error(&["-vx"]).contains("unexpected argument"));
    assert!(error(&["stray"]).contains("unexpected argument 'stray'"));
}

#[test]
fn help_and_version() {
    let help = parse(["-h"]).unwrap_err();
    assert_eq!(help.exit_code(), 0);
    let text = help.to_string();
    for flag in [
        "-p, --port",
        "-l, --listen",
        "-m, --memory-limit",
        "-c, --conn-limit",
    ] {
        assert!(text.contains(flag), "{flag} missing from help:\n{text}");
    }
    for flag in [
        "-I, --max-item-size",
        "-t, --threads",
        "-U, --udp-port",
        "--port-file",
    ] {
        assert!(text.contains(flag), "{flag} missing from help:\n{text}");
    }
    assert!(matches!(parse(["--version"]), Ok(Command::Version)));
    assert!(matches!(parse(["-V"]), Ok(Command::Version)));
}
