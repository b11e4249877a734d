//! Scenarios 6 and 7: the servers on a loop group against tokio's
//! multi-thread runtime, and this build against an earlier one.

use super::*;
use crate::pdu::{pdu_args, PDU_SERVERS};
use crate::pingpong::{parse_bytes_read, pingpong_args, PP_SERVERS};

// ------------------------------------------------------- one loop per thread

/// Median of each server's runs of one point: client output parsed by
/// `parse` into (units per second, units), server CPU seconds.
pub(crate) struct Runs {
    rate: Vec<Vec<f64>>,
    cpu_per_unit: Vec<Vec<f64>>,
}

impl Runs {
    fn new(n: usize) -> Runs {
        Runs {
            rate: vec![Vec::new(); n],
            cpu_per_unit: vec![Vec::new(); n],
        }
    }

    /// One table row comparing the first two servers: rate, rate ratio,
    /// CPU per unit, CPU ratio.
    fn row(&self, md: &mut String, label: &str, prec: usize) -> Res<()> {
        let (r, c) = (&self.rate, &self.cpu_per_unit);
        writeln!(
            md,
            "| {label} | {} | {} | {} | {} | {} | {} |",
            mm(&r[0], prec),
            mm(&r[1], prec),
            ratio(median(&r[0]), median(&r[1])),
            mm(&c[0], 3),
            mm(&c[1], 3),
            ratio(median(&c[0]), median(&c[1])),
        )?;
        Ok(())
    }
}

/// Runs `client` against each of `servers` (program, extra args), `reps`
/// times interleaved; `units` turns the client output into (rate, units
/// moved) and `cpu_scale` the server CPU seconds into CPU per unit.
#[allow(clippy::too_many_arguments)]
pub(crate) fn compare(
    o: &Opts,
    servers: &[(PathBuf, Vec<&str>)],
    pin: bool,
    client: &str,
    args: &dyn Fn(SocketAddr) -> Vec<String>,
    alloc_from: f64,
    units: &dyn Fn(&str) -> Res<(f64, f64)>,
    cpu_scale: f64,
) -> Res<Runs> {
    let mut runs = Runs::new(servers.len());
    for _ in 0..o.reps {
        for (i, (prog, extra)) in servers.iter().enumerate() {
            let s = Server::start_with(o, prog, extra, pin)?;
            let (out, cpu, _, _) = measure_with(o, &s, client, &args(s.addr), alloc_from, pin)?;
            let (rate, moved) = units(&out)?;
            runs.rate[i].push(rate);
            runs.cpu_per_unit[i].push(cpu * cpu_scale / moved.max(1.0));
        }
    }
    Ok(runs)
}

pub(crate) fn pingpong_units(out: &str) -> Res<(f64, f64)> {
    let bytes = parse_bytes_read(out)?;
    let mib = out
        .split(',')
        .next_back()
        .and_then(|s| s.split_whitespace().next())
        .and_then(|s| s.parse::<f64>().ok())
        .ok_or("no MiB/s")?;
    Ok((mib, bytes / (1u64 << 30) as f64))
}

/// (frames/s, frames over warm-up plus measurement) of a pdu_echo_client run.
pub(crate) fn pdu_units(secs: f64) -> impl Fn(&str) -> Res<(f64, f64)> {
    move |out: &str| {
        let frames = field(out, "frames")?;
        Ok((field(out, "fps")?, frames * (1.0 + secs) / secs))
    }
}

/// Scenario 6: the servers on two loops (netlib's loop group) against
/// tokio's multi-thread runtime with two workers.
pub(crate) fn group(o: &Opts, md: &mut String) -> Res<()> {
    let two = vec!["--threads", "2"];
    writeln!(md, "## 6. One loop per thread\n")?;
    writeln!(md, "The same servers on two event loops - netlib's `LoopGroup` through `imconn::ServerGroup` (`--threads 2`: two loops, one SO_REUSEPORT listener each) - against tokio's multi-thread runtime with two workers (`--threads 2`). Nothing is pinned: with 2 cores the servers' two threads and the load generator share them, so raw throughput mostly measures who leaves the client more CPU; server CPU per unit of work is the steadier figure. {} s per point, {} repetitions, interleaved.\n", o.seconds, o.reps)?;
    writeln!(md, "| workload | netlib 2 loops | tokio 2 workers | ratio | netlib server CPU | tokio server CPU | ratio |")?;
    writeln!(md, "|---|---|---|---|---|---|---|")?;
    let pp: Vec<(PathBuf, Vec<&str>)> = PP_SERVERS
        .iter()
        .map(|(_, bin)| (o.bin.join(bin), two.clone()))
        .collect();
    for (block, sessions) in [(16384usize, 10usize), (16384, 100), (4096, 100)] {
        let secs = o.seconds;
        let args = move |addr| pingpong_args(addr, sessions, block, secs);
        let r = compare(o, &pp, false, "pingpong", &args, 1.0, &pingpong_units, 1.0)?;
        eprintln!(
            "group pingpong {block} B x {sessions}: netlib {:.1} MiB/s, tokio {:.1} MiB/s",
            median(&r.rate[0]),
            median(&r.rate[1])
        );
        r.row(
            md,
            &format!("pingpong {block} B x {sessions} sessions (MiB/s; CPU s/GiB)"),
            1,
        )?;
    }
    let pdu: Vec<(PathBuf, Vec<&str>)> = PDU_SERVERS[..2]
        .iter()
        .map(|(_, bin, _)| (o.bin.join(bin), two.clone()))
        .collect();
    let args = |addr| pdu_args(o, addr, "teamtalk", o.seconds);
    let r = compare(
        o,
        &pdu,
        false,
        "pdu_echo_client",
        &args,
        1.1,
        &pdu_units(o.seconds),
        1e6,
    )?;
    eprintln!(
        "group pdu echo: netlib {:.0} frames/s, tokio {:.0} frames/s",
        median(&r.rate[0]),
        median(&r.rate[1])
    );
    r.row(
        md,
        "PDU echo, 100 conns x 16 in flight (frames/s; CPU µs/frame)",
        0,
    )?;
    writeln!(md)?;
    Ok(())
}

/// Scenario 7: this build's single-loop servers against an earlier
/// build's, in the same run (is the codec-generic server as cheap as the
/// PDU-only one it replaced?).
pub(crate) fn baseline(o: &Opts, md: &mut String) -> Res<()> {
    let Some(dir) = &o.baseline else {
        eprintln!("baseline: no --baseline directory; skipped");
        return Ok(());
    };
    let rev = std::fs::read_to_string(dir.join("REVISION")).unwrap_or_else(|_| "?".into());
    writeln!(md, "## 7. Against the previous connection layer\n")?;
    writeln!(md, "This build's single-loop servers against the same servers built from commit {} (before the codec-generic `imconn::Server`; PDU echo then ran on the PDU-only `ImServer`, pingpong on a hand-written handler), pinned as in sections 1 and 2, interleaved, {} s per point, {} repetitions.\n", rev.trim(), o.seconds, o.reps)?;
    writeln!(md, "| workload | this build | baseline | ratio | this build server CPU | baseline server CPU | ratio |")?;
    writeln!(md, "|---|---|---|---|---|---|---|")?;
    let pdu = vec![
        (o.bin.join("pdu_echo_server"), vec![]),
        (dir.join("pdu_echo_server"), vec![]),
    ];
    let args = |addr| pdu_args(o, addr, "teamtalk", o.seconds);
    let r = compare(
        o,
        &pdu,
        true,
        "pdu_echo_client",
        &args,
        1.1,
        &pdu_units(o.seconds),
        1e6,
    )?;
    r.row(md, "PDU echo (frames/s; CPU µs/frame)", 0)?;
    let pp = vec![
        (o.bin.join("netlib_pingpong_server"), vec![]),
        (dir.join("netlib_pingpong_server"), vec![]),
    ];
    for (block, sessions) in [(16384usize, 10usize), (16384, 100), (4096, 100)] {
        let secs = o.seconds;
        let args = move |addr| pingpong_args(addr, sessions, block, secs);
        let r = compare(o, &pp, true, "pingpong", &args, 1.0, &pingpong_units, 1.0)?;
        r.row(
            md,
            &format!("pingpong {block} B x {sessions} (MiB/s; CPU s/GiB)"),
            1,
        )?;
    }
    writeln!(md)?;
    Ok(())
}
