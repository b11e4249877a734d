//! The comparator for PDU echo: tokio current-thread + tokio-util's
//! `LengthDelimitedCodec` configured for TeamTalk framing (a 4-byte
//! big-endian length at offset 0 that counts the whole frame: with
//! `num_skip(0)` the frame is the next `length` bytes, adjustment 0). Frames are
//! written back with `feed` and flushed once no further whole frame is
//! buffered, the usual way to batch with a `Sink`.
//!
//! `--threads N` (N > 1) uses tokio's multi-thread runtime with N workers.
//!
//! `tokio_pdu_echo_server ADDR [ALLOC_STATS_FILE] [--threads N]`

use bench::CountingAlloc;
use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpListener;
use tokio_util::codec::{BytesCodec, FramedRead, FramedWrite, LengthDelimitedCodec};

#[global_allocator]
static GLOBAL: CountingAlloc = CountingAlloc;

fn main() -> std::io::Result<()> {
    let args = bench::start_server();
    bench::tokio_runtime(args.threads)?.block_on(serve(args.addr))
}

async fn serve(addr: std::net::SocketAddr) -> std::io::Result<()> {
    let listener = TcpListener::bind(addr).await?;
    loop {
        let (stream, _) = listener.accept().await?;
        stream.set_nodelay(true)?;
        tokio::spawn(async move {
            let (r, w) = stream.into_split();
            let codec = LengthDelimitedCodec::builder()
                .length_field_offset(0)
                .length_field_length(4)
                .length_adjustment(0)
                .num_skip(0)
                .max_frame_length(4 * 1024 * 1024)
                .big_endian()
                .new_codec();
            let mut frames = FramedRead::new(r, codec);
            let mut out = FramedWrite::new(w, BytesCodec::new());
            while let Some(Ok(frame)) = frames.next().await {
                if out.feed(frame.freeze()).await.is_err() {
                    return;
                }
                if frames.read_buffer().len() < pdu::HEADER_LEN
                    && SinkExt::<bytes::Bytes>::flush(&mut out).await.is_err()
                {
                    return;
                }
            }
        });
    }
}
