//! Our PDU-echo server on `ImServer`: every TeamTalk frame that arrives is
//! sent back unchanged, written the way a user would write it. imconn's own
//! reply batching (see `imconn::read_frames`) sends what one read produced
//! in a single write.
//!
//! `pdu_echo_server ADDR [ALLOC_STATS_FILE]`

use bench::CountingAlloc;
use imconn::{ConnConfig, ConnCtx, Connection, ImServer, PduCodec, Timeouts};
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
    let (addr, stats) = bench::server_args();
    bench::raise_nofile(65536);
    bench::publish_allocs(stats);
    let mut dispatch = EventDispatch::new()?;
    let ctx = dispatch.context();
    let config = ConnConfig {
        // An idle deadline armed as in a real server; no login deadline.
        timeouts: Timeouts {
            heartbeat: None,
            idle: Some(Duration::from_secs(120)),
            login: None,
        },
        ..ConnConfig::client()
    };
    let server = ImServer::<Echo>::register(ctx, (), move |_, _| Some((Echo, config)));
    let opts = ListenOptions {
        nodelay: true,
        ..ListenOptions::default()
    };
    ctx.listen_with(addr, &opts, server)?;
    dispatch.run()?;
    Ok(())
}
