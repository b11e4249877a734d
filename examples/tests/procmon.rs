//! procmon: its three pages through curl, 404/405/400 answers, pipelining
//! and deadlines over raw sockets, another process watched until it exits,
//! and a burst of load from wrk after which the server still answers at once.

mod util;

use std::io::{Read, Write};
use std::process::Command;
use std::time::{Duration, Instant};
use util::{have, run_with_timeout, Proc};

const EXE: &str = env!("CARGO_BIN_EXE_procmon");

/// `curl -s URL` plus `args`: (status code, content type, body).
fn curl(server: &Proc, path: &str, args: &[&str]) -> (u16, String, String) {
    let url = format!("http://{}{path}", server.addr);
    let out = run_with_timeout(
        Command::new("curl")
            .args([
                "-s",
                "--max-time",
                "5",
                "-w",
                "\n%{http_code} %{content_type}",
            ])
            .args(args)
            .arg(&url),
        Duration::from_secs(10),
    );
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, trailer) = text.rsplit_once('\n').unwrap_or(("", &text));
    let (code, content_type) = trailer.split_once(' ').unwrap_or((trailer, ""));
    let code = code
        .parse()
        .unwrap_or_else(|_| panic!("curl {url}: no status in {text:?}"));
    (code, content_type.to_string(), body.to_string())
}

/// The value of the unlabelled sample `name` in Prometheus text.
fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {name} in\n{text}"))
}

/// Sends `request` on a new connection and reads until the server closes.
fn exchange(server: &Proc, request: &[u8]) -> String {
    let mut s = server.connect();
    s.write_all(request).unwrap();
    let mut reply = Vec::new();
    s.read_to_end(&mut reply)
        .expect("server closes after answering");
    String::from_utf8_lossy(&reply).into_owned()
}

macro_rules! need {
    ($program:literal) => {
        if !have($program) {
            eprintln!("skipped: {} not installed", $program);
            return;
        }
    };
}

#[test]
fn metrics_are_prometheus_text() {
    need!("curl");
    let server = Proc::start(EXE, &["--port", "0", "--interval", "0.1"]);
    std::thread::sleep(Duration::from_millis(300)); // a CPU reading or two
    let (code, content_type, body) = curl(&server, "/metrics", &[]);
    assert_eq!(code, 200);
    assert!(
        content_type.starts_with("text/plain; version=0.0.4"),
        "{content_type}"
    );
    for name in [
        "process_cpu_seconds_total",
        "process_resident_memory_bytes",
        "process_threads",
        "process_open_fds",
        "process_max_fds",
        "process_start_time_seconds",
        "procmon_cpu_percent",
    ] {
        assert!(
            body.contains(&format!("\n# HELP {name} ")),
            "no HELP for {name}"
        );
        assert!(
            body.contains(&format!("\n# TYPE {name} ")),
            "no TYPE for {name}"
        );
    }
    assert!(body.contains("# TYPE process_cpu_seconds_total counter\n"));
    assert!(body.contains("# TYPE process_threads gauge\n"));
    assert!(metric(&body, "process_threads") >= 1.0);
    assert!(metric(&body, "process_resident_memory_bytes") > 0.0);
    assert!(metric(&body, "process_open_fds") >= 3.0);
    assert!(metric(&body, "process_cpu_seconds_total") >= 0.0);
    assert_eq!(metric(&body, "procmon_up"), 1.0);
    let pid = server.child.id();
    assert!(body.contains(&format!("process_info{{pid=\"{pid}\",name=\"procmon\"}} 1")));
}

#[test]
fn overview_links_the_chart_and_the_chart_is_svg() {
    need!("curl");
    let server = Proc::start(EXE, &["--port", "0", "--interval", "0.1"]);
    let (code, content_type, html) = curl(&server, "/", &[]);
    assert_eq!(code, 200);
    assert_eq!(content_type, "text/html; charset=utf-8");
    assert!(html.starts_with("<!DOCTYPE html>"), "{html}");
    assert!(html.contains("href=\"/cpu.svg\"") && html.contains("src=\"/cpu.svg\""));
    assert!(html.contains("href=\"/metrics\""));
    assert!(html.contains("<th>Threads</th>"));
    assert!(html.contains("<th>Open files</th>"));
    assert!(html.trim_end().ends_with("</html>"));

    std::thread::sleep(Duration::from_millis(500)); // a few chart points
    let (code, content_type, svg) = curl(&server, "/cpu.svg", &[]);
    assert_eq!(code, 200);
    assert_eq!(content_type, "image/svg+xml");
    assert!(svg.starts_with("<svg"), "{svg}");
    assert!(svg.trim_end().ends_with("</svg>"));
    // The samples are one polyline in the series colour (the axes are
    // polylines too, in black), with a point per sample taken so far.
    let series = svg
        .split("<polyline")
        .skip(1)
        .map(|tag| tag.split("/>").next().unwrap())
        .find(|tag| tag.contains("stroke=\"#1F77B4\""))
        .unwrap_or_else(|| panic!("no line of samples in {svg}"));
    let points = series.split("points=\"").nth(1).unwrap();
    let points = points.split('"').next().unwrap().split_whitespace().count();
    assert!(points >= 2, "{series}");
}

#[test]
fn unknown_paths_are_404_and_other_methods_405() {
    need!("curl");
    let server = Proc::start(EXE, &["--port", "0"]);
    assert_eq!(curl(&server, "/nope", &[]).0, 404);
    assert_eq!(curl(&server, "/metrics/", &[]).0, 404);
    assert_eq!(
        curl(&server, "/metrics", &["-X", "POST", "-d", "x=1"]).0,
        405
    );
    // HEAD: the GET headers, no body.
    let (code, _, body) = curl(&server, "/metrics", &["-I"]);
    assert_eq!(code, 200);
    assert!(body.contains("Content-Length: "), "{body}");
    assert!(!body.contains("# HELP"), "{body}");
}

#[test]
fn garbage_and_oversized_requests_get_400() {
    let server = Proc::start(EXE, &["--port", "0"]);
    let reply = exchange(&server, b"\x16\x03\x01\x02\x00garbage\r\n\r\n");
    assert!(
        reply.starts_with("HTTP/1.1 400 Bad Request\r\n"),
        "{reply:?}"
    );
    assert!(reply.contains("Connection: close\r\n"));
    let reply = exchange(&server, b"GET / HTTP/9.9\r\n\r\n");
    assert!(reply.starts_with("HTTP/1.1 400 "), "{reply:?}");
    // A head that never ends is refused once past 8 KiB, not buffered.
    let mut big = b"GET / HTTP/1.1\r\nX-Filler: ".to_vec();
    big.resize(big.len() + 20 * 1024, b'a');
    let reply = exchange(&server, &big);
    assert!(reply.starts_with("HTTP/1.1 400 "), "{reply:?}");
    // The server carries on.
    let reply = exchange(&server, b"GET /metrics HTTP/1.0\r\n\r\n");
    assert!(reply.starts_with("HTTP/1.1 200 OK\r\n"), "{reply:?}");
}

#[test]
fn pipelined_requests_are_answered_in_order() {
    let server = Proc::start(EXE, &["--port", "0"]);
    let reply = exchange(
        &server,
        b"GET /metrics HTTP/1.1\r\nHost: a\r\n\r\n\
          HEAD / HTTP/1.1\r\nHost: a\r\n\r\n\
          GET /missing HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n\
          GET /never-answered HTTP/1.1\r\n\r\n",
    );
    let statuses: Vec<&str> = reply.split("HTTP/1.1 ").skip(1).map(|r| &r[..3]).collect();
    assert_eq!(statuses, ["200", "200", "404"], "{reply}");
    assert!(reply.contains("# TYPE process_threads gauge"));
    assert!(!reply.contains("<!DOCTYPE"), "HEAD sent a body");
}

/// A client that pipelines requests and never reads the answers: once
/// 64 KiB of answers wait, the server stops reading it, so its requests back
/// up in the kernel and its writes block, instead of the server's memory
/// growing with every request.
#[test]
fn a_client_that_never_reads_answers_is_not_buffered() {
    let server = Proc::start(EXE, &["--port", "0"]);
    let before = server.rss_kib();
    let mut s = server.connect();
    s.set_write_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let batch = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n".repeat(2000); // ~2 KiB of HTML each
    let mut sent = 0usize;
    while sent < 64 << 20 {
        match s.write(&batch) {
            Ok(n) => sent += n,
            Err(_) => break, // blocked: the server stopped reading
        }
    }
    let after = server.rss_kib();
    assert!(
        sent < 64 << 20,
        "the server kept reading {sent} bytes of requests"
    );
    assert!(
        after < before + 8 * 1024,
        "server RSS grew from {before} KiB to {after} KiB"
    );
    // Everyone else is still served.
    let reply = exchange(&server, b"GET /metrics HTTP/1.0\r\n\r\n");
    assert!(reply.starts_with("HTTP/1.1 200 OK\r\n"), "{reply:?}");
}

#[test]
fn a_request_that_never_completes_is_closed_at_the_deadline() {
    let server = Proc::start(EXE, &["--port", "0", "--timeout", "0.5"]);
    let mut s = server.connect();
    let start = Instant::now();
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: slow").unwrap();
    let mut buf = [0u8; 64];
    assert_eq!(s.read(&mut buf).expect("closed, not reset"), 0);
    let took = start.elapsed();
    assert!(
        took >= Duration::from_millis(400) && took < Duration::from_secs(3),
        "closed after {took:?}"
    );
}

#[test]
fn watches_another_process_until_it_exits() {
    let mut target = Command::new("sleep").arg("30").spawn().expect("sleep");
    let pid = target.id().to_string();
    let server = Proc::start(EXE, &["--port", "0", "--pid", &pid, "--interval", "0.1"]);
    let body = exchange(&server, b"GET /metrics HTTP/1.0\r\n\r\n");
    assert!(body.contains(&format!("process_info{{pid=\"{pid}\",name=\"sleep\"}} 1")));
    assert!(metric(&body, "process_threads") >= 1.0);
    target.kill().unwrap();
    target.wait().unwrap();
    // Within a few intervals, it reports the process gone and exports
    // nothing stale.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let body = exchange(&server, b"GET /metrics HTTP/1.0\r\n\r\n");
        if body.contains("\nprocmon_up 0\n") {
            assert!(!body.contains("process_threads"), "{body}");
            break;
        }
        assert!(Instant::now() < deadline, "still up: {body}");
        std::thread::sleep(Duration::from_millis(100));
    }
    let html = exchange(&server, b"GET / HTTP/1.0\r\n\r\n");
    assert!(html.contains("Sampling failed"), "{html}");
}

#[test]
fn a_process_that_does_not_exist_is_an_error() {
    let out = run_with_timeout(
        Command::new(EXE).args(["--port", "0", "--pid", "4194305"]),
        Duration::from_secs(10),
    );
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("cannot read /proc/4194305"), "{stderr}");
}

/// wrk keeps 20 connections busy for 2 s; every request must succeed, no
/// connection may be left behind, and a request afterwards is answered at
/// once. Throughput is not asserted here (see the benchmarks).
#[test]
fn survives_wrk_and_answers_promptly_afterwards() {
    need!("wrk");
    need!("curl");
    let mut server = Proc::start(EXE, &["--port", "0", "--interval", "0.1"]);
    // The first sample is taken before the loop exists: wait for later ones.
    std::thread::sleep(Duration::from_millis(300));
    let fds_before = metric(&curl(&server, "/metrics", &[]).2, "process_open_fds");
    let url = format!("http://{}/metrics", server.addr);
    let out = run_with_timeout(
        Command::new("wrk").args(["-t1", "-c20", "-d2s", &url]),
        Duration::from_secs(30),
    );
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "wrk failed: {report}");
    let requests: u64 = report
        .lines()
        .find(|l| l.contains(" requests in "))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no request count in {report}"));
    assert!(requests > 100, "only {requests} requests: {report}");
    assert!(!report.contains("Socket errors"), "{report}");
    assert!(!report.contains("Non-2xx"), "{report}");
    assert!(
        server.child.try_wait().unwrap().is_none(),
        "procmon exited under load"
    );

    let start = Instant::now();
    let (code, _, html) = curl(&server, "/", &[]);
    let took = start.elapsed();
    assert_eq!(code, 200);
    assert!(html.contains("<h1>procmon"));
    // A generous bound for a shared CI machine; a stuck loop would hit
    // curl's 5 s limit.
    assert!(
        took < Duration::from_secs(2),
        "took {took:?} after the load"
    );

    // wrk's connections are all closed again.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let fds = metric(&curl(&server, "/metrics", &[]).2, "process_open_fds");
        if fds <= fds_before + 1.0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{fds} descriptors open, {fds_before} before the load"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}
