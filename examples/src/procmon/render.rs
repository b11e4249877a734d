//! The three pages procmon serves, rendered from a [`Monitor`]'s latest
//! sample: an HTML overview, the CPU chart as SVG (drawn with `plotters`:
//! one `<polyline>` of the samples over a labelled grid), and Prometheus'
//! text exposition format.
//!
//! Pure functions of the monitor's state; the monitor caches their output
//! until the next sample, so a burst of requests renders each page once.
//! Everything that came from the process (its name, command line) is
//! escaped for the format it lands in.
//!
//! ```
//! use examples::procmon::render::{escape_html, escape_label, fmt_bytes};
//! assert_eq!(escape_html("<a & b>"), "&lt;a &amp; b&gt;");
//! assert_eq!(escape_label("say \"hi\"\n"), r#"say \"hi\"\n"#);
//! assert_eq!(fmt_bytes(1536), "1.5 KiB");
//! ```

use super::history::History;
use super::Monitor;
use std::fmt::Write as _;
use std::time::Duration;

/// `&`, `<`, `>`, `"` and `'` as HTML entities.
pub fn escape_html(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A Prometheus label value: backslash, double quote and newline escaped.
pub fn escape_label(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

/// Bytes with a binary unit: `512 B`, `1.5 KiB`, `12.3 MiB`.
pub fn fmt_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// Seconds as `[Nd ]HH:MM:SS`.
pub fn fmt_age(secs: f64) -> String {
    let total = secs.max(0.0) as u64;
    let (days, rest) = (total / 86_400, total % 86_400);
    let hms = format!(
        "{:02}:{:02}:{:02}",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    );
    if days > 0 {
        format!("{days}d {hms}")
    } else {
        hms
    }
}

/// A span for chart labels: `45 s`, `10 min`, `2.5 h`.
fn fmt_span(d: Duration) -> String {
    let secs = d.as_secs_f64();
    if secs < 120.0 {
        format!("{secs:.0} s")
    } else if secs < 7200.0 {
        format!("{:.0} min", secs / 60.0)
    } else {
        format!("{:.1} h", secs / 3600.0)
    }
}

fn kib(v: Option<u64>) -> String {
    v.map_or_else(|| "-".into(), |k| fmt_bytes(k.saturating_mul(1024)))
}

fn opt<T: std::fmt::Display>(v: Option<T>) -> String {
    v.map_or_else(|| "not readable".into(), |v| v.to_string())
}

// ----- HTML -------------------------------------------------------------

/// The overview page: a table of the latest sample and the CPU chart.
pub fn html(m: &Monitor) -> String {
    let s = m.sample();
    let name = escape_html(&s.stat.comm);
    let mut out = String::with_capacity(4096);
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\">\
         <meta http-equiv=\"refresh\" content=\"{refresh}\">\
         <title>procmon: {name} ({pid})</title>\
         <style>body{{font-family:sans-serif;margin:2em}}\
         table{{border-collapse:collapse}}td,th{{padding:2px 12px;text-align:left}}\
         th{{color:#555;font-weight:normal}}.warn{{color:#b00}}</style></head><body>\n\
         <h1>{name} <small>(pid {pid}{host})</small></h1>\n",
        refresh = m.interval().as_secs().clamp(1, 60) * 5,
        pid = m.pid(),
        host = if m.system().hostname.is_empty() {
            String::new()
        } else {
            format!(" on {}", escape_html(&m.system().hostname))
        },
    );
    if let Some(why) = m.failure() {
        let _ = writeln!(
            out,
            "<p class=\"warn\">Sampling failed: {} - showing the last good sample.</p>",
            escape_html(why)
        );
    }
    if !m.cmdline().is_empty() {
        let _ = writeln!(out, "<p><code>{}</code></p>", escape_html(m.cmdline()));
    }
    out.push_str("<table>\n");
    let mut row = |label: &str, value: String| {
        let _ = writeln!(out, "<tr><th>{label}</th><td>{value}</td></tr>");
    };
    row("State", s.stat.state.to_string());
    row("Parent pid", s.stat.ppid.to_string());
    if let Some(age) = m.age_secs() {
        row("Running for", fmt_age(age));
    }
    row(
        "CPU now",
        m.cpu_percent()
            .map_or_else(|| "measuring...".into(), |p| format!("{p:.1} %")),
    );
    row(
        "CPU time",
        format!(
            "{:.2} s user, {:.2} s system",
            m.ticks_to_secs(s.stat.utime_ticks),
            m.ticks_to_secs(s.stat.stime_ticks)
        ),
    );
    row("Threads", s.stat.threads.to_string());
    row("Nice", s.stat.nice.to_string());
    row(
        "Resident memory",
        format!(
            "{} (peak {})",
            fmt_bytes(m.resident_bytes()),
            kib(s.status.vm_hwm_kib)
        ),
    );
    row(
        "Virtual memory",
        format!(
            "{} (peak {})",
            fmt_bytes(s.stat.vsize_bytes),
            kib(s.status.vm_peak_kib)
        ),
    );
    row("Data + heap", kib(s.status.vm_data_kib));
    row("Swapped out", kib(s.status.vm_swap_kib));
    row(
        "Open files",
        match (s.open_fds, s.max_fds) {
            (Some(n), Some(max)) => format!("{n} of {max}"),
            (n, _) => opt(n),
        },
    );
    row(
        "Context switches",
        format!(
            "{} voluntary, {} involuntary",
            opt(s.status.voluntary_switches),
            opt(s.status.involuntary_switches)
        ),
    );
    row(
        "Page faults",
        format!(
            "{} minor, {} major",
            s.stat.minor_faults, s.stat.major_faults
        ),
    );
    row(
        "I/O",
        match &s.io {
            Some(io) => format!(
                "read {} in {} calls ({} from storage), wrote {} in {} calls ({} to storage)",
                fmt_bytes(io.rchar),
                io.syscr,
                fmt_bytes(io.read_bytes),
                fmt_bytes(io.wchar),
                io.syscw,
                fmt_bytes(io.write_bytes)
            ),
            None => "not readable".into(),
        },
    );
    row(
        "Samples",
        format!("{} every {:?}", m.samples(), m.interval()),
    );
    out.push_str("</table>\n");
    let _ = writeln!(
        out,
        "<p><a href=\"/cpu.svg\"><img src=\"/cpu.svg\" width=\"{CHART_W}\" height=\"{CHART_H}\" \
         alt=\"CPU usage chart\"></a></p>\n\
         <p><a href=\"/cpu.svg\">/cpu.svg</a> &middot; <a href=\"/metrics\">/metrics</a></p>\n\
         </body></html>"
    );
    out
}

// ----- SVG --------------------------------------------------------------

/// Chart size in pixels.
pub const CHART_W: u32 = 680;
/// Chart height in pixels.
pub const CHART_H: u32 = 260;

/// The CPU chart, drawn with `plotters` on its SVG backend: `history`
/// (percent, oldest first, one reading per `interval`) as a line over the
/// last `capacity` intervals, newest at the right edge ("now"). The
/// vertical scale is 0-100 %, stretched in steps of 100 % when a
/// multi-threaded process uses more than one core.
pub fn cpu_svg(history: &History, interval: Duration, title: &str) -> String {
    let mut out = String::with_capacity(history.len() * 12 + 4096);
    let failure = draw_cpu_chart(&mut out, history, interval, title)
        .err()
        .map(|e| e.to_string());
    if let Some(e) = failure {
        // Drawing into a String cannot fail for I/O reasons; should plotters
        // refuse anyway, serve a valid (empty) chart that says why.
        out = format!(
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{CHART_W}\" height=\"{CHART_H}\">\
             <text x=\"10\" y=\"20\">chart failed: {}</text></svg>\n",
            escape_html(&e)
        );
    }
    out
}

/// The colour of the CPU line.
const SERIES_COLOR: plotters::style::RGBColor = plotters::style::RGBColor(0x1f, 0x77, 0xb4);

fn draw_cpu_chart<'a>(
    out: &'a mut String,
    history: &History,
    interval: Duration,
    title: &str,
) -> Result<(), Box<dyn std::error::Error + 'a>> {
    use plotters::prelude::*;

    let top_value = history
        .max()
        .map_or(100.0, |m| ((m / 100.0).ceil() * 100.0).max(100.0));
    let slots = history.capacity().max(2);
    let step = interval.as_secs_f64();
    let window_secs = step * (slots - 1) as f64;
    let window = Duration::from_secs_f64(window_secs);

    let root = SVGBackend::with_string(out, (CHART_W, CHART_H)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            format!("CPU % of {title} - last {}", fmt_span(window)),
            ("sans-serif", 15),
        )
        .margin(10)
        .x_label_area_size(28)
        .y_label_area_size(48)
        // Both axes in chart units - x: the fraction of the window (1 is
        // now), y: quarters of the scale - so the grid falls on -window,
        // -window/2, now and on every 25 % of the scale.
        .build_cartesian_2d(0.0..1.0, 0.0..4.0)?;
    chart
        .configure_mesh()
        .max_light_lines(0)
        .bold_line_style(RGBColor(221, 221, 221))
        .x_labels(3)
        .y_labels(5)
        .x_label_formatter(&|x: &f64| {
            let ago = (1.0 - x) * window_secs;
            if ago < 1e-9 {
                "now".to_string()
            } else {
                format!("-{}", fmt_span(Duration::from_secs_f64(ago)))
            }
        })
        .y_label_formatter(&|y: &f64| format!("{:.0}%", y * top_value / 4.0))
        .draw()?;

    let n = history.len();
    let first = (slots - n.min(slots)) as f64;
    let points = history.iter().enumerate().map(|(i, value)| {
        let x = (first + i as f64) / (slots - 1) as f64;
        (x, 4.0 * value.clamp(0.0, top_value) / top_value)
    });
    if n > 0 {
        chart.draw_series(LineSeries::new(points, SERIES_COLOR.stroke_width(2)))?;
    }
    let (w, h) = (CHART_W as i32, CHART_H as i32);
    if n < 2 {
        root.draw(&Text::new(
            "collecting samples...",
            (w / 2 - 60, h / 2),
            ("sans-serif", 13)
                .into_font()
                .color(&RGBColor(136, 136, 136)),
        ))?;
    }
    if let Some(last) = history.last() {
        root.draw(&Text::new(
            format!("now {last:.1}%"),
            (w - 90, 12),
            ("sans-serif", 12).into_font(),
        ))?;
    }
    root.present()?;
    Ok(())
}

// ----- Prometheus -------------------------------------------------------

/// Appends one metric family: its `# HELP` and `# TYPE` lines and samples
/// (`labels` without braces, or empty).
fn family(out: &mut String, name: &str, kind: &str, help: &str, samples: &[(&str, String)]) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
    for (labels, value) in samples {
        if labels.is_empty() {
            let _ = writeln!(out, "{name} {value}");
        } else {
            let _ = writeln!(out, "{name}{{{labels}}} {value}");
        }
    }
}

/// The `/metrics` page in Prometheus' text format (version 0.0.4), with the
/// standard `process_*` names where they exist. While the process cannot be
/// read only `procmon_*` metrics are given, so nothing stale is exported.
pub fn metrics(m: &Monitor) -> String {
    let mut out = String::with_capacity(4096);
    let up = m.failure().is_none();
    family(
        &mut out,
        "procmon_up",
        "gauge",
        "1 if the last sample of the process succeeded.",
        &[("", u8::from(up).to_string())],
    );
    family(
        &mut out,
        "procmon_samples_total",
        "counter",
        "Samples taken of the process.",
        &[("", m.samples().to_string())],
    );
    family(
        &mut out,
        "procmon_sample_errors_total",
        "counter",
        "Samples that failed (the process could not be read).",
        &[("", m.sample_errors().to_string())],
    );
    if !up {
        return out;
    }
    let s = m.sample();
    family(
        &mut out,
        "process_info",
        "gauge",
        "The monitored process; always 1.",
        &[(
            &format!(
                "pid=\"{}\",name=\"{}\"",
                m.pid(),
                escape_label(&s.stat.comm)
            ),
            "1".into(),
        )],
    );
    let user = m.ticks_to_secs(s.stat.utime_ticks);
    let system = m.ticks_to_secs(s.stat.stime_ticks);
    family(
        &mut out,
        "process_cpu_seconds_total",
        "counter",
        "Total user and system CPU time spent in seconds.",
        &[("", (user + system).to_string())],
    );
    family(
        &mut out,
        "process_cpu_user_seconds_total",
        "counter",
        "CPU time spent in user mode in seconds.",
        &[("", user.to_string())],
    );
    family(
        &mut out,
        "process_cpu_system_seconds_total",
        "counter",
        "CPU time spent in kernel mode in seconds.",
        &[("", system.to_string())],
    );
    if let Some(p) = m.cpu_percent() {
        family(
            &mut out,
            "procmon_cpu_percent",
            "gauge",
            "CPU usage over the last sampling interval, percent of one core.",
            &[("", format!("{p:.2}"))],
        );
    }
    family(
        &mut out,
        "process_resident_memory_bytes",
        "gauge",
        "Resident memory size in bytes.",
        &[("", m.resident_bytes().to_string())],
    );
    if let Some(hwm) = s.status.vm_hwm_kib {
        family(
            &mut out,
            "process_resident_memory_max_bytes",
            "gauge",
            "Peak resident memory size in bytes.",
            &[("", hwm.saturating_mul(1024).to_string())],
        );
    }
    family(
        &mut out,
        "process_virtual_memory_bytes",
        "gauge",
        "Virtual memory size in bytes.",
        &[("", s.stat.vsize_bytes.to_string())],
    );
    if let Some(peak) = s.status.vm_peak_kib {
        family(
            &mut out,
            "process_virtual_memory_max_bytes",
            "gauge",
            "Peak virtual memory size in bytes.",
            &[("", peak.saturating_mul(1024).to_string())],
        );
    }
    family(
        &mut out,
        "process_threads",
        "gauge",
        "Number of OS threads in the process.",
        &[("", s.stat.threads.to_string())],
    );
    if let Some(n) = s.open_fds {
        family(
            &mut out,
            "process_open_fds",
            "gauge",
            "Number of open file descriptors.",
            &[("", n.to_string())],
        );
    }
    if let Some(n) = s.max_fds {
        family(
            &mut out,
            "process_max_fds",
            "gauge",
            "Maximum number of open file descriptors.",
            &[("", n.to_string())],
        );
    }
    if let Some(start) = m.start_time_secs() {
        family(
            &mut out,
            "process_start_time_seconds",
            "gauge",
            "Start time of the process since unix epoch in seconds.",
            &[("", format!("{start:.2}"))],
        );
    }
    family(
        &mut out,
        "process_page_faults_total",
        "counter",
        "Page faults, by kind.",
        &[
            ("kind=\"minor\"", s.stat.minor_faults.to_string()),
            ("kind=\"major\"", s.stat.major_faults.to_string()),
        ],
    );
    if let (Some(v), Some(nv)) = (s.status.voluntary_switches, s.status.involuntary_switches) {
        family(
            &mut out,
            "process_context_switches_total",
            "counter",
            "Context switches, by kind.",
            &[
                ("kind=\"voluntary\"", v.to_string()),
                ("kind=\"involuntary\"", nv.to_string()),
            ],
        );
    }
    if let Some(io) = &s.io {
        family(
            &mut out,
            "process_io_read_chars_total",
            "counter",
            "Bytes passed to read system calls (files, sockets, pipes).",
            &[("", io.rchar.to_string())],
        );
        family(
            &mut out,
            "process_io_write_chars_total",
            "counter",
            "Bytes passed to write system calls.",
            &[("", io.wchar.to_string())],
        );
        family(
            &mut out,
            "process_io_read_syscalls_total",
            "counter",
            "Read system calls.",
            &[("", io.syscr.to_string())],
        );
        family(
            &mut out,
            "process_io_write_syscalls_total",
            "counter",
            "Write system calls.",
            &[("", io.syscw.to_string())],
        );
        family(
            &mut out,
            "process_io_read_bytes_total",
            "counter",
            "Bytes read from storage.",
            &[("", io.read_bytes.to_string())],
        );
        family(
            &mut out,
            "process_io_write_bytes_total",
            "counter",
            "Bytes written to storage.",
            &[("", io.write_bytes.to_string())],
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_and_ages() {
        assert_eq!(fmt_bytes(0), "0 B");
        assert_eq!(fmt_bytes(10 * 1024 * 1024), "10.0 MiB");
        assert_eq!(fmt_age(3661.5), "01:01:01");
        assert_eq!(fmt_age(90_000.0), "1d 01:00:00");
        assert_eq!(fmt_span(Duration::from_secs(599)), "10 min");
        assert_eq!(fmt_span(Duration::from_secs(30)), "30 s");
    }

    /// The `points` of every `<polyline>` in `svg` drawn in the series
    /// colour (axes and ticks are polylines too), as pixel pairs.
    fn polylines(svg: &str) -> Vec<Vec<(f64, f64)>> {
        svg.split("<polyline")
            .skip(1)
            .filter(|tag| {
                tag.split("/>")
                    .next()
                    .unwrap()
                    .contains("stroke=\"#1F77B4\"")
            })
            .map(|tag| {
                let points = tag.split("points=\"").nth(1).unwrap();
                let points = points.split('"').next().unwrap();
                points
                    .split_whitespace()
                    .map(|p| {
                        let (x, y) = p.split_once(',').unwrap();
                        (x.parse().unwrap(), y.parse().unwrap())
                    })
                    .collect()
            })
            .collect()
    }

    /// The texts of the `<text>` elements in `svg`.
    fn texts(svg: &str) -> Vec<String> {
        svg.split("<text")
            .skip(1)
            .map(|t| {
                let body = t.split_once('>').unwrap().1;
                body.split("</text>").next().unwrap().trim().to_string()
            })
            .collect()
    }

    #[test]
    fn chart_is_svg_with_one_polyline_scaled_past_one_core() {
        let mut h = History::with_capacity(600);
        let empty = cpu_svg(&h, Duration::from_secs(1), "x<y");
        assert!(empty.trim_start().starts_with("<svg"), "{empty}");
        assert!(empty.contains("collecting samples"));
        assert!(empty.contains("x&lt;y"));
        assert!(polylines(&empty).is_empty(), "{empty}");
        for i in 0..700 {
            h.push(f64::from(i % 250));
        }
        let svg = cpu_svg(&h, Duration::from_secs(1), "busy");
        assert!(svg.trim_end().ends_with("</svg>"));
        let labels = texts(&svg);
        for label in ["0%", "150%", "300%", "-10 min", "-5 min", "now"] {
            assert!(labels.iter().any(|l| l == label), "{label} in {labels:?}");
        }
        let lines = polylines(&svg);
        assert_eq!(lines.len(), 1, "one line of samples: {svg}");
        let points = &lines[0];
        assert_eq!(points.len(), 600, "one point per kept sample");
        // Inside the chart, oldest at the left.
        for &(x, y) in points {
            assert!((0.0..=f64::from(CHART_W)).contains(&x), "{x},{y}");
            assert!((0.0..=f64::from(CHART_H)).contains(&y), "{x},{y}");
        }
        assert!(points.windows(2).all(|w| w[0].0 <= w[1].0), "x grows");
        // Point k is reading 100 + k, of (100 + k) % 250 %: the last is
        // 199 %, point 150 is 0 % - drawn lower (a larger y).
        assert!(points[599].1 < points[150].1, "199 % is drawn above 0 %");
    }

    #[test]
    fn a_few_samples_sit_at_the_right_edge() {
        let mut h = History::with_capacity(600);
        h.push(10.0);
        h.push(20.0);
        h.push(30.0);
        let svg = cpu_svg(&h, Duration::from_secs(1), "idle");
        let lines = polylines(&svg);
        assert_eq!(lines.len(), 1, "{svg}");
        assert_eq!(lines[0].len(), 3);
        assert!(lines[0][0].0 > f64::from(CHART_W) * 0.8, "{:?}", lines[0]);
        let labels = texts(&svg);
        assert!(labels.iter().any(|l| l == "100%"), "{labels:?}");
        assert!(labels.iter().any(|l| l == "now 30.0%"), "{labels:?}");
    }
}
