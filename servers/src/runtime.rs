//! What every server binary does around its dispatcher: logging, announcing
//! the bound addresses (tests start the binaries on port 0 and read these
//! lines), and stopping cleanly on SIGINT/SIGTERM.

use netlib::Poster;
use std::net::SocketAddr;

/// Initialises `env_logger` with `info` as the default level.
pub fn init_logging() {
    let _ = env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info"))
        .format_timestamp_millis()
        .try_init();
}

/// Prints `LISTEN <name> <addr>` on stdout, flushed, for scripts and tests.
pub fn announce(name: &str, addr: SocketAddr) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "LISTEN {name} {addr}");
    let _ = out.flush();
}

/// Stops the loop behind `poster` when SIGINT or SIGTERM arrives. The
/// signal is caught on a helper thread, never in the loop.
pub fn stop_on_signals(poster: Poster) -> std::io::Result<()> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM])?;
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            if let Some(sig) = signals.forever().next() {
                log::info!("signal {sig}: shutting down");
                poster.stop();
            }
        })?;
    Ok(())
}
