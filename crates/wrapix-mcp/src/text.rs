//! Turning a pane capture into what the agent reads: no escape sequences, no trailing blank
//! screen, the last N lines, a bounded size.

/// A capture returned to the client is at most this many bytes (the tail is kept).
pub const MAX_CAPTURE_BYTES: usize = 256 * 1024;

/// Removes ANSI/VT escape sequences (CSI, OSC, DCS, two-byte ESC sequences) and other control
/// characters except newline and tab. `capture-pane` without `-e` already renders colours
/// away; this catches what programs print that tmux passes through (titles, stray bytes).
pub fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\u{1b}' => match chars.next() {
                // CSI: parameters and intermediates up to a final byte in @..~
                Some('[') => {
                    for c in chars.by_ref() {
                        if ('@'..='~').contains(&c) {
                            break;
                        }
                    }
                }
                // OSC, DCS, SOS, PM, APC: up to BEL or ST (ESC \)
                Some(']') | Some('P') | Some('X') | Some('^') | Some('_') => {
                    while let Some(c) = chars.next() {
                        if c == '\u{7}' {
                            break;
                        }
                        if c == '\u{1b}' && chars.peek() == Some(&'\\') {
                            chars.next();
                            break;
                        }
                    }
                }
                // Character set selection and the like: ESC, intermediate, final.
                Some('(') | Some(')') | Some('*') | Some('+') | Some('#') | Some('%') => {
                    chars.next();
                }
                _ => {}
            },
            '\u{9b}' => {
                for c in chars.by_ref() {
                    if ('@'..='~').contains(&c) {
                        break;
                    }
                }
            }
            '\n' | '\t' => out.push(c),
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out
}

/// The last `n` lines of `s`, after dropping trailing blank lines (the empty rest of the
/// screen) and trailing spaces on each line.
pub fn tail_lines(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.lines().map(str::trim_end).collect();
    let end = lines
        .iter()
        .rposition(|l| !l.is_empty())
        .map_or(0, |i| i + 1);
    let start = end.saturating_sub(n);
    let mut out = lines[start..end].join("\n");
    if !out.is_empty() {
        out.push('\n');
    }
    out
}

/// Removes the `Pane is dead (…)` line that tmux draws under an exited pane's output (the
/// server reports the exit status itself).
pub fn drop_dead_banner(s: &str) -> String {
    let trimmed = s.trim_end();
    match trimmed.rfind('\n').map_or(Some(0), |i| Some(i + 1)) {
        Some(start) if trimmed[start..].starts_with("Pane is dead") => trimmed[..start].to_owned(),
        _ => s.to_owned(),
    }
}

/// Keeps at most `max` bytes from the end of `s`, cut at a line (or char) boundary, and says
/// so on the first line when something was dropped.
pub fn limit_bytes(s: String, max: usize) -> String {
    if s.len() <= max {
        return s;
    }
    let mut cut = s.len() - max;
    while !s.is_char_boundary(cut) {
        cut += 1;
    }
    if let Some(nl) = s[cut..].find('\n') {
        if nl + 1 < s.len() - cut {
            cut += nl + 1;
        }
    }
    format!(
        "[wrapix: capture limited to the last {max} bytes; {cut} earlier bytes dropped. \
         Ask for fewer lines to see less.]\n{}",
        &s[cut..]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_escapes() {
        assert_eq!(strip_ansi("\u{1b}[1;31mred\u{1b}[0m ok"), "red ok");
        assert_eq!(strip_ansi("\u{1b}]0;title\u{7}x"), "x");
        assert_eq!(strip_ansi("\u{1b}]8;;http://a\u{1b}\\link"), "link");
        assert_eq!(strip_ansi("a\u{1b}(Bb\rc\u{8}"), "abc");
        assert_eq!(strip_ansi("tab\tnl\n"), "tab\tnl\n");
        assert_eq!(strip_ansi("héllo ✓"), "héllo ✓");
    }

    #[test]
    fn tail() {
        assert_eq!(tail_lines("a\nb\nc\n\n\n  \n", 2), "b\nc\n");
        assert_eq!(tail_lines("a  \nb", 10), "a\nb\n");
        assert_eq!(tail_lines("\n\n", 5), "");
        assert_eq!(tail_lines("a\n\nb\n", 5), "a\n\nb\n");
    }

    #[test]
    fn dead_banner() {
        assert_eq!(
            drop_dead_banner("out\n\nPane is dead (status 3, x)\n\n"),
            "out\n\n"
        );
        assert_eq!(drop_dead_banner("Pane is dead (status 0)"), "");
        assert_eq!(drop_dead_banner("a\nb\n"), "a\nb\n");
    }

    #[test]
    fn limit() {
        let s = "line1\nline2\nline3\n".to_owned();
        assert_eq!(limit_bytes(s.clone(), 100), s);
        let cut = limit_bytes(s, 8);
        assert!(cut.ends_with("\nline3\n"), "{cut}");
        assert!(cut.starts_with("[wrapix: capture limited"), "{cut}");
        let multi = limit_bytes("ééééé".to_owned(), 3);
        assert!(multi.ends_with('é'), "{multi}");
    }
}
