//! What a step reports: the CPU readings taken at its start and end
//! ([`Cpu`]) and its `im_step` line ([`Gen::report`]), written by [`out`].

use crate::gen::Gen;
use crate::sys::{proc_cpu, self_cpu, tree_cpu};
use std::fmt::Write as _;
use std::io::Write as _;
use std::time::Instant;

/// CPU seconds used so far, read at the start and the end of a step.
#[derive(Clone, Default)]
pub(crate) struct Cpu {
    /// This process.
    gen: f64,
    /// Every msg_server, summed.
    servers: f64,
    /// Each watched process tree, in the order of [`Gen::watch`].
    watched: Vec<f64>,
}

impl Gen {
    /// CPU seconds used so far by the msg_servers, summed.
    pub(crate) fn servers_cpu(&self) -> f64 {
        self.server_pids.iter().map(|p| proc_cpu(*p)).sum()
    }

    /// CPU used so far by this process, the msg_servers and the watched trees.
    pub(crate) fn cpu_now(&self) -> Cpu {
        Cpu {
            gen: self_cpu(),
            servers: self.servers_cpu(),
            watched: self.watch.iter().map(|(_, p)| tree_cpu(*p)).collect(),
        }
    }

    /// Prints the current step's `im_step` line with `result`; takes the
    /// closing CPU reading if the step has none yet.
    pub(crate) fn report(&mut self, result: &str) {
        if self.step.as_ref().is_some_and(|s| s.wall1 <= s.wall0) {
            let cpu1 = self.cpu_now();
            let s = self.step.as_mut().unwrap();
            s.wall1 = Instant::now();
            s.cpu1 = cpu1;
        }
        let Some(s) = &self.step else { return };
        let wall = (s.wall1 - s.wall0).as_secs_f64();
        let (acked, received) = s.at_drain.unwrap_or((s.acked, s.received));
        let h = &self.hist;
        // CPU per message: seconds used over the step and its drain, per
        // message sent, in microseconds.
        let per_msg = |secs: f64| secs * 1e6 / s.sent.max(1) as f64;
        let mut extra = format!(
            " servers {} server_us_per_msg {:.1} gen_us_per_msg {:.1}",
            self.addrs.len(),
            per_msg(s.cpu1.servers - s.cpu0.servers),
            per_msg(s.cpu1.gen - s.cpu0.gen),
        );
        for (i, (name, _)) in self.watch.iter().enumerate() {
            let used = s.cpu1.watched[i] - s.cpu0.watched[i];
            let _ = write!(
                extra,
                " {name}_cpu {:.2} {name}_us_per_msg {:.1}",
                used / wall,
                per_msg(used)
            );
        }
        for (name, h) in [("same", &self.split.same), ("cross", &self.split.cross)] {
            let _ = write!(
                extra,
                " {name}_n {} {name}_p50_us {} {name}_p99_us {}",
                h.len(),
                h.value_at_quantile(0.5),
                h.value_at_quantile(0.99)
            );
        }
        out(&format!(
            "im_step users {} kind {} target {} sent {} secs {:.3} rate {:.0} acked {} received {} dup {} missing {} p50_us {} p99_us {} p999_us {} max_us {} gen_cpu {:.2} server_cpu {:.2}{extra} result {result}",
            self.users,
            s.kind.name(),
            s.target,
            s.sent,
            s.send_secs,
            s.sent as f64 / s.send_secs,
            acked,
            received,
            s.dup,
            s.sent - received,
            h.value_at_quantile(0.5),
            h.value_at_quantile(0.99),
            h.value_at_quantile(0.999),
            h.max(),
            (s.cpu1.gen - s.cpu0.gen) / wall,
            (s.cpu1.servers - s.cpu0.servers) / wall,
        ));
    }
}

/// Prints one line and flushes it (the driver reads lines as they come).
pub(crate) fn out(line: &str) {
    let mut o = std::io::stdout().lock();
    let _ = writeln!(o, "{line}");
    let _ = o.flush();
}
