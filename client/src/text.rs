//! Strings from servers, authorization servers and registries, fit for a
//! terminal: their control characters (C0, DEL, C1) and the invisible
//! formatting ones (bidi overrides, zero-width marks) are shown escaped,
//! never acted on: an escape sequence could clear the screen, fake a line,
//! disguise a link or write the clipboard, and a bidi override could make a
//! link read as another.

use std::borrow::Cow;

/// Whether `c` must not reach a terminal as it is.
pub fn unsafe_char(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2060}'..='\u{2069}' | '\u{feff}')
}

/// `s` with every such character escaped (`\u{1b}`, `\n`, `\u{202e}`, ...).
pub fn printable(s: &str) -> Cow<'_, str> {
    if !s.chars().any(unsafe_char) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if unsafe_char(c) {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_shown_not_acted_on() {
        assert_eq!(printable("plain: ok é"), "plain: ok é");
        let hostile = "Logged in.\u{1b}[2J\u{1b}]8;;https://evil\u{7}x\u{9b}31m\r\n";
        let shown = printable(hostile);
        assert!(!shown.chars().any(char::is_control), "{shown}");
        assert!(
            shown.contains("\\u{1b}[2J") && shown.contains("\\r\\n"),
            "{shown}"
        );
    }
}
