//! Our pingpong server: the examples crate's echo server (an
//! `imconn::Server` with the raw codec, the server of `pingpong`), with a
//! counting allocator. `--threads N` (N > 1) runs it on a loop group of N
//! loops sharing the port (`imconn::ServerGroup`).
//!
//! `netlib_pingpong_server ADDR [ALLOC_STATS_FILE] [--threads N]`

use bench::CountingAlloc;
use examples::echo;

#[global_allocator]
static GLOBAL: CountingAlloc = CountingAlloc;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    bench::serve_netlib(&bench::start_server(), echo::register)
}
