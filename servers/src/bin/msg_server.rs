//! msg_server: `msg_server [-c msgserver.conf] [--Key value ...]`.
//!
//! With no file it listens on 127.0.0.1:8000 and registers with a
//! login_server on 127.0.0.1:8100 only if `LoginServerIP1`/`LoginServerPort1`
//! are given. `--help` lists the keys with their defaults; see also
//! `servers/conf/msgserver.conf`.

use netlib::EventDispatch;
use servers::{msg, runtime};

fn main() {
    let config = runtime::command_line(
        "msg_server",
        "TeamTalk's message server: logins and message routing.",
        msg::KEYS,
    );
    runtime::init_logging();
    let settings = match msg::Settings::from_config(&config) {
        Ok(s) => s,
        Err(e) => runtime::config_error("msg_server", &e),
    };
    if let Err(e) = run(settings) {
        log::error!("msg_server: {e}");
        eprintln!("msg_server: {e}");
        std::process::exit(1);
    }
}

fn run(settings: msg::Settings) -> Result<(), Box<dyn std::error::Error>> {
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
