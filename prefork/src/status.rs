//! The status file: one `key=value` line per process, rewritten
//! atomically (written beside the target, then renamed over it), so a
//! reader never sees half a file.
//!
//! ```text
//! master pid=4100 generation=2 state=running uptime_ms=61234 workers=2
//! worker slot=0 pid=4190 generation=2 state=running uptime_ms=1520 restarts=0 connections=12
//! worker slot=1 pid=4191 generation=2 state=running uptime_ms=1518 restarts=3 connections=9
//! worker slot=0 pid=4101 generation=1 state=draining uptime_ms=61200 restarts=0 connections=2
//! slot slot=1 state=backoff restart_in_ms=1800 restarts=5 last_exit=killed_by_signal_6
//! ```
//!
//! `worker` lines are live processes (the current generation first, then
//! older ones still draining); a `slot` line stands for a slot that has no
//! current worker because it waits for a restart.

use std::io::{self, Write};
use std::path::Path;

/// One line of the status file.
pub(crate) struct Line {
    kind: &'static str,
    fields: Vec<(&'static str, String)>,
}

impl Line {
    pub(crate) fn new(kind: &'static str) -> Line {
        Line {
            kind,
            fields: Vec::new(),
        }
    }

    pub(crate) fn field(mut self, key: &'static str, value: impl ToString) -> Line {
        // Values never contain spaces: a reader splits on them.
        self.fields.push((key, value.to_string().replace(' ', "_")));
        self
    }
}

/// Renders the lines as the file's text.
pub(crate) fn render(lines: &[Line]) -> String {
    let mut out = String::new();
    for line in lines {
        out.push_str(line.kind);
        for (k, v) in &line.fields {
            out.push(' ');
            out.push_str(k);
            out.push('=');
            out.push_str(v);
        }
        out.push('\n');
    }
    out
}

/// Writes `text` to `path` atomically.
pub(crate) fn write(path: &Path, text: &str) -> io::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let mut file = std::fs::File::create(&tmp)?;
    file.write_all(text.as_bytes())?;
    drop(file);
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_space_separated_pairs() {
        let text = render(&[
            Line::new("master")
                .field("pid", 1)
                .field("state", "running"),
            Line::new("slot").field("last_exit", "killed by signal 9"),
        ]);
        assert_eq!(
            text,
            "master pid=1 state=running\nslot last_exit=killed_by_signal_9\n"
        );
    }
}
