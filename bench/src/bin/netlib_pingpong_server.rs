//! Our pingpong server: the examples crate's echo server (an
//! `imconn::Server` with the raw codec, the server of `pingpong`), with a
//! counting allocator. `--threads N` (N > 1) runs it on a loop group of N
//! loops sharing the port (`imconn::ServerGroup`).
//!
//! `netlib_pingpong_server ADDR [ALLOC_STATS_FILE] [--threads N]`

use bench::CountingAlloc;
use examples::echo;
use imconn::ServerGroup;
use netlib::{EventDispatch, ListenOptions};

#[global_allocator]
static GLOBAL: CountingAlloc = CountingAlloc;

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
            |ctx, _| echo::register(ctx),
        )?;
        group.join()?;
        return Ok(());
    }
    let mut dispatch = EventDispatch::new()?;
    let ctx = dispatch.context();
    let server = echo::register(ctx);
    ctx.listen_with(args.addr, &opts, server)?;
    dispatch.run()?;
    Ok(())
}
