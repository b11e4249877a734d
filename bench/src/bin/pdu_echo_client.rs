//! The PDU-echo load generator, on an [`imconn::Server`] with outgoing
//! connections only: `--conns` connections, each keeping `--inflight`
//! TeamTalk frames (64-byte bodies) in flight. Every echoed frame is
//! answered with a new one; the server batches the answers to one read into
//! a single write. The first 8 body bytes carry the send time, so each echo
//! gives a latency sample (hdrhistogram).
//!
//! ```text
//! pdu_echo_client --connect ADDR [--conns 100] [--inflight 16] [--warmup 1]
//!                 [--seconds 5] [--framing teamtalk|message-io]
//! ```
//!
//! Prints one line: `frames N secs S fps F p50_us A p99_us B p999_us C`.

use hdrhistogram::Histogram;
use imconn::{Accepted, Codec, ConnConfig, ConnCtx, Connection, DecodeError, Limits, Server};
use netlib::{CloseReason, ConnectOptions, Context, EventDispatch, TimerId};
use pdu::{Header, Pdu};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// The echo's framing: fixed-size records of a TeamTalk frame, behind a
/// 1-byte length with `--framing message-io` (that server's FramedTcp
/// frames with a varint length; 80 fits in one byte). A frame is the
/// TeamTalk part of a record; its declared length is checked by the
/// connection, which reports a wrong one.
#[derive(Debug, Clone, Copy)]
struct Records {
    /// Bytes before the TeamTalk frame: 0 or 1.
    prefix: usize,
    /// Bytes per record, prefix included.
    size: usize,
}

impl Codec for Records {
    type Frame<'a> = &'a [u8];

    fn decode<'a>(
        &mut self,
        src: &'a [u8],
        _max_frame: usize,
    ) -> Result<Option<(&'a [u8], usize)>, DecodeError> {
        Ok(src
            .get(self.prefix..self.size)
            .map(|frame| (frame, self.size)))
    }
}

/// One connection: `--inflight` frames out, one new frame per echo.
struct Echo {
    /// The record sent (prefix, header, body); the send time is patched in.
    record: Vec<u8>,
}

/// The run: every connection's counts and the result.
struct Run {
    template: Vec<u8>,
    prefix: usize,
    inflight: usize,
    epoch: Instant,
    hist: Histogram<u64>,
    frames: u64,
    measuring: Option<Instant>,
    warmup_timer: Option<TimerId>,
    result: Option<String>,
    error: Option<String>,
}

impl Run {
    fn now_ns(&self) -> u64 {
        self.epoch.elapsed().as_nanos() as u64
    }

    fn fail(&mut self, ctx: &mut Context, why: String) {
        self.error.get_or_insert(why);
        ctx.stop();
    }
}

impl Echo {
    /// Stamps the record with `now` (the first 8 body bytes).
    fn stamp(&mut self, prefix: usize, now: u64) {
        let ts = prefix + pdu::HEADER_LEN;
        self.record[ts..ts + 8].copy_from_slice(&now.to_le_bytes());
    }
}

impl Connection for Echo {
    type Codec = Records;
    type Shared = Run;

    fn on_confirm(&mut self, cx: &mut ConnCtx<'_, Self>) {
        // All `--inflight` frames in one write.
        let run = &*cx.shared;
        let now = run.now_ns();
        let mut out = Vec::with_capacity(run.inflight * run.template.len());
        self.stamp(run.prefix, now);
        for _ in 0..run.inflight {
            out.extend_from_slice(&self.record);
        }
        let _ = cx.send_bytes(&out);
    }

    fn on_frame(&mut self, cx: &mut ConnCtx<'_, Self>, frame: &[u8]) {
        // The time of the read that brought the frame: one clock reading per
        // read, not per frame; the answer carries it too.
        let read_at = cx.io().last_recv;
        let run = &mut *cx.shared;
        let len = u32::from_be_bytes([frame[0], frame[1], frame[2], frame[3]]) as usize;
        if len != bench::FRAME_LEN {
            return run.fail(cx.ctx, format!("bad echoed frame length {len}"));
        }
        let now = read_at.saturating_duration_since(run.epoch).as_nanos() as u64;
        let b = pdu::HEADER_LEN;
        let sent = u64::from_le_bytes(frame[b..b + 8].try_into().unwrap());
        if run.measuring.is_some() {
            run.frames += 1;
            let _ = run.hist.record(now.saturating_sub(sent) / 1000);
        }
        self.stamp(run.prefix, now);
        // Collected with the other answers to this read: one write.
        let _ = cx.send_bytes(&self.record);
    }

    fn on_close(&mut self, cx: &mut ConnCtx<'_, Self>, reason: CloseReason) {
        if reason != CloseReason::Shutdown {
            cx.shared
                .fail(cx.ctx, format!("a connection closed: {reason}"));
        }
    }

    fn on_server_timer(run: &mut Run, ctx: &mut Context, id: TimerId) {
        if Some(id) == run.warmup_timer {
            run.warmup_timer = None;
            run.measuring = Some(Instant::now());
            run.hist.reset();
            run.frames = 0;
            return;
        }
        let secs = run.measuring.map_or(0.0, |t| t.elapsed().as_secs_f64());
        let h = &run.hist;
        run.result = Some(format!(
            "frames {} secs {:.3} fps {:.0} p50_us {} p99_us {} p999_us {}",
            run.frames,
            secs,
            run.frames as f64 / secs,
            h.value_at_quantile(0.5),
            h.value_at_quantile(0.99),
            h.value_at_quantile(0.999)
        ));
        ctx.stop();
    }
}

/// PDU echo load: `--conns` connections with `--inflight` frames each.
#[derive(clap::Parser)]
#[command(name = "pdu_echo_client")]
struct Args {
    /// The echo server
    #[arg(long, value_name = "ADDR")]
    connect: SocketAddr,
    /// Connections
    #[arg(long, default_value_t = 100)]
    conns: usize,
    /// Frames in flight per connection
    #[arg(long, default_value_t = 16)]
    inflight: usize,
    /// Seconds before measuring
    #[arg(long, default_value_t = 1.0)]
    warmup: f64,
    /// Seconds measured
    #[arg(long, default_value_t = 5.0)]
    seconds: f64,
    /// Frame format
    #[arg(long, default_value = "teamtalk", value_parser = ["teamtalk", "message-io"])]
    framing: String,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let Args {
        connect: addr,
        conns,
        inflight,
        warmup,
        seconds,
        framing,
    } = clap::Parser::parse();
    let prefix = match framing.as_str() {
        "message-io" => 1,
        _ => 0,
    };
    bench::raise_nofile(65536);

    let mut template = Vec::with_capacity(prefix + bench::FRAME_LEN);
    if prefix == 1 {
        // message-io's FramedTcp: a varint length; 80 fits in one byte.
        template.push(bench::FRAME_LEN as u8);
    }
    let header = Header::new(pdu::sid::OTHER, pdu::cid::other::HEARTBEAT);
    Pdu::encode_bytes_into(&mut template, &header, &[0x5a; bench::BODY_LEN])?;
    assert_eq!(template.len(), prefix + bench::FRAME_LEN);

    // A closed loop: a connection never has more than `--inflight` records
    // to send, and input is whole records plus at most one partial one. The
    // output limits are set well above that, so the generator never closes
    // a connection of its own (nothing listens for high water).
    let record = template.len();
    let cap = (inflight * record).max(1 << 20) * 4;
    let config = ConnConfig {
        limits: Limits {
            high_water: cap,
            hard_cap: cap,
            ..Limits::default()
        },
        max_frame: record,
        ..ConnConfig::default()
    };
    let opts = ConnectOptions {
        nodelay: true,
        timeout: Some(Duration::from_secs(10)),
        ..ConnectOptions::default()
    };

    let mut dispatch = EventDispatch::new()?;
    let ctx = dispatch.context();
    let run = Run {
        template,
        prefix,
        inflight,
        epoch: Instant::now(),
        hist: Histogram::new_with_bounds(1, 60_000_000, 3)?,
        frames: 0,
        measuring: None,
        warmup_timer: None,
        result: None,
        error: None,
    };
    // Outgoing connections only: nothing is accepted.
    let r = Server::<Echo>::register_with_codec(
        ctx,
        run,
        Records {
            prefix,
            size: record,
        },
        |_, _: &Accepted| None,
    );
    ctx.with_handler(r, |s: &mut Server<Echo>, ctx| {
        for _ in 0..conns {
            let record = s.shared.template.clone();
            s.connect(ctx, addr, &opts, Echo { record }, config)?;
        }
        Ok::<_, netlib::Error>(())
    })
    .ok_or("client state lost")??;
    let w = ctx.add_handler_timer(r, Duration::from_secs_f64(warmup), None)?;
    ctx.add_handler_timer(r, Duration::from_secs_f64(warmup + seconds), None)?;
    ctx.with_handler(r, |s: &mut Server<Echo>, _| s.shared.warmup_timer = Some(w));
    dispatch.run()?;
    let (result, error) = dispatch
        .context()
        .with_handler(r, |s: &mut Server<Echo>, _| {
            (s.shared.result.take(), s.shared.error.take())
        })
        .ok_or("client state lost")?;
    if let Some(e) = error {
        return Err(e.into());
    }
    println!("{}", result.ok_or("no result")?);
    Ok(())
}
