//! Where the agent's log goes and how it looks: stderr, as text or JSON;
//! and when stderr is the journal (systemd sets `JOURNAL_STREAM` to its
//! device and inode), one line per event with an sd-daemon(3) `<N>`
//! priority prefix and no timestamp or level word (the journal has both),
//! so `journalctl -p warning` finds what matters.

use std::io::Write;
use tracing::{Level, Metadata};
use tracing_subscriber::fmt::MakeWriter;

/// The agent's log format on stderr.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum Format {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Installs the global subscriber. `REGENT_LOG` (else `RUST_LOG`) filters; `info` by default.
pub fn init(format: Format) {
    use tracing_subscriber::EnvFilter;
    let filter = std::env::var("REGENT_LOG")
        .ok()
        .and_then(|v| EnvFilter::try_new(v).ok())
        .or_else(|| EnvFilter::try_from_default_env().ok())
        .unwrap_or_else(|| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false);
    match (format, stderr_is_journal()) {
        (Format::Json, _) => builder.json().with_writer(std::io::stderr).init(),
        (Format::Text, true) => builder
            .without_time()
            .with_level(false)
            .with_ansi(false)
            .with_writer(Journal)
            .init(),
        (Format::Text, false) => builder
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .with_writer(std::io::stderr)
            .init(),
    }
}

/// Whether stderr is the stream `JOURNAL_STREAM` names (not merely
/// inherited by a process whose stderr went elsewhere).
fn stderr_is_journal() -> bool {
    let Some(v) = std::env::var_os("JOURNAL_STREAM") else {
        return false;
    };
    let Some((dev, ino)) = v.to_str().and_then(|s| s.split_once(':')) else {
        return false;
    };
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: fstat on fd 2 into a struct we own.
    if unsafe { libc::fstat(2, &mut st) } != 0 {
        return false;
    }
    dev.parse::<u64>().ok() == Some(st.st_dev as u64)
        && ino.parse::<u64>().ok() == Some(st.st_ino as u64)
}

/// The sd-daemon(3) priority of a level.
fn priority(level: &Level) -> u8 {
    match *level {
        Level::ERROR => 3,
        Level::WARN => 4,
        Level::INFO => 6,
        _ => 7,
    }
}

/// Makes one [`Entry`] per event, knowing its level.
struct Journal;

impl<'a> MakeWriter<'a> for Journal {
    type Writer = Entry;

    fn make_writer(&'a self) -> Entry {
        Entry::new(6)
    }

    fn make_writer_for(&'a self, meta: &Metadata<'_>) -> Entry {
        Entry::new(priority(meta.level()))
    }
}

/// One event, buffered, written as one prefixed line when dropped.
struct Entry {
    priority: u8,
    buf: Vec<u8>,
}

impl Entry {
    fn new(priority: u8) -> Entry {
        Entry {
            priority,
            buf: Vec::with_capacity(256),
        }
    }

    /// The event as the journal gets it: one line (the journal splits at
    /// newlines, and an event is one entry), prefixed.
    fn line(&self) -> Vec<u8> {
        let text = String::from_utf8_lossy(&self.buf);
        let text = text.trim_end_matches('\n').trim_start();
        let mut line = format!("<{}>", self.priority).into_bytes();
        line.extend(text.replace('\n', " ").into_bytes());
        line.push(b'\n');
        line
    }
}

impl Write for Entry {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(data);
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for Entry {
    fn drop(&mut self) {
        if self.buf.is_empty() {
            return;
        }
        // One write(2) per entry: lines of concurrent events never interleave.
        let _ = std::io::stderr().lock().write_all(&self.line());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_entry_is_one_prefixed_line() {
        let mut e = Entry::new(priority(&Level::WARN));
        e.write_all(b" refresh failed\ncaused by: timeout\n")
            .unwrap();
        assert_eq!(e.line(), b"<4>refresh failed caused by: timeout\n");
        assert_eq!(priority(&Level::ERROR), 3);
        assert_eq!(priority(&Level::DEBUG), 7);
    }
}
