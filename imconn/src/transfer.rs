//! Moving bytes between a connection's socket and its hooks: reading into
//! the loop's shared scratch buffer, decoding and dispatching frames,
//! holding input while reading is paused, and draining queued output.
//!
//! Called by the [`Server`](crate::Server) for its connections' Read and
//! Write events, on the loop thread, with the connection taken out of the
//! table.

use crate::buffered::BufferedConn;
use crate::codec::{Codec, DecodeError, FrameTooLong};
use crate::conn::Connection;
use crate::ctx::ConnCtx;

/// Bytes read per system call into the shared scratch buffer.
const READ_CHUNK: usize = 64 * 1024;

pub(crate) fn peer(io: &BufferedConn) -> String {
    io.peer()
        .map_or_else(|| "(unknown peer)".to_string(), |p| p.to_string())
}

/// Reads what the socket has and dispatches every complete frame.
///
/// Data is read into one scratch buffer shared by the server's connections,
/// and frames are decoded straight out of it; only a partial frame left at
/// the end of a read is copied into the connection's own input buffer. So
/// steady traffic of whole frames allocates nothing, and an idle connection
/// holds no input buffer at all. Replies the hooks send to this connection
/// meanwhile go out in one write when the batch ends (or every 64 KiB).
pub(crate) fn read_input<C: Connection>(conn: &mut C, cx: &mut ConnCtx<'_, C>) {
    cx.batching = true;
    cx.cur.io.cork();
    let mut scratch = std::mem::take(&mut cx.conns.read_buf);
    if scratch.len() < READ_CHUNK {
        scratch.resize(READ_CHUNK, 0);
    }
    let max_frame = cx.cur.meta.config.max_frame;
    // netlib delivers Read only while the socket's reading is not paused,
    // so a pause has been lifted - by this connection's `resume_read` or by
    // another hook's `ctx.resume_read(h)` - and held input may flow again.
    cx.cur.meta.read_paused = false;
    if !cx.cur.io.in_buf.is_empty() {
        // Input held back by `pause_read`: its frames come first.
        dispatch_buffered(conn, cx);
    }
    while !cx.cur.io.is_closed() && !cx.cur.meta.read_paused {
        let Some(n) = cx.cur.io.recv_chunk(cx.ctx, &mut scratch) else {
            break;
        };
        if cx.cur.io.in_buf.is_empty() {
            match dispatch_frames(conn, cx, &scratch[..n]) {
                Some(used) if used < n && !cx.cur.io.is_closed() => {
                    cx.cur.io.in_buf.extend_from_slice(&scratch[used..n]);
                }
                Some(_) => {}
                None => break,
            }
        } else {
            cx.cur.io.in_buf.extend_from_slice(&scratch[..n]);
            if !dispatch_buffered(conn, cx) {
                break;
            }
        }
        // Input held by a pause may hold whole frames; only an incomplete
        // frame is bounded by `max_frame`.
        if cx.cur.io.in_buf.len() > max_frame && !cx.cur.io.is_closed() && !cx.cur.meta.read_paused
        {
            log::warn!(
                "imconn: {} {} closed: incomplete frame over {max_frame} bytes",
                cx.cur.handle,
                peer(&cx.cur.io)
            );
            let error: DecodeError = Box::new(FrameTooLong {
                declared: cx.cur.io.in_buf.len(),
                max: max_frame,
            });
            conn.on_protocol_error(cx, &error);
            cx.close();
            break;
        }
    }
    cx.conns.read_buf = scratch;
    cx.batching = false;
    cx.flush_batch();
    if cx.cur.meta.resume_on_drain && cx.cur.io.queued() == 0 && !cx.cur.io.is_closed() {
        // Paused until drained, but the batch went out whole: no Write
        // event will come to resume it.
        cx.resume_read();
    }
}

/// Dispatches the frames in the connection's input buffer and keeps the
/// rest; false when the connection was closed.
fn dispatch_buffered<C: Connection>(conn: &mut C, cx: &mut ConnCtx<'_, C>) -> bool {
    let buf = std::mem::take(&mut cx.cur.io.in_buf);
    let used = dispatch_frames(conn, cx, buf.as_slice());
    cx.cur.io.in_buf = buf;
    let Some(used) = used else {
        return false;
    };
    cx.cur.io.in_buf.consume(used);
    if cx.cur.io.in_buf.is_empty() {
        cx.cur.io.in_buf.release();
    }
    true
}

/// Hands every whole frame in `data` to `on_frame`, until the connection
/// closes or pauses its reading. Returns the bytes
/// used, or `None` when the connection was closed (invalid input).
fn dispatch_frames<C: Connection>(
    conn: &mut C,
    cx: &mut ConnCtx<'_, C>,
    data: &[u8],
) -> Option<usize> {
    let max_frame = cx.cur.meta.config.max_frame;
    let mut used = 0;
    while !cx.cur.io.is_closed() && !cx.cur.meta.read_paused && used < data.len() {
        match cx.cur.codec.decode(&data[used..], max_frame) {
            Ok(Some((_, 0))) => {
                log::error!(
                    "imconn: {} codec decoded a frame of 0 bytes, closing",
                    cx.cur.handle
                );
                cx.close();
                return None;
            }
            Ok(Some((frame, n))) => {
                used += n;
                cx.cur.io.frames_in += 1;
                conn.on_frame(cx, frame);
            }
            Ok(None) => break,
            Err(e) => {
                log::warn!(
                    "imconn: {} {} sent invalid input, closing: {e}",
                    cx.cur.handle,
                    peer(&cx.cur.io)
                );
                conn.on_protocol_error(cx, &e);
                cx.close();
                return None;
            }
        }
    }
    Some(used)
}

/// Drains queued output on a Write event and reports write-complete.
pub(crate) fn write_output<C: Connection>(conn: &mut C, cx: &mut ConnCtx<'_, C>) {
    if let Ok(status) = cx.cur.io.flush(cx.ctx) {
        if status.drained {
            if cx.cur.meta.resume_on_drain {
                cx.resume_read();
            }
            conn.on_write_complete(cx);
        }
    }
}
