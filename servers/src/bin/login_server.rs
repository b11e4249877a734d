//! `login_server [-c loginserver.conf] [--Key value]...`
//!
//! TeamTalk's login server: message servers register on `MsgServerPort`,
//! clients ask for one on `ClientPort` (PDUs) or `HttpPort`
//! (`GET /msg_server`). `--help` lists the keys (`servers::login::settings`)
//! with their defaults. With no file it runs on loopback with TeamTalk's
//! ports; `--ClientPort 0` and friends pick free ports, printed as
//! `LISTEN <name> <addr>` lines on stdout.

use servers::login::{self, settings::KEYS, LoginSettings};
use servers::runtime;
use std::process::ExitCode;

fn main() -> ExitCode {
    let config = runtime::command_line(
        "login_server",
        "TeamTalk's login server: msg_servers register, clients ask which one to use.",
        KEYS,
    );
    runtime::init_logging();
    let settings = match LoginSettings::from_config(&config) {
        Ok(s) => s,
        Err(e) => runtime::config_error("login_server", &e),
    };
    match login::run(settings) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            log::error!("login_server: {e}");
            eprintln!("login_server: {e}");
            ExitCode::FAILURE
        }
    }
}
