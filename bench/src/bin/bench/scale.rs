//! Scenarios 3 and 4: timers, and idle connections at scale.

use super::*;

// ---------------------------------------------------------------- timers

pub(crate) fn timers(o: &Opts, md: &mut String) -> Res<()> {
    let sizes = [1_000usize, 100_000, 1_000_000];
    let mut r: Vec<[Vec<f64>; 3]> = vec![Default::default(); sizes.len()];
    for _ in 0..o.reps {
        let out = pinned(o, 0, &o.bin.join("timers")).output()?;
        let text = String::from_utf8_lossy(&out.stdout);
        for (i, line) in text.lines().enumerate().take(sizes.len()) {
            r[i][0].push(field(line, "schedule_ns")?);
            r[i][1].push(field(line, "cancel_ns")?);
            r[i][2].push(field(line, "fire_ns")?);
        }
    }
    writeln!(md, "## 4. Timers\n")?;
    writeln!(md, "`timers` (netlib `Context::add_timer` / `cancel_timer` / firing by `run_once`), one-shot boxed callbacks with scattered due times, {} repetitions, ns per timer:\n", o.reps)?;
    writeln!(md, "| timers | schedule ns | cancel ns | fire ns |")?;
    writeln!(md, "|---|---|---|---|")?;
    for (i, n) in sizes.iter().enumerate() {
        writeln!(
            md,
            "| {n} | {} | {} | {} |",
            mm(&r[i][0], 1),
            mm(&r[i][1], 1),
            mm(&r[i][2], 1)
        )?;
    }
    writeln!(md)?;
    Ok(())
}

// ---------------------------------------------------------------- connection scale

pub(crate) fn rss_kib(pid: u32) -> Res<f64> {
    let st = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let line = st
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .ok_or("no VmRSS")?;
    Ok(line.split_whitespace().nth(1).ok_or("bad VmRSS")?.parse()?)
}

pub(crate) fn fd_count(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count())
}

pub(crate) fn conn_scale(o: &Opts, md: &mut String) -> Res<()> {
    let idle_secs = 10.0;
    writeln!(md, "## 3. Connection scale\n")?;
    writeln!(md, "`conn_scale server` (ImServer, heartbeat 300 s and idle 600 s deadlines armed on every connection, i.e. one netlib timer each) holds N idle connections opened by `conn_scale client` (blocking sockets, source addresses spread over 127.0.0.2.. in blocks of 30 000). RSS per connection = (VmRSS with N connections - VmRSS before) / N: user-space memory plus the pages the kernel charged to the process, not socket buffers. Idle CPU = server utime+stime over {idle_secs} s with all N connected. One repetition per size. Past one process's descriptor limit, see 8a: the same server as several worker processes.\n")?;
    writeln!(md, "| connections | RSS before KiB | RSS after KiB | bytes per connection | idle CPU % of a core | <= 1 KiB/conn | < 1% CPU |")?;
    writeln!(md, "|---|---|---|---|---|---|---|")?;
    // What the server process may open: it inherits our limit, raised as far
    // as the hard limit allows.
    let nofile = bench::raise_nofile(200_000) as usize;
    for n in [10_000usize, 50_000, 100_000] {
        if n + 100 > nofile {
            // Trying anyway only fails half-way and leaves thousands of
            // TIME_WAIT sockets that starve the next scenario of ports.
            eprintln!("conn_scale {n}: skipped, RLIMIT_NOFILE allows {nofile}");
            writeln!(
                md,
                "| {n} | - | - | - | - | skipped: RLIMIT_NOFILE hard limit here is {nofile} (needs about {}) | |",
                n + 100
            )?;
            continue;
        }
        let addr = free_addr()?;
        let mut sc = pinned(o, 0, &o.bin.join("conn_scale"));
        let mut server = sc.arg("server").arg(addr.to_string()).spawn()?;
        let t = Instant::now();
        while TcpStream::connect(addr).is_err() {
            if t.elapsed() > Duration::from_secs(10) {
                let _ = server.kill();
                return Err("conn_scale server did not start".into());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        std::thread::sleep(Duration::from_millis(300));
        let pid = server.id();
        let rss0 = rss_kib(pid)?;
        let base_fds = fd_count(pid);
        let mut cc = pinned(o, 1, &o.bin.join("conn_scale"));
        let mut client = cc
            .arg("client")
            .arg(addr.to_string())
            .arg(n.to_string())
            .stdout(Stdio::null())
            .spawn()?;
        let t = Instant::now();
        let mut ok = true;
        while fd_count(pid) < base_fds + n {
            if t.elapsed() > Duration::from_secs(120) || client.try_wait()?.is_some() {
                ok = false;
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let setup = t.elapsed().as_secs_f64();
        if !ok {
            writeln!(
                md,
                "| {n} | {rss0:.0} | - | - | - | failed: {} of {n} connected | |",
                fd_count(pid) - base_fds
            )?;
        } else {
            std::thread::sleep(Duration::from_secs(1));
            let rss1 = rss_kib(pid)?;
            let c0 = cpu_ticks(pid)?;
            std::thread::sleep(Duration::from_secs_f64(idle_secs));
            let c1 = cpu_ticks(pid)?;
            let per = (rss1 - rss0) * 1024.0 / n as f64;
            let cpu = (c1 - c0) as f64 / clk_tck() / idle_secs * 100.0;
            eprintln!(
                "conn_scale {n}: {per:.0} B/conn, {cpu:.2}% CPU idle (connected in {setup:.1} s)"
            );
            writeln!(
                md,
                "| {n} | {rss0:.0} | {rss1:.0} | {per:.0} | {cpu:.2} | {} | {} |",
                verdict(per <= 1024.0),
                verdict(cpu < 1.0)
            )?;
        }
        let _ = client.kill();
        let _ = client.wait();
        let _ = server.kill();
        let _ = server.wait();
    }
    writeln!(md)?;
    Ok(())
}
