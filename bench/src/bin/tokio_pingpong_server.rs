//! The comparator for pingpong: a tokio current-thread echo server written
//! the idiomatic way (a task per connection, read into a buffer, write_all).
//!
//! `--threads N` (N > 1) uses tokio's multi-thread runtime with N workers.
//!
//! `tokio_pingpong_server ADDR [ALLOC_STATS_FILE] [--threads N]`

use bench::CountingAlloc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

#[global_allocator]
static GLOBAL: CountingAlloc = CountingAlloc;

fn main() -> std::io::Result<()> {
    let args = bench::start_server();
    bench::tokio_runtime(args.threads)?.block_on(serve(args.addr))
}

async fn serve(addr: std::net::SocketAddr) -> std::io::Result<()> {
    let listener = TcpListener::bind(addr).await?;
    loop {
        let (mut stream, _) = listener.accept().await?;
        stream.set_nodelay(true)?;
        tokio::spawn(async move {
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                match stream.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => {
                        if stream.write_all(&buf[..n]).await.is_err() {
                            return;
                        }
                    }
                }
            }
        });
    }
}
