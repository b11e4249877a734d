//! msg_server: `msg_server [-c msgserver.conf] [--Key value ...]`.
//!
//! With no file it listens on 127.0.0.1:8000 and registers with a
//! login_server on 127.0.0.1:8100 only if `LoginServerIP1`/`LoginServerPort1`
//! are given. See `servers/conf/msgserver.conf` for the keys.

use netlib::EventDispatch;
use servers::config::Config;
use servers::{msg, runtime};

fn main() {
    runtime::init_logging();
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let Err(e) = run(&args) {
        log::error!("msg_server: {e}");
        eprintln!("msg_server: {e}");
        std::process::exit(1);
    }
}

fn run(args: &[String]) -> Result<(), Box<dyn std::error::Error>> {
    let (config, _) = Config::from_args(args)?;
    let settings = msg::Settings::from_config(&config)?;
    let mut dispatch = EventDispatch::new()?;
    let (_, bound) = msg::start(dispatch.context(), settings)?;
    for addr in bound {
        runtime::announce("client", addr);
    }
    runtime::stop_on_signals(dispatch.poster())?;
    dispatch.run()?;
    log::info!("msg_server stopped");
    Ok(())
}
