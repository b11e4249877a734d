//! Our PDU-echo server on `ImServer`: every TeamTalk frame that arrives is
//! sent back unchanged.
//!
//! `handle_pdu` appends each frame to a server-wide scratch buffer and the
//! `on_read` override sends what one read produced in a single write, so a
//! burst of frames costs one system call, not one per frame. (ImServer has
//! no built-in write batching: `ImCtx::send_frame` per frame would be one
//! `sendto` per frame.)
//!
//! `pdu_echo_server ADDR [ALLOC_STATS_FILE]`

use bench::CountingAlloc;
use imconn::{read_frames, ConnConfig, ImConn, ImCtx, ImServer, Timeouts};
use netlib::{EventDispatch, ListenOptions};
use pdu::PduRef;
use std::time::Duration;

#[global_allocator]
static GLOBAL: CountingAlloc = CountingAlloc;

struct Echo;

impl ImConn for Echo {
    /// Frames to echo from the current read.
    type Shared = Vec<u8>;

    fn handle_pdu(&mut self, cx: &mut ImCtx<'_, Self>, pdu: PduRef<'_>) {
        cx.shared.extend_from_slice(pdu.as_bytes());
    }

    fn on_read(&mut self, cx: &mut ImCtx<'_, Self>) {
        read_frames(self, cx);
        if !cx.shared.is_empty() {
            let out = std::mem::take(cx.shared);
            let _ = cx.send_frame(&out);
            *cx.shared = out;
            cx.shared.clear();
        }
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
    let server = ImServer::<Echo>::register(ctx, Vec::with_capacity(64 * 1024), move |_, _| {
        Some((Echo, config))
    });
    let opts = ListenOptions {
        nodelay: true,
        ..ListenOptions::default()
    };
    ctx.listen_with(addr, &opts, server)?;
    dispatch.run()?;
    Ok(())
}
