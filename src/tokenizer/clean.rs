//! Prompt clean-up before BPE, as open_clip's `_clean_lower` does it:
//! `ftfy.fix_text`, `html.unescape` twice, whitespace collapsed, `str.lower()`.
//!
//! Python semantics are kept down to the odd corners (ftfy's per-line segments, its
//! all-caps entities, `html.unescape`'s prefix matching of `&ampfoo`), because any
//! difference changes token ids and so the text embedding.
//!
//! Known differences from Python, all outside what a person types into a prompt:
//! - ftfy's mojibake repair (`fix_encoding`: "cafÃ©" → "café") is not done. It is a
//!   large heuristic (a badness regex plus re-decoding in ten codecs); text it would
//!   change went through a wrong codec, e.g. "Ã©", "â€œ", or a C1 control right after
//!   a non-ASCII letter ("ß\u{80}"), not text a user typed.
//! - Python 3.11's `str.lower()`, `isspace()` and NFC use Unicode 14.0, its `regex`
//!   module a newer version, and Rust's `to_lowercase`, `regex` and
//!   `unicode-normalization` yet others, so characters unassigned in Unicode 14 may
//!   split or normalise differently. Every code point assigned in Unicode 14 was
//!   checked (between letters, doubled, after an apostrophe) and gives open_clip's ids.
//! - Python's `int()` refuses decimal strings over 4300 digits, so open_clip raises on
//!   `&#` followed by that many digits; here the reference becomes U+FFFD like any
//!   other out-of-range one.
//! - Python strings can hold lone surrogates, which ftfy repairs; a Rust `&str` cannot.

use std::sync::OnceLock;

use regex::Regex;
use unicode_normalization::UnicodeNormalization;

use super::tables;

/// The text open_clip's default tokenizer splits into words: cleaned, whitespace
/// collapsed to single spaces, trimmed, lower-cased.
pub fn clean_lower(text: &str) -> String {
    let fixed = fix_text(text);
    let unescaped = html_unescape(&html_unescape(&fixed));
    // Python's `" ".join(s.split())` (which also does basic_clean's `strip()`).
    let words: Vec<&str> = unescaped.split(is_py_space).filter(|w| !w.is_empty()).collect();
    // Rust's `to_lowercase` shares Python's full mappings (İ → i̇) and its
    // final-sigma rule, so no special casing is needed here.
    words.join(" ").to_lowercase()
}

/// Python's `str.isspace()`: Unicode White_Space plus the four ASCII separators
/// U+001C..=U+001F, which Python counts as whitespace and Unicode does not.
fn is_py_space(c: char) -> bool {
    c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c)
}

fn static_regex(cell: &'static OnceLock<Regex>, pattern: &str) -> &'static Regex {
    // The patterns are constants, checked by the unit tests, so this cannot fail on input.
    cell.get_or_init(|| Regex::new(pattern).expect("constant regex is valid"))
}

/// ftfy 6.3.1 `fix_text` with default settings, except mojibake repair (see the module
/// comment).
pub fn fix_text(text: &str) -> String {
    // ftfy fixes one line (or one million characters) at a time, and once a segment
    // holds a literal '<' it takes the text for HTML and stops decoding entities in
    // that segment and every later one.
    const MAX_DECODE_LENGTH: usize = 1_000_000;
    let mut out = String::with_capacity(text.len());
    let mut unescape = true;
    let mut rest = text;
    while !rest.is_empty() {
        let mut end = rest.len();
        for (n, (i, c)) in rest.char_indices().enumerate() {
            if n == MAX_DECODE_LENGTH {
                end = i;
                break;
            }
            if c == '\n' {
                end = i + 1;
                break;
            }
        }
        let (segment, tail) = rest.split_at(end);
        if segment.contains('<') {
            unescape = false;
        }
        out.push_str(&fix_segment(segment, unescape));
        rest = tail;
    }
    out
}

/// ftfy's `fix_and_explain` on one segment: the fixers in ftfy's order, repeated until
/// nothing changes (each pass can expose work for another, as in `&amp;eacute;`).
fn fix_segment(segment: &str, unescape: bool) -> String {
    let mut text = segment.to_string();
    loop {
        let mut next = if unescape { ftfy_unescape_html(&text) } else { text.clone() };
        next = map_chars(&next, |c| {
            (0x80..0xA0)
                .contains(&(c as u32))
                .then(|| tables::C1_TO_WINDOWS_1252[c as usize - 0x80].to_string())
        });
        next = map_chars(&next, |c| table_lookup(tables::LIGATURES, c));
        next = map_chars(&next, |c| table_lookup(tables::WIDTH_MAP, c));
        next = map_chars(&next, uncurl_quote);
        next = fix_line_breaks(&next);
        next = remove_terminal_escapes(&next).into_owned();
        next.retain(|c| !is_removed_control(c));
        next = next.nfc().collect();
        if next == text {
            return next;
        }
        text = next;
    }
}

/// Applies a per-character replacement, like Python's `str.translate`.
fn map_chars(text: &str, f: impl Fn(char) -> Option<String>) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match f(c) {
            Some(s) => out.push_str(&s),
            None => out.push(c),
        }
    }
    out
}

fn table_lookup(table: &[(char, &str)], c: char) -> Option<String> {
    table.binary_search_by_key(&c, |&(k, _)| k).ok().map(|i| table[i].1.to_string())
}

/// ftfy's `uncurl_quotes`: U+02BC and U+2018..=U+201B become `'`; U+201C..=U+201F `"`.
fn uncurl_quote(c: char) -> Option<String> {
    match c {
        '\u{2bc}' | '\u{2018}'..='\u{201b}' => Some("'".into()),
        '\u{201c}'..='\u{201f}' => Some("\"".into()),
        _ => None,
    }
}

/// ftfy's `fix_line_breaks`: CRLF, CR, U+2028, U+2029 and U+0085 become `\n`.
fn fix_line_breaks(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\r' => {
                chars.next_if_eq(&'\n');
                out.push('\n');
            }
            '\u{2028}' | '\u{2029}' | '\u{85}' => out.push('\n'),
            _ => out.push(c),
        }
    }
    out
}

/// ftfy's `remove_terminal_escapes`: ANSI CSI sequences such as `ESC[31m`.
fn remove_terminal_escapes(text: &str) -> std::borrow::Cow<'_, str> {
    static ANSI: OnceLock<Regex> = OnceLock::new();
    // `\d` is Unicode-aware in both Python's `re` and Rust's `regex`.
    static_regex(&ANSI, r"\x1b\[(?:\d|;)*[a-zA-Z]").replace_all(text, "")
}

/// ftfy's `remove_control_chars` set. C1 controls, joiners, bidi marks and tag
/// characters stay (ftfy keeps them on purpose).
fn is_removed_control(c: char) -> bool {
    matches!(c,
        '\u{0}'..='\u{8}' | '\u{b}' | '\u{e}'..='\u{1f}' | '\u{7f}'
        | '\u{206a}'..='\u{206f}' | '\u{feff}' | '\u{fff9}'..='\u{fffc}')
}

/// ftfy's `unescape_html`: only entities that end in `;` (HTML5 names, ftfy's all-caps
/// variants, numeric references that `html.unescape` decodes whole).
fn ftfy_unescape_html(text: &str) -> String {
    if !text.contains('&') {
        return text.to_string();
    }
    static ENTITY: OnceLock<Regex> = OnceLock::new();
    let re = static_regex(&ENTITY, r"&#?[0-9A-Za-z]{1,24};");
    re.replace_all(text, |caps: &regex::Captures| {
        let entity = &caps[0];
        let name = &entity[1..];
        if let Some(t) = entity_lookup(tables::HTML5, name) {
            return t.to_string();
        }
        if let Some(t) = entity_lookup(tables::FTFY_UPPER_ENTITIES, name) {
            return t.to_string();
        }
        if entity.starts_with("&#") {
            // A reference html.unescape only partly decodes ("&#65abc;") is left alone.
            let decoded = html_unescape(entity);
            if !decoded.contains(';') {
                return decoded;
            }
        }
        entity.to_string()
    })
    .into_owned()
}

fn entity_lookup(
    table: &'static [(&'static str, &'static str)],
    name: &str,
) -> Option<&'static str> {
    table.binary_search_by_key(&name, |&(k, _)| k).ok().map(|i| table[i].1)
}

/// Python's `html.unescape` (3.11): HTML5 character references, with the standard's
/// rules for a missing `;`, for names that only start with a known entity (`&ampx` →
/// `&x`) and for invalid numbers.
pub fn html_unescape(text: &str) -> String {
    if !text.contains('&') {
        return text.to_string();
    }
    static CHARREF: OnceLock<Regex> = OnceLock::new();
    let re = static_regex(&CHARREF, r"&(#[0-9]+;?|#[xX][0-9a-fA-F]+;?|[^\t\n\x0c <&#;]{1,32};?)");
    re.replace_all(text, |caps: &regex::Captures| {
        let s = &caps[1];
        if let Some(digits) = s.strip_prefix('#') {
            let (digits, radix) = match digits.strip_prefix(['x', 'X']) {
                Some(hex) => (hex, 16),
                None => (digits, 10),
            };
            return numeric_charref(parse_saturating(digits.trim_end_matches(';'), radix));
        }
        if let Some(t) = entity_lookup(tables::HTML5, s) {
            return t.to_string();
        }
        // The longest known name the reference starts with, at least two characters;
        // only names without ';' can match here since ';' can only end `s`.
        let bounds: Vec<usize> = s.char_indices().map(|(i, _)| i).skip(2).collect();
        for &end in bounds.iter().rev() {
            if let Some(t) = entity_lookup(tables::HTML5, &s[..end]) {
                return format!("{t}{}", &s[end..]);
            }
        }
        format!("&{s}")
    })
    .into_owned()
}

/// The value of an ASCII digit string, or `u32::MAX` when it does not fit (all such
/// values are past U+10FFFF and decode the same way).
fn parse_saturating(digits: &str, radix: u32) -> u32 {
    digits.chars().fold(0u32, |acc, c| {
        let d = c.to_digit(radix).unwrap_or(0);
        acc.saturating_mul(radix).saturating_add(d)
    })
}

/// Python's `html._replace_charref` for a numeric reference.
fn numeric_charref(n: u32) -> String {
    match n {
        0x00 => "\u{fffd}".into(),
        0x0d => "\r".into(),
        // html's `_invalid_charrefs` table is Windows-1252 with the five undefined
        // bytes kept as controls: exactly ftfy's sloppy-windows-1252 table.
        0x80..=0x9f => tables::C1_TO_WINDOWS_1252[n as usize - 0x80].to_string(),
        0xd800..=0xdfff | 0x110000.. => "\u{fffd}".into(),
        0x01..=0x08 | 0x0b | 0x0e..=0x1f | 0x7f | 0xfdd0..=0xfdef => String::new(),
        _ if n & 0xfffe == 0xfffe => String::new(),
        // Every value left is a scalar value.
        _ => char::from_u32(n).map(String::from).unwrap_or_default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Expected values below were printed by Python 3.11 / ftfy 6.3.1.

    #[test]
    fn html_unescape_matches_python() {
        let cases = [
            ("&amp;", "&"),
            ("&amp", "&"),
            ("&ampfoo", "&foo"),
            ("&notit;", "¬it;"),
            ("&lt;b&gt;", "<b>"),
            ("&#39;&#x27;&#X27", "'''"),
            ("&#0;", "\u{fffd}"),
            ("&#128;&#x85;&#x81;", "€…\u{81}"),
            ("&#xD800;&#1114112;&#99999999999999999999;", "\u{fffd}\u{fffd}\u{fffd}"),
            ("a&#1;b&#xFFFE;c&#x10FFFF;d", "abcd"),
            ("&#0x41;", "\u{fffd}x41;"),
            ("&unknown; & &;", "&unknown; & &;"),
            ("&EACUTE;", "&EACUTE;"),
            ("&eacute&Eacute;", "éÉ"),
        ];
        for (input, want) in cases {
            assert_eq!(html_unescape(input), want, "html.unescape({input:?})");
        }
    }

    #[test]
    fn ftfy_unescape_needs_semicolons_and_knows_all_caps() {
        let cases = [
            ("&amp", "&amp"),
            ("&EACUTE;", "É"),
            ("&SZLIG;", "SS"),
            ("&#65abc;", "&#65abc;"),
            ("&#x41;", "A"),
            ("&amp;amp;", "&amp;"),
        ];
        for (input, want) in cases {
            assert_eq!(ftfy_unescape_html(input), want, "unescape_html({input:?})");
        }
    }

    #[test]
    fn fix_text_matches_ftfy() {
        let cases = [
            ("ＬＯＵＤ　ＮＯＩＳＥＳ", "LOUD NOISES"),
            ("Ｕﾀｰﾝ", "Uターン"),
            ("ﬂuﬃeﬆ", "fluffiest"),
            ("\u{201c}here\u{2019}s\u{201d}", "\"here's\""),
            ("a\r\nb\rc\u{2028}d", "a\nb\nc\nd"),
            ("\x1b[36;44mblue\x1b[0m", "blue"),
            ("a\x00b\x07c\u{feff}d\u{200d}e", "abcd\u{200d}e"),
            ("cafe\u{301}", "café"),
            ("\u{85}\u{91}x\u{92}", "…'x'"),
            ("&amp;amp;lt;", "<"),
            // A literal '<' turns entity decoding off for that line and later ones.
            ("&amp;\n<&amp;\n&amp;", "&\n<&amp;\n&amp;"),
            ("ŉ", "'n"),
        ];
        for (input, want) in cases {
            assert_eq!(fix_text(input), want, "fix_text({input:?})");
        }
    }

    #[test]
    fn clean_lower_collapses_whitespace_and_lowercases() {
        assert_eq!(clean_lower("  A\t\tCat\n\u{a0}ΣΑΣ  "), "a cat σας");
        assert_eq!(clean_lower("&lt;x&gt; &amp;amp;"), "<x> &");
        assert_eq!(clean_lower("\u{1c}\u{3000}"), "");
    }
}
