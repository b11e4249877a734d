//! What im_bench asks of the operating system: CPU time used by itself and
//! by msg_server (for the CPU columns of `im_step`), and pinning itself to a
//! core.

pub(crate) fn self_cpu() -> f64 {
    // SAFETY: `rusage` is plain old data, so all-zero is a valid value, and
    // getrusage writes only into the local struct we point it at.
    unsafe {
        let mut ru: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut ru);
        let t = |v: libc::timeval| v.tv_sec as f64 + v.tv_usec as f64 / 1e6;
        t(ru.ru_utime) + t(ru.ru_stime)
    }
}

pub(crate) fn proc_cpu(pid: u32) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return f64::NAN;
    };
    let Some(i) = stat.rfind(')') else {
        return f64::NAN;
    };
    let f: Vec<&str> = stat[i + 2..].split_whitespace().collect();
    let ticks: u64 = f[11].parse::<u64>().unwrap_or(0) + f[12].parse::<u64>().unwrap_or(0);
    // SAFETY: sysconf only reads a configuration value.
    ticks as f64 / unsafe { libc::sysconf(libc::_SC_CLK_TCK) as f64 }
}

pub(crate) fn pin_self(core: usize) {
    // SAFETY: `cpu_set_t` is plain old data (all-zero is valid); the CPU_*
    // macros and sched_setaffinity touch only the local set, whose size we pass.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_ZERO(&mut set);
        libc::CPU_SET(core, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
    }
}
