//! Our pingpong server: the examples crate's echo server (an
//! `imconn::Server` with the raw codec, the server of `pingpong`), with a
//! counting allocator.
//!
//! `netlib_pingpong_server ADDR [ALLOC_STATS_FILE]`

use bench::CountingAlloc;
use examples::echo;
use netlib::{EventDispatch, ListenOptions};

#[global_allocator]
static GLOBAL: CountingAlloc = CountingAlloc;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (addr, stats) = bench::server_args();
    bench::raise_nofile(65536);
    bench::publish_allocs(stats);
    let mut dispatch = EventDispatch::new()?;
    let opts = ListenOptions {
        nodelay: true,
        ..ListenOptions::default()
    };
    let ctx = dispatch.context();
    let server = echo::register(ctx);
    ctx.listen_with(addr, &opts, server)?;
    dispatch.run()?;
    Ok(())
}
