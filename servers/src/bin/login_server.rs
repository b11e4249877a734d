//! `login_server [-c loginserver.conf] [--Key value]...`
//!
//! TeamTalk's login server: message servers register on `MsgServerPort`,
//! clients ask for one on `ClientPort` (PDUs) or `HttpPort`
//! (`GET /msg_server`). See `servers::login` and
//! `servers::login::settings` for the keys. With no file it runs on
//! loopback with TeamTalk's ports; `--ClientPort 0` and friends pick free
//! ports, printed as `LISTEN <name> <addr>` lines on stdout.

use servers::config::Config;
use servers::login::{self, LoginSettings};
use std::process::ExitCode;

const USAGE: &str = "usage: login_server [-c loginserver.conf] [--Key value]...
keys: ClientListenIP ClientPort HttpListenIP HttpPort MsgServerListenIP MsgServerPort
      msfs discovery ClientTimeoutMs MaxClientConns HttpTimeoutMs HttpMaxRequestBytes
      MaxHttpConns MsgServerHeartbeatMs MsgServerTimeoutMs MaxFrameBytes";

fn main() -> ExitCode {
    servers::runtime::init_logging();
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "-h" || a == "--help") {
        println!("{USAGE}");
        return ExitCode::SUCCESS;
    }
    let settings = match Config::from_args(&args) {
        Ok((_, rest)) if !rest.is_empty() => {
            eprintln!("login_server: unexpected arguments {rest:?}\n{USAGE}");
            return ExitCode::from(2);
        }
        Ok((config, _)) => LoginSettings::from_config(&config),
        Err(e) => Err(e),
    };
    let settings = match settings {
        Ok(s) => s,
        Err(e) => {
            eprintln!("login_server: {e}");
            return ExitCode::from(2);
        }
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
