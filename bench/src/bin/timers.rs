//! Timer costs of the netlib dispatcher: schedule, cancel and fire N
//! one-shot callback timers. Prints one line per N:
//! `timers N schedule_ns S cancel_ns C fire_ns F` (ns per timer).
//!
//! `timers [N...]` (default 1000 100000 1000000)
//!
//! Schedule: N `add_timer` calls with due times spread over 1..10 s.
//! Cancel: `cancel_timer` on all of them, in scheduling order.
//! Fire: N timers due within 10 ms, then, after they are all due, the loop
//! turns (`run_once`) until every callback ran; the time of those turns / N.

use netlib::{Context, EventDispatch, TimerId};
use std::cell::Cell;
use std::rc::Rc;
use std::time::{Duration, Instant};

fn spread(i: usize, n: usize, span: Duration) -> Duration {
    // A deterministic scatter (not in order), as real deadlines arrive.
    let k = (i as u64).wrapping_mul(2_654_435_761) % n as u64;
    span.mul_f64(k as f64 / n as f64)
}

fn one(n: usize) -> Result<(f64, f64, f64), Box<dyn std::error::Error>> {
    let mut dispatch = EventDispatch::new()?;
    let ctx: &mut Context = dispatch.context();
    let mut ids: Vec<TimerId> = Vec::with_capacity(n);
    let t = Instant::now();
    for i in 0..n {
        let d = Duration::from_secs(1) + spread(i, n, Duration::from_secs(9));
        ids.push(ctx.add_timer(d, |_, _| {}));
    }
    let schedule = t.elapsed().as_nanos() as f64 / n as f64;
    let t = Instant::now();
    for id in &ids {
        ctx.cancel_timer(*id);
    }
    let cancel = t.elapsed().as_nanos() as f64 / n as f64;

    let fired = Rc::new(Cell::new(0usize));
    for i in 0..n {
        let f = fired.clone();
        ctx.add_timer(spread(i, n, Duration::from_millis(10)), move |_, _| {
            f.set(f.get() + 1)
        });
    }
    std::thread::sleep(Duration::from_millis(20));
    let t = Instant::now();
    while fired.get() < n {
        dispatch.run_once(Some(Duration::ZERO))?;
    }
    let fire = t.elapsed().as_nanos() as f64 / n as f64;
    Ok((schedule, cancel, fire))
}

/// Timer cost: schedule, cancel and fire N timers on one dispatcher.
#[derive(clap::Parser)]
#[command(name = "timers")]
struct Args {
    /// Timer counts to measure [default: 1000 100000 1000000]
    sizes: Vec<usize>,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut sizes = <Args as clap::Parser>::parse().sizes;
    if sizes.is_empty() {
        sizes = vec![1_000, 100_000, 1_000_000];
    }
    for n in sizes {
        let (s, c, f) = one(n)?;
        println!("timers {n} schedule_ns {s:.1} cancel_ns {c:.1} fire_ns {f:.1}");
    }
    Ok(())
}
