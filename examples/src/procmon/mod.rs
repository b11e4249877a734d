//! procmon: watch one process through `/proc` and serve what it does over
//! HTTP - muduo's procmon example, with Prometheus metrics added.
//!
//! - [`procfs`] reads and parses the process's `/proc` files;
//! - [`history`] keeps the last ten minutes of CPU readings;
//! - [`render`] turns the latest sample into HTML, an SVG chart and
//!   Prometheus text;
//! - [`Monitor`] (here) ties them together: it samples on a timer, keeps
//!   the latest good sample, and is the [`Service`] the
//!   [`HttpServer`](crate::http::HttpServer) asks for pages.
//!
//! Sampling is done on the loop thread from a repeating netlib timer, once
//! per interval - reading a few small kernel-generated files takes
//! microseconds. Requests never touch `/proc`: each page is rendered from
//! the cached sample at most once per interval and then served from memory,
//! so a load generator hammering `/metrics` costs a copy per request.
//!
//! | route | answer |
//! |---|---|
//! | `GET /` | HTML overview, linking the chart and the metrics |
//! | `GET /cpu.svg` | CPU usage of the last ten minutes |
//! | `GET /metrics` | Prometheus text format |
//! | other paths | 404 |
//! | other methods | 405 |
//!
//! ```
//! use examples::procmon::Monitor;
//! let mut monitor = Monitor::new(std::process::id()).unwrap();
//! assert!(monitor.metrics_page().starts_with(b"# HELP procmon_up"));
//! assert!(monitor.cpu_svg_page().starts_with(b"<svg"));
//! ```

pub mod history;
pub mod procfs;
pub mod render;

use crate::http::{Request, Response, Service};
use history::History;
use netlib::{Context, TimerId};
use procfs::{ProcReader, ProcSample, System};
use std::io;
use std::time::{Duration, Instant};

/// Rendered pages, dropped whenever a new sample arrives.
#[derive(Debug, Default)]
struct Pages {
    html: Option<Vec<u8>>,
    svg: Option<Vec<u8>>,
    metrics: Option<Vec<u8>>,
}

/// The state of one monitored process and the pages about it.
#[derive(Debug)]
pub struct Monitor {
    reader: ProcReader,
    system: System,
    cmdline: String,
    interval: Duration,
    /// The latest good sample and when it was taken.
    sample: ProcSample,
    sampled_at: Instant,
    cpu_percent: Option<f64>,
    history: History,
    samples: u64,
    sample_errors: u64,
    /// Why the latest sample failed; `None` while sampling works.
    failure: Option<String>,
    pages: Pages,
}

impl Monitor {
    /// Starts watching `pid`, sampling once a second; fails if the process
    /// cannot be read.
    pub fn new(pid: u32) -> io::Result<Monitor> {
        let reader = ProcReader::new(pid);
        let sample = reader.sample()?;
        let cmdline = reader.cmdline().unwrap_or_default();
        Ok(Monitor::from_sample(
            reader,
            System::read(),
            cmdline,
            sample,
            Instant::now(),
        ))
    }

    /// A monitor whose first sample is `sample`, taken at `at` (tests feed
    /// samples and times of their own through [`record`](Self::record)).
    pub fn from_sample(
        reader: ProcReader,
        system: System,
        cmdline: String,
        sample: ProcSample,
        at: Instant,
    ) -> Monitor {
        Monitor {
            reader,
            system,
            cmdline,
            interval: Duration::from_secs(1),
            sample,
            sampled_at: at,
            cpu_percent: None,
            history: History::default(),
            samples: 1,
            sample_errors: 0,
            failure: None,
            pages: Pages::default(),
        }
    }

    /// Sets the sampling interval (for the chart's time axis); the caller
    /// runs the timer.
    pub fn with_interval(mut self, interval: Duration) -> Monitor {
        self.interval = interval;
        self
    }

    /// Reads the process now and records the result.
    pub fn sample_now(&mut self) {
        let result = self.reader.sample();
        self.record(result, Instant::now());
    }

    /// Records a sample (or why it failed) taken at `at`: the CPU used since
    /// the previous good sample becomes a percentage and a chart point.
    pub fn record(&mut self, result: io::Result<ProcSample>, at: Instant) {
        self.pages = Pages::default();
        let sample = match result {
            Ok(s) => s,
            Err(e) => {
                if self.failure.is_none() {
                    log::warn!("procmon: cannot read pid {}: {e}", self.reader.pid());
                }
                self.sample_errors += 1;
                self.failure = Some(e.to_string());
                self.cpu_percent = None;
                return;
            }
        };
        self.samples += 1;
        if self.failure.take().is_some() {
            log::info!("procmon: pid {} readable again", self.reader.pid());
        }
        let elapsed = at.saturating_duration_since(self.sampled_at).as_secs_f64();
        let same_process = sample.stat.start_ticks == self.sample.stat.start_ticks;
        let ticks = |s: &ProcSample| s.stat.utime_ticks + s.stat.stime_ticks;
        self.cpu_percent = if same_process && elapsed > 0.0 {
            let used = ticks(&sample).saturating_sub(ticks(&self.sample));
            Some(self.ticks_to_secs(used) / elapsed * 100.0)
        } else {
            None // a new process reused the pid, or no time passed
        };
        if let Some(p) = self.cpu_percent {
            self.history.push(p);
        }
        self.sample = sample;
        self.sampled_at = at;
    }

    /// The process id watched.
    pub fn pid(&self) -> u32 {
        self.reader.pid()
    }

    /// The latest good sample.
    pub fn sample(&self) -> &ProcSample {
        &self.sample
    }

    /// Machine facts (clock ticks, page size, boot time, host name).
    pub fn system(&self) -> &System {
        &self.system
    }

    /// The process's command line, as read at start.
    pub fn cmdline(&self) -> &str {
        &self.cmdline
    }

    /// The sampling interval.
    pub fn interval(&self) -> Duration {
        self.interval
    }

    /// CPU usage over the last interval, in percent of one core.
    pub fn cpu_percent(&self) -> Option<f64> {
        self.cpu_percent
    }

    /// The CPU readings of the chart.
    pub fn history(&self) -> &History {
        &self.history
    }

    /// Good samples taken.
    pub fn samples(&self) -> u64 {
        self.samples
    }

    /// Samples that failed.
    pub fn sample_errors(&self) -> u64 {
        self.sample_errors
    }

    /// Why the latest sample failed, if it did.
    pub fn failure(&self) -> Option<&str> {
        self.failure.as_deref()
    }

    /// Clock ticks as seconds.
    pub fn ticks_to_secs(&self, ticks: u64) -> f64 {
        ticks as f64 / self.system.clock_ticks as f64
    }

    /// Resident memory in bytes.
    pub fn resident_bytes(&self) -> u64 {
        self.sample
            .stat
            .rss_pages
            .saturating_mul(self.system.page_size)
    }

    /// Seconds the process has been running, as of the latest sample.
    pub fn age_secs(&self) -> Option<f64> {
        let uptime = self.sample.uptime_secs?;
        Some(uptime - self.ticks_to_secs(self.sample.stat.start_ticks))
    }

    /// When the process started, in seconds since the Unix epoch.
    pub fn start_time_secs(&self) -> Option<f64> {
        let boot = self.system.boot_time? as f64;
        Some(boot + self.ticks_to_secs(self.sample.stat.start_ticks))
    }

    /// The HTML overview (rendered once per sample).
    pub fn html_page(&mut self) -> &[u8] {
        if self.pages.html.is_none() {
            self.pages.html = Some(render::html(self).into_bytes());
        }
        self.pages.html.as_deref().unwrap_or_default()
    }

    /// The CPU chart (rendered once per sample).
    pub fn cpu_svg_page(&mut self) -> &[u8] {
        if self.pages.svg.is_none() {
            let title = format!("{} ({})", self.sample.stat.comm, self.pid());
            self.pages.svg =
                Some(render::cpu_svg(&self.history, self.interval, &title).into_bytes());
        }
        self.pages.svg.as_deref().unwrap_or_default()
    }

    /// The Prometheus metrics (rendered once per sample).
    pub fn metrics_page(&mut self) -> &[u8] {
        if self.pages.metrics.is_none() {
            self.pages.metrics = Some(render::metrics(self).into_bytes());
        }
        self.pages.metrics.as_deref().unwrap_or_default()
    }
}

/// Content type of Prometheus' text format.
pub const METRICS_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

impl Service for Monitor {
    fn respond(&mut self, req: &Request<'_>) -> Response<'_> {
        if req.method != "GET" && req.method != "HEAD" {
            return Response::new(405, "text/plain", &b"method not allowed\n"[..])
                .with_headers("Allow: GET, HEAD\r\n");
        }
        const FRESH: &str = "Cache-Control: no-cache\r\n";
        match req.path {
            "/" => Response::new(200, "text/html; charset=utf-8", self.html_page()),
            "/cpu.svg" => Response::new(200, "image/svg+xml", self.cpu_svg_page()),
            "/metrics" => Response::new(200, METRICS_TYPE, self.metrics_page()),
            _ => return Response::new(404, "text/plain", &b"not found\n"[..]),
        }
        .with_headers(FRESH)
    }

    fn on_timer(&mut self, _ctx: &mut Context, _id: TimerId) {
        self.sample_now();
    }
}

#[cfg(test)]
mod tests {
    use super::procfs::Stat;
    use super::*;

    fn sample(ticks: u64, start: u64) -> ProcSample {
        ProcSample {
            stat: Stat {
                comm: "worker".into(),
                utime_ticks: ticks,
                start_ticks: start,
                threads: 4,
                ..Stat::default()
            },
            ..ProcSample::default()
        }
    }

    fn monitor(at: Instant) -> Monitor {
        let system = System {
            clock_ticks: 100,
            page_size: 4096,
            boot_time: Some(1_700_000_000),
            hostname: "h".into(),
        };
        Monitor::from_sample(ProcReader::new(1), system, String::new(), sample(0, 7), at)
    }

    #[test]
    fn cpu_percent_is_ticks_over_wall_time() {
        let t0 = Instant::now();
        let mut m = monitor(t0);
        assert_eq!(m.cpu_percent(), None);
        // 50 ticks = 0.5 s of CPU in 1 s: 50 %.
        m.record(Ok(sample(50, 7)), t0 + Duration::from_secs(1));
        assert_eq!(m.cpu_percent(), Some(50.0));
        // Two cores busy for 2 s: 200 %.
        m.record(Ok(sample(450, 7)), t0 + Duration::from_secs(3));
        assert_eq!(m.cpu_percent(), Some(200.0));
        assert_eq!(m.history().iter().collect::<Vec<_>>(), [50.0, 200.0]);
        assert_eq!(m.samples(), 3);
    }

    #[test]
    fn a_reused_pid_starts_a_new_baseline() {
        let t0 = Instant::now();
        let mut m = monitor(t0);
        m.record(Ok(sample(10, 999)), t0 + Duration::from_secs(1));
        assert_eq!(m.cpu_percent(), None);
        assert!(m.history().is_empty());
        m.record(Ok(sample(20, 999)), t0 + Duration::from_secs(2));
        assert_eq!(m.cpu_percent(), Some(10.0));
    }

    #[test]
    fn a_vanished_process_keeps_the_last_sample_but_exports_nothing_stale() {
        let t0 = Instant::now();
        let mut m = monitor(t0);
        let before = String::from_utf8(m.metrics_page().to_vec()).unwrap();
        assert!(before.contains("\nprocess_threads 4\n"));
        m.record(
            Err(io::Error::from(io::ErrorKind::NotFound)),
            t0 + Duration::from_secs(1),
        );
        assert!(m.failure().is_some());
        let after = String::from_utf8(m.metrics_page().to_vec()).unwrap();
        assert!(after.contains("\nprocmon_up 0\n"));
        assert!(after.contains("\nprocmon_sample_errors_total 1\n"));
        assert!(!after.contains("process_threads"));
        let html = String::from_utf8(m.html_page().to_vec()).unwrap();
        assert!(html.contains("Sampling failed"));
        assert!(html.contains("worker"));
        // And it recovers.
        m.record(Ok(sample(5, 7)), t0 + Duration::from_secs(2));
        assert!(m.failure().is_none());
        assert!(String::from_utf8_lossy(m.metrics_page()).contains("procmon_up 1"));
    }

    #[test]
    fn metrics_are_well_formed_prometheus_text() {
        let mut m = Monitor::new(std::process::id()).unwrap();
        m.sample_now();
        let text = String::from_utf8(m.metrics_page().to_vec()).unwrap();
        let mut declared = std::collections::HashSet::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let (name, kind) = rest.split_once(' ').unwrap();
                assert!(["gauge", "counter"].contains(&kind), "{line}");
                declared.insert(name.to_string());
            } else if !line.starts_with("# HELP ") {
                let name = line.split(['{', ' ']).next().unwrap();
                assert!(declared.contains(name), "sample before its TYPE: {line}");
                let value = line.rsplit(' ').next().unwrap();
                assert!(value.parse::<f64>().is_ok(), "{line}");
            }
        }
        for name in [
            "process_cpu_seconds_total",
            "process_resident_memory_bytes",
            "process_threads",
            "process_open_fds",
            "process_start_time_seconds",
        ] {
            assert!(declared.contains(name), "{name} missing from\n{text}");
        }
    }

    #[test]
    fn pages_are_cached_until_the_next_sample() {
        let t0 = Instant::now();
        let mut m = monitor(t0);
        let first = m.html_page().as_ptr();
        assert_eq!(m.html_page().as_ptr(), first);
        m.record(Ok(sample(1, 7)), t0 + Duration::from_secs(1));
        assert!(m.pages.html.is_none());
    }
}
