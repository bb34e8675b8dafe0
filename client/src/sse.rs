//! The `text/event-stream` format (WHATWG HTML, "Server-sent events"), parsed
//! as it arrives, with the guarantees a bridge needs:
//!
//! - an event is delivered only once its blank line has arrived: a stream cut
//!   in the middle of an event delivers nothing of it;
//! - the last event id moves only when an event is dispatched, so resuming
//!   after it neither skips nor repeats one;
//! - CR, LF and CRLF all end a line (also a CRLF split across two chunks);
//! - every byte is scanned once, and an event (with its unfinished line) is
//!   bounded: a server that never ends one gets an error, not our memory.

use std::time::Duration;

/// One server-sent event that carried data.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Event {
    /// The last event id as of this event (its own `id`, or an earlier one).
    pub id: Option<String>,
    /// Its `event` type (`message` when not said).
    pub event: Option<String>,
    /// Its `data` lines, joined by newlines.
    pub data: String,
}

/// An event (with its unfinished line) grew past the limit.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("an event larger than {} MiB", .0 / (1024 * 1024))]
pub struct TooLarge(pub usize);

/// The parser, fed in chunks.
pub struct Parser {
    /// Bytes not yet consumed; `buf[start..]` is the current unfinished line.
    buf: Vec<u8>,
    start: usize,
    /// How far `buf` was searched for a line end.
    scanned: usize,
    /// The last line ended in CR: an LF right after it belongs to it.
    after_cr: bool,
    /// At the very start (a byte order mark is dropped there).
    fresh: bool,
    data: Vec<u8>,
    has_data: bool,
    event: Option<String>,
    /// The id buffer: set by `id:` lines, made the last id at dispatch.
    id: Option<String>,
    last_id: Option<String>,
    retry: Option<Duration>,
    max: usize,
}

impl Parser {
    /// A parser for events of at most `max` bytes.
    pub fn new(max: usize) -> Parser {
        Parser {
            buf: Vec::new(),
            start: 0,
            scanned: 0,
            after_cr: false,
            fresh: true,
            data: Vec::new(),
            has_data: false,
            event: None,
            id: None,
            last_id: None,
            retry: None,
            max,
        }
    }

    /// The id of the last event dispatched (to resume after).
    pub fn last_id(&self) -> Option<&str> {
        self.last_id.as_deref()
    }

    /// The reconnection time the server asked for, if it did.
    pub fn retry(&self) -> Option<Duration> {
        self.retry
    }

    /// Adds bytes that arrived. Call [`Parser::next_event`] until it says
    /// `None` before feeding more.
    pub fn feed(&mut self, chunk: &[u8]) -> Result<(), TooLarge> {
        if self.start > 0 {
            // What is left is one unfinished line: move it to the front once.
            self.buf.drain(..self.start);
            self.scanned -= self.start;
            self.start = 0;
        }
        let mut chunk = chunk;
        if self.fresh && !chunk.is_empty() {
            let bom = b"\xEF\xBB\xBF";
            let have = self.buf.len() + chunk.len();
            if have < bom.len() && bom.starts_with(&[&self.buf[..], chunk].concat()) {
                // Could still be a split byte order mark: wait for more.
                self.buf.extend_from_slice(chunk);
                return Ok(());
            }
            self.fresh = false;
            let mut joined = std::mem::take(&mut self.buf);
            joined.extend_from_slice(chunk);
            let skip = if joined.starts_with(bom) {
                bom.len()
            } else {
                0
            };
            self.buf = joined.split_off(skip);
            chunk = &[];
        }
        if self.after_cr {
            if let Some(rest) = chunk.strip_prefix(b"\n") {
                chunk = rest;
                self.after_cr = false;
            } else if !chunk.is_empty() {
                self.after_cr = false;
            }
        }
        self.buf.extend_from_slice(chunk);
        if self.buf.len() + self.data.len() > self.max {
            return Err(TooLarge(self.max));
        }
        Ok(())
    }

    /// The next complete event with data, if one has arrived.
    pub fn next_event(&mut self) -> Option<Event> {
        loop {
            let from = self.scanned.max(self.start);
            let Some(i) = memchr::memchr2(b'\n', b'\r', &self.buf[from..]).map(|i| from + i) else {
                self.scanned = self.buf.len();
                return None;
            };
            let mut end = i + 1;
            if self.buf[i] == b'\r' {
                match self.buf.get(i + 1) {
                    Some(b'\n') => end += 1,
                    Some(_) => {}
                    // The LF may come with the next chunk.
                    None => self.after_cr = true,
                }
            }
            let (line_start, line_end) = (self.start, i);
            self.start = end;
            self.scanned = end;
            let line = std::mem::take(&mut self.buf);
            let ev = self.line(&line[line_start..line_end]);
            self.buf = line;
            if let Some(ev) = ev {
                return Some(ev);
            }
        }
    }

    /// One whole line; an event when it ends one that has data.
    fn line(&mut self, line: &[u8]) -> Option<Event> {
        if line.is_empty() {
            return self.dispatch();
        }
        if line[0] == b':' {
            return None; // a comment (keep-alive)
        }
        let (field, value) = match memchr::memchr(b':', line) {
            Some(c) => {
                let v = &line[c + 1..];
                (&line[..c], v.strip_prefix(b" ").unwrap_or(v))
            }
            None => (line, &b""[..]),
        };
        match field {
            b"data" => {
                if self.has_data {
                    self.data.push(b'\n');
                }
                self.data.extend_from_slice(value);
                self.has_data = true;
            }
            b"event" => self.event = Some(String::from_utf8_lossy(value).into_owned()),
            b"id" if !value.contains(&0) => {
                self.id = Some(String::from_utf8_lossy(value).into_owned());
            }
            b"retry" if !value.is_empty() && value.iter().all(u8::is_ascii_digit) => {
                if let Ok(ms) = std::str::from_utf8(value).unwrap_or("").parse::<u64>() {
                    self.retry = Some(Duration::from_millis(ms));
                }
            }
            _ => {}
        }
        None
    }

    /// The blank line: the event is complete.
    fn dispatch(&mut self) -> Option<Event> {
        if self.id.is_some() {
            self.last_id = self.id.clone();
        }
        let event = self.event.take();
        // No data, or only an empty `data:` line: nothing to dispatch (WHATWG).
        if !std::mem::replace(&mut self.has_data, false) || self.data.is_empty() {
            self.data.clear();
            return None;
        }
        let data = String::from_utf8_lossy(&std::mem::take(&mut self.data)).into_owned();
        Some(Event {
            id: self.last_id.clone(),
            event,
            data,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every event of `chunks`, fed in order, and the parser after them.
    fn events(chunks: &[&[u8]]) -> (Vec<Event>, Parser) {
        let mut p = Parser::new(1024);
        let mut out = Vec::new();
        for c in chunks {
            p.feed(c).unwrap();
            while let Some(e) = p.next_event() {
                out.push(e);
            }
        }
        (out, p)
    }

    #[test]
    fn events_across_chunks_with_ids_retry_and_comments() {
        let (ev, p) = events(&[
            b": keep-alive\n\nid: 1\nretry: 2500\ndata:\n\n",
            b"event: message\nid: 2\ndata: {\"a\":",
            b"1}\n\nid: 3\r\ndata: {\"b\":\r\ndata: 2}\r\n\r\n",
        ]);
        assert_eq!(ev[0].data, "{\"a\":1}");
        assert_eq!(ev[0].event.as_deref(), Some("message"));
        assert_eq!(ev[0].id.as_deref(), Some("2"));
        assert_eq!(ev[1].data, "{\"b\":\n2}");
        assert_eq!(ev[1].id.as_deref(), Some("3"));
        assert_eq!(ev.len(), 2);
        assert_eq!(p.last_id(), Some("3"));
        assert_eq!(p.retry(), Some(Duration::from_millis(2500)));
    }

    #[test]
    fn an_event_cut_before_its_blank_line_is_never_delivered() {
        // The connection drops after the data line: nothing of the event, and
        // the last id is still the one before it (resume from there).
        let (ev, p) = events(&[b"id: 1\ndata: one\n\nid: 2\ndata: {\"half\":"]);
        assert_eq!(ev.len(), 1);
        assert_eq!(p.last_id(), Some("1"));
        let (ev, p) = events(&[b"id: 1\ndata: one\n\nid: 2\ndata: {\"whole\":true}\n"]);
        assert_eq!(ev.len(), 1, "no blank line yet: {ev:?}");
        assert_eq!(p.last_id(), Some("1"));
    }

    #[test]
    fn the_last_id_moves_only_as_events_are_taken() {
        let mut p = Parser::new(1024);
        p.feed(b"id: a\ndata: 1\n\nid: b\ndata: 2\n\n").unwrap();
        assert_eq!(p.last_id(), None);
        assert_eq!(p.next_event().unwrap().data, "1");
        assert_eq!(p.last_id(), Some("a"));
        assert_eq!(p.next_event().unwrap().data, "2");
        assert_eq!(p.last_id(), Some("b"));
        assert!(p.next_event().is_none());
    }

    #[test]
    fn cr_lf_and_crlf_all_end_lines_even_split_across_chunks() {
        let (ev, p) = events(&[
            b"id: x\rdata: 1\r",
            b"\ndata: 2\r",
            b"\r",
            b"\n",
            b"data: 3\n\n",
        ]);
        // "\r" + "\r" + "\n": CR ends "data: 2", then CRLF is one blank line.
        assert_eq!(ev[0].data, "1\n2");
        assert_eq!(ev[0].id.as_deref(), Some("x"), "no CR left in the id");
        assert_eq!(ev[1].data, "3");
        assert_eq!(p.last_id(), Some("x"));
        let (ev, _) = events(&[b"data: a\r", b"\r", b"data: b\r\r"]);
        assert_eq!(
            ev.iter().map(|e| e.data.as_str()).collect::<Vec<_>>(),
            ["a", "b"]
        );
    }

    #[test]
    fn a_byte_order_mark_is_dropped_even_split() {
        let (ev, _) = events(&[b"\xEF\xBB", b"\xBFdata: x\n\n"]);
        assert_eq!(ev[0].data, "x");
    }

    #[test]
    fn an_event_past_the_limit_is_an_error_not_memory() {
        let mut p = Parser::new(64);
        let mut r = Ok(());
        for _ in 0..100 {
            r = p.feed(b"data: 0123456789\n");
            while p.next_event().is_some() {}
            if r.is_err() {
                break;
            }
        }
        assert_eq!(r, Err(TooLarge(64)));
        // One long line without an end.
        let mut p = Parser::new(64);
        assert!(p.feed(&[b'x'; 40]).is_ok());
        assert!(p.next_event().is_none());
        assert!(p.feed(&[b'x'; 40]).is_err());
    }

    #[test]
    fn ids_with_nul_and_bad_retries_are_ignored() {
        let (_, p) = events(&[b"id: 1\n\nid: a\0b\nretry: 1x\ndata: z\n\n"]);
        assert_eq!(p.last_id(), Some("1"));
        assert_eq!(p.retry(), None);
    }
}
