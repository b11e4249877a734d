//! The PDU-echo load generator, on netlib: `--conns` connections, each
//! keeping `--inflight` TeamTalk frames (64-byte bodies) in flight. Every
//! echoed frame is answered with a new one; all the frames one read
//! produced go out in a single write. The first 8 body bytes carry the send
//! time, so each echo gives a latency sample (hdrhistogram).
//!
//! ```text
//! pdu_echo_client --connect ADDR [--conns 100] [--inflight 16] [--warmup 1]
//!                 [--seconds 5] [--framing teamtalk|message-io]
//! ```
//!
//! Prints one line: `frames N secs S fps F p50_us A p99_us B p999_us C`.

use examples::conns::ConnTable;
use hdrhistogram::Histogram;
use imconn::{BufferedConn, Limits};
use netlib::{
    CloseReason, ConnectOptions, Context, Event, EventDispatch, Handle, Handler, TimerId,
};
use pdu::{Header, Pdu};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

struct Conn {
    io: BufferedConn,
    /// A partial record left from the previous read.
    partial: Vec<u8>,
}

struct Client {
    conns: ConnTable<Conn>,
    scratch: Box<[u8]>,
    out: Vec<u8>,
    template: Vec<u8>,
    record: usize,
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

impl Client {
    fn now_ns(&self) -> u64 {
        self.epoch.elapsed().as_nanos() as u64
    }

    fn push_frame(&mut self, now: u64) {
        let at = self.out.len();
        self.out.extend_from_slice(&self.template);
        let ts = at + self.prefix + pdu::HEADER_LEN;
        self.out[ts..ts + 8].copy_from_slice(&now.to_le_bytes());
    }

    /// Walks the whole records in `data`; returns the bytes used.
    fn records(&mut self, data: &[u8], now: u64) -> Result<usize, String> {
        let mut used = 0;
        while data.len() - used >= self.record {
            let rec = &data[used..used + self.record];
            let frame = &rec[self.prefix..];
            let len = u32::from_be_bytes([frame[0], frame[1], frame[2], frame[3]]) as usize;
            if len != bench::FRAME_LEN {
                return Err(format!("bad echoed frame length {len}"));
            }
            let b = pdu::HEADER_LEN;
            let sent = u64::from_le_bytes(frame[b..b + 8].try_into().unwrap());
            if self.measuring.is_some() {
                self.frames += 1;
                let _ = self.hist.record(now.saturating_sub(sent) / 1000);
            }
            used += self.record;
        }
        Ok(used)
    }

    fn on_read(&mut self, ctx: &mut Context, h: Handle) {
        let Some(mut conn) = self.conns.remove(h) else {
            return;
        };
        let mut scratch = std::mem::take(&mut self.scratch);
        let now = self.now_ns();
        let mut answered = 0;
        let mut failed = None;
        while let Some(n) = conn.io.recv_chunk(ctx, &mut scratch) {
            let data = &scratch[..n];
            let mut from = 0;
            if !conn.partial.is_empty() {
                let need = self.record - conn.partial.len();
                let take = need.min(n);
                conn.partial.extend_from_slice(&data[..take]);
                from = take;
                if conn.partial.len() == self.record {
                    let p = std::mem::take(&mut conn.partial);
                    if let Err(e) = self.records(&p, now) {
                        failed = Some(e);
                    }
                    conn.partial = p;
                    conn.partial.clear();
                    answered += 1;
                }
            }
            match self.records(&data[from..], now) {
                Ok(used) => {
                    answered += used / self.record;
                    conn.partial.extend_from_slice(&data[from + used..]);
                }
                Err(e) => failed = Some(e),
            }
        }
        self.scratch = scratch;
        if let Some(e) = failed {
            self.error.get_or_insert(e);
            ctx.stop();
        }
        self.out.clear();
        for _ in 0..answered {
            self.push_frame(now);
        }
        if !self.out.is_empty() {
            let _ = conn.io.send(ctx, &self.out);
        }
        self.conns.insert(h, conn);
    }
}

impl Handler for Client {
    fn on_event(&mut self, ctx: &mut Context, h: Handle, event: Event) {
        match event {
            Event::Confirm => {
                let io = BufferedConn::new(ctx, h, Limits::default());
                let mut conn = Conn {
                    io,
                    partial: Vec::with_capacity(self.record),
                };
                self.out.clear();
                let now = self.now_ns();
                for _ in 0..self.inflight {
                    self.push_frame(now);
                }
                let _ = conn.io.send(ctx, &self.out);
                self.conns.insert(h, conn);
            }
            Event::Read => self.on_read(ctx, h),
            Event::Write => {
                if let Some(conn) = self.conns.get_mut(h) {
                    let _ = conn.io.flush(ctx);
                }
            }
            Event::Close(reason) => {
                self.conns.remove(h);
                if reason != CloseReason::Shutdown {
                    self.error
                        .get_or_insert_with(|| format!("a connection closed: {reason}"));
                    ctx.stop();
                }
            }
            _ => {}
        }
    }

    fn on_timer(&mut self, ctx: &mut Context, id: TimerId) {
        if Some(id) == self.warmup_timer {
            self.warmup_timer = None;
            self.measuring = Some(Instant::now());
            self.hist.reset();
            self.frames = 0;
            return;
        }
        let secs = self.measuring.map_or(0.0, |t| t.elapsed().as_secs_f64());
        let h = &self.hist;
        self.result = Some(format!(
            "frames {} secs {:.3} fps {:.0} p50_us {} p99_us {} p999_us {}",
            self.frames,
            secs,
            self.frames as f64 / secs,
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

    let mut dispatch = EventDispatch::new()?;
    let ctx = dispatch.context();
    let r = ctx.add_handler(Client {
        conns: ConnTable::new(),
        scratch: vec![0; 64 * 1024].into_boxed_slice(),
        out: Vec::with_capacity(64 * 1024),
        record: template.len(),
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
    });
    let opts = ConnectOptions {
        nodelay: true,
        timeout: Some(Duration::from_secs(10)),
        ..ConnectOptions::default()
    };
    for _ in 0..conns {
        ctx.connect_with(addr, &opts, r)?;
    }
    let w = ctx.add_handler_timer(r, Duration::from_secs_f64(warmup), None)?;
    ctx.add_handler_timer(r, Duration::from_secs_f64(warmup + seconds), None)?;
    ctx.with_handler(r, |c: &mut Client, _| c.warmup_timer = Some(w));
    dispatch.run()?;
    let (result, error) = dispatch
        .context()
        .with_handler(r, |c: &mut Client, _| (c.result.take(), c.error.take()))
        .ok_or("client state lost")?;
    if let Some(e) = error {
        return Err(e.into());
    }
    println!("{}", result.ok_or("no result")?);
    Ok(())
}
