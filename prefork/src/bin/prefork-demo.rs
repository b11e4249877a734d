//! `prefork-demo`: an async_server-style service under a prefork master.
//!
//! It speaks async_server's packet format ([`prefork::ProtoCodec`]) and
//! answers three commands:
//!
//! | cmd | request body | answer |
//! |---|---|---|
//! | 1 echo | anything | the same body |
//! | 2 whoami | - | `pid=<pid> slot=<slot> generation=<g> tag=<$PREFORK_DEMO_TAG>` |
//! | 3 slow | delay in ms (u32, little-endian) | empty, after the delay (a timer: the loop never blocks) |
//!
//! Anything else is answered with status 1 and an empty body.
//!
//! ```text
//! prefork-demo [--host 127.0.0.1] [--port 7100] [--threads 1] --processes 4 \
//!              [--status-file PATH] [--drain-timeout 30] [--panic-at-start]
//! ```
//!
//! With `--processes N` a master binds, forks N workers, restarts crashed
//! ones, reloads on SIGHUP, drains on SIGTERM; without it the service runs
//! in this process. `--panic-at-start` makes every worker panic while it
//! starts (to watch the crash-loop rule). The process tests in
//! `prefork/tests/` drive it.

use clap::Parser;
use imconn::ConnConfig;
use netlib::{EventDispatch, ListenOptions};
use prefork::{Link, Packet, Service, WorkerInfo};
use std::net::{IpAddr, SocketAddr};
use std::process::ExitCode;
use std::time::Duration;

/// An async_server-style service (echo, whoami, slow) under a prefork master.
#[derive(Parser)]
#[command(name = "prefork-demo")]
struct Args {
    /// Address to listen on
    #[arg(long, default_value = "127.0.0.1")]
    host: IpAddr,
    /// Port to listen on, 0 for any free port
    #[arg(long, default_value_t = 7100)]
    port: u16,
    /// Event loops (threads) per worker process
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Every worker panics while starting (crash-loop demonstration)
    #[arg(long)]
    panic_at_start: bool,
    #[command(flatten)]
    prefork: prefork::Args,
}

/// Commands of the demo protocol.
const ECHO: u16 = 1;
const WHOAMI: u16 = 2;
const SLOW: u16 = 3;

/// What the connections of one loop share: who this worker is.
struct Worker {
    whoami: String,
}

/// A connection; at most one slow request pending.
#[derive(Default)]
struct Conn {
    pending: Option<prefork::PacketHeader>,
}

impl Service for Conn {
    type Shared = Worker;

    fn request(&mut self, link: &mut Link<'_, '_, Self>, packet: Packet<'_>) {
        let h = packet.header;
        let _ = match h.cmd {
            ECHO => link.answer(&h, 0, packet.body),
            WHOAMI => {
                let me = link.shared().whoami.clone();
                link.answer(&h, 0, me.as_bytes())
            }
            SLOW if self.pending.is_none() => {
                let ms = packet
                    .body
                    .get(..4)
                    .map_or(0, |b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]));
                self.pending = Some(h);
                link.add_timer(Duration::from_millis(ms.into()));
                return;
            }
            _ => link.answer(&h, 1, b""),
        };
    }

    fn timer(&mut self, link: &mut Link<'_, '_, Self>, _id: netlib::TimerId) {
        if let Some(h) = self.pending.take() {
            let _ = link.answer(&h, 0, b"");
        }
    }
}

fn whoami(slot: usize, generation: u32) -> String {
    let tag = std::env::var("PREFORK_DEMO_TAG").unwrap_or_else(|_| "-".into());
    format!(
        "pid={} slot={slot} generation={generation} tag={tag}",
        std::process::id()
    )
}

fn main() -> ExitCode {
    let args = Args::parse();
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info"))
        .format_timestamp_millis()
        .init();
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("prefork-demo: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    let addr = SocketAddr::new(args.host, args.port);
    let opts = ListenOptions::default();
    let Some(config) = args.prefork.config(args.threads) else {
        // One process, one loop.
        let mut dispatch = EventDispatch::new()?;
        let ctx = dispatch.context();
        let shared = Worker {
            whoami: whoami(0, 0),
        };
        let server =
            prefork::service::register(ctx, shared, |_| Conn::default(), ConnConfig::default());
        let l = ctx.listen_with(addr, &opts, server)?;
        println!("listening on {}", ctx.local_addr(l)?);
        dispatch.run()?;
        return Ok(());
    };
    let panic_at_start = args.panic_at_start;
    let announce = |addrs: &[SocketAddr]| println!("listening on {}", addrs[0]);
    prefork::serve(
        config,
        &[addr],
        &opts,
        announce,
        move |info: &WorkerInfo| {
            if panic_at_start {
                panic!("worker {} told to panic at start", info.slot);
            }
            let me = whoami(info.slot, info.generation);
            Ok(move |ctx: &mut netlib::Context, _loop_index| {
                let shared = Worker { whoami: me.clone() };
                Ok(prefork::service::register(
                    ctx,
                    shared,
                    |_| Conn::default(),
                    ConnConfig::default(),
                ))
            })
        },
    )?;
    Ok(())
}
