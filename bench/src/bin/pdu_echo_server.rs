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
use imconn::{ConnConfig, ConnCtx, Connection, ImServer, PduCodec, Timeouts};
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
    bench::serve_netlib(&bench::start_server(), register)
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
