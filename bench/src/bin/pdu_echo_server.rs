//! Our PDU-echo server on `ImServer`: every TeamTalk frame that arrives is
//! sent back unchanged, written the way a user would write it. imconn's own
//! reply batching (see `imconn::read_frames`) sends what one read produced
//! in a single write.
//!
//! `--threads N` (N > 1) runs it on a loop group of N loops sharing the
//! port (`imconn::ServerGroup`).
//!
//! `pdu_echo_server ADDR [ALLOC_STATS_FILE] [--threads N]`

use bench::CountingAlloc;
use imconn::{ConnConfig, ConnCtx, Connection, ImServer, PduCodec, ServerGroup, Timeouts};
use netlib::{EventDispatch, ListenOptions};
use pdu::PduRef;
use std::time::Duration;

#[global_allocator]
static GLOBAL: CountingAlloc = CountingAlloc;

struct Echo;

impl Connection for Echo {
    type Codec = PduCodec;
    type Shared = ();

    fn on_frame(&mut self, cx: &mut ConnCtx<'_, Self>, pdu: PduRef<'_>) {
        let _ = cx.send_bytes(pdu.as_bytes());
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = bench::server_args();
    bench::raise_nofile(65536);
    bench::publish_allocs(args.stats);
    let opts = ListenOptions {
        nodelay: true,
        ..ListenOptions::default()
    };
    if args.threads > 1 {
        let group = ServerGroup::start(
            usize::from(args.threads),
            netlib::Config::default(),
            args.addr,
            &opts,
            |ctx, _| register(ctx),
        )?;
        group.join()?;
        return Ok(());
    }
    let mut dispatch = EventDispatch::new()?;
    let ctx = dispatch.context();
    let server = register(ctx);
    ctx.listen_with(args.addr, &opts, server)?;
    dispatch.run()?;
    Ok(())
}

/// Registers the echo server on one loop.
fn register(ctx: &mut netlib::Context) -> netlib::HandlerRef {
    let config = ConnConfig {
        // An idle deadline armed as in a real server; no login deadline.
        timeouts: Timeouts {
            heartbeat: None,
            idle: Some(Duration::from_secs(120)),
            login: None,
        },
        ..ConnConfig::default()
    };
    ImServer::<Echo>::register(ctx, (), move |_, _| Some((Echo, config)))
}
