//! Scenario 2: TeamTalk PDU echo against tokio-util and message-io.

use super::*;

// ---------------------------------------------------------------- PDU echo

pub(crate) const PDU_SERVERS: [(&str, &str, &str); 3] = [
    ("netlib ImServer", "pdu_echo_server", "teamtalk"),
    (
        "tokio + LengthDelimitedCodec",
        "tokio_pdu_echo_server",
        "teamtalk",
    ),
    (
        "message-io FramedTcp",
        "messageio_pdu_echo_server",
        "message-io",
    ),
];

pub(crate) fn pdu_args(o: &Opts, addr: SocketAddr, framing: &str, secs: f64) -> Vec<String> {
    let _ = o;
    [
        "--connect",
        &addr.to_string(),
        "--conns",
        "100",
        "--inflight",
        "16",
        "--warmup",
        "1",
        "--seconds",
        &secs.to_string(),
        "--framing",
        framing,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

pub(crate) fn pdu_echo(o: &Opts, md: &mut String) -> Res<()> {
    let n = PDU_SERVERS.len();
    let mut fps = vec![Vec::new(); n];
    let mut cpu_us = vec![Vec::new(); n];
    let mut p50 = vec![Vec::new(); n];
    let mut p99 = vec![Vec::new(); n];
    let mut p999 = vec![Vec::new(); n];
    let mut allocs = vec![Vec::new(); n];
    for _ in 0..o.reps {
        for (i, (_, bin, framing)) in PDU_SERVERS.iter().enumerate() {
            let s = Server::start(o, bin)?;
            let args = pdu_args(o, s.addr, framing, o.seconds);
            let (out, cpu, a, _) = measure(o, &s, "pdu_echo_client", &args, 1.1)?;
            let frames = field(&out, "frames")?;
            fps[i].push(field(&out, "fps")?);
            p50[i].push(field(&out, "p50_us")?);
            p99[i].push(field(&out, "p99_us")?);
            p999[i].push(field(&out, "p999_us")?);
            // CPU over warm-up + measurement; frames only over measurement:
            // scale frames by the ratio of the two windows.
            let all_frames = frames * (1.0 + o.seconds) / o.seconds;
            cpu_us[i].push(cpu * 1e6 / all_frames);
            allocs[i].push(a as f64 / frames);
        }
    }
    for i in 0..n {
        eprintln!(
            "pdu echo {}: {:.0} frames/s",
            PDU_SERVERS[i].0,
            median(&fps[i])
        );
    }
    let mut sys = vec![f64::NAN; n];
    if o.strace {
        for (i, (_, bin, framing)) in PDU_SERVERS.iter().enumerate() {
            let s = Server::start(o, bin)?;
            let mut args = pdu_args(o, s.addr, framing, 2.0);
            args[7] = "0.1".into();
            let (calls, out) = count_syscalls(o, &s, "pdu_echo_client", &args)?;
            let frames = field(&out, "frames")? * 2.1 / 2.0;
            sys[i] = calls as f64 / frames;
        }
    }
    writeln!(md, "## 2. PDU echo\n")?;
    writeln!(md, "TeamTalk frames (16-byte header, 64-byte body), 100 connections, 16 frames in flight each, 1 s warm-up then {} s measured, {} repetitions. Load generator: `pdu_echo_client` (netlib; answers all frames of one read with one write; latency = send to echo received, hdrhistogram, includes queueing behind the 15 other frames in flight). message-io's FramedTcp has its own framing (varint length), so against it each TeamTalk frame is prefixed by one length byte. CPU per frame = server utime+stime over the client run / frames echoed. Syscalls per frame from a separate 2 s run under `strace -c -f -p` (throughput under strace is lower; the count per frame is what matters).\n", o.seconds, o.reps)?;
    writeln!(md, "| server | frames/s | p50 µs | p99 µs | p999 µs | CPU µs/frame | syscalls/frame | allocs/frame |")?;
    writeln!(md, "|---|---|---|---|---|---|---|---|")?;
    for i in 0..n {
        writeln!(
            md,
            "| {} | {} | {} | {} | {} | {} | {:.3} | {:.4} |",
            PDU_SERVERS[i].0,
            mm(&fps[i], 0),
            mm(&p50[i], 0),
            mm(&p99[i], 0),
            mm(&p999[i], 0),
            mm(&cpu_us[i], 3),
            sys[i],
            median(&allocs[i])
        )?;
    }
    let fr = median(&fps[0]) / median(&fps[1]);
    let cr = median(&cpu_us[0]) / median(&cpu_us[1]);
    let sr = sys[0] / sys[1];
    writeln!(md, "\nRatios netlib / tokio-util: frames/s {fr:.2}x (target >= 1.3x: {}), CPU per frame {cr:.2}x (target <= 0.7x: {}), syscalls per frame {sr:.2}x (target <= 0.7x: {}).", verdict(fr >= 1.3), verdict(cr <= 0.7), verdict(sr <= 0.7))?;
    writeln!(md, "Ratios netlib / message-io: frames/s {:.2}x, CPU per frame {:.2}x, syscalls per frame {:.2}x.\n",
        median(&fps[0]) / median(&fps[2]), median(&cpu_us[0]) / median(&cpu_us[2]), sys[0] / sys[2])?;
    Ok(())
}
