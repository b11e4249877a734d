//! The comparator for pingpong: a tokio current-thread echo server written
//! the idiomatic way (a task per connection, read into a buffer, write_all).
//!
//! `tokio_pingpong_server ADDR [ALLOC_STATS_FILE]`

use bench::CountingAlloc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

#[global_allocator]
static GLOBAL: CountingAlloc = CountingAlloc;

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::io::Result<()> {
    let (addr, stats) = bench::server_args();
    bench::raise_nofile(65536);
    bench::publish_allocs(stats);
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
