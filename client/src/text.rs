//! Strings from servers, authorization servers and registries, fit for a
//! terminal: their control characters are shown escaped, never acted on
//! (an escape sequence could clear the screen, fake a line, disguise a link
//! or write the clipboard).

use std::borrow::Cow;

/// `s` with every control character escaped (`\u{1b}`, `\n`, ...).
pub fn printable(s: &str) -> Cow<'_, str> {
    if !s.chars().any(char::is_control) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if c.is_control() {
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
