//! msg_server: `msg_server [-c msgserver.conf] [--Key value ...]`, or
//! `msg_server migrate [-c msgserver.conf] [--Key value ...]` to create or
//! upgrade the configured store's schema and exit.
//!
//! With no file it listens on 127.0.0.1:8000 and registers with a
//! login_server on 127.0.0.1:8100 only if `LoginServerIP1`/`LoginServerPort1`
//! are given. `--help` lists the keys with their defaults; see also
//! `servers/conf/msgserver.conf`.

use netlib::signal::StopSignals;
use netlib::EventDispatch;
use servers::{msg, runtime};

fn main() {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let migrate = args.first().is_some_and(|a| a == "migrate");
    if migrate {
        args.remove(0);
    }
    let config = runtime::command_line_of(
        "msg_server",
        "TeamTalk's message server: logins and message routing. \
         `msg_server migrate [-c FILE]` creates or upgrades the store's schema.",
        msg::KEYS,
        &args,
    );
    runtime::init_logging();
    let settings = match msg::Settings::from_config(&config) {
        Ok(s) => s,
        Err(e) => runtime::config_error("msg_server", &e),
    };
    if migrate {
        match msg::migrate(&settings) {
            Ok(done) => println!("{done}"),
            Err(e) => {
                eprintln!("msg_server migrate: {e}");
                std::process::exit(1);
            }
        }
        return;
    }
    if let Err(e) = run(settings) {
        log::error!("msg_server: {e}");
        eprintln!("msg_server: {e}");
        std::process::exit(1);
    }
}

fn run(settings: msg::Settings) -> Result<(), Box<dyn std::error::Error>> {
    // Caught before the store opens: a SIGTERM while it recovers waits, and
    // the stop that follows writes what the store owes.
    let signals = StopSignals::catch()?;
    let mut dispatch = EventDispatch::new()?;
    let (_, bound) = msg::start(dispatch.context(), settings)?;
    for addr in bound {
        runtime::announce("client", addr);
    }
    signals.on_arrival({
        let poster = dispatch.poster();
        move || poster.stop()
    })?;
    dispatch.run()?;
    log::info!("msg_server stopped");
    Ok(())
}
