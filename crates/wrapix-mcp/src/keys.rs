//! `tmux_send_keys` input → tmux `send-keys` invocations.
//!
//! A `keys` string that is one tmux key name (`Enter`, `^C`, `C-c`, `M-x`, `Escape`, `F5`, …)
//! is sent as that key. Anything else is literal text (`send-keys -l`, so tmux never reads it
//! as key names), where each `\n` (or `\r\n`) becomes an `Enter`. Raw control bytes other than
//! newline and tab are refused with a hint to use key names: they are almost always an agent's
//! escaping mistake, and a literal ESC or NUL can leave the pane's terminal in a state that
//! later captures cannot explain.

/// One step of a `send-keys` call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Key {
    /// Text typed as is.
    Literal(String),
    /// A tmux key name.
    Named(String),
}

/// Keys longer than this (in bytes) are refused.
pub const MAX_KEYS_BYTES: usize = 16 * 1024;

const NAMED: &[&str] = &[
    "Enter", "Escape", "Tab", "BTab", "Space", "BSpace", "Up", "Down", "Left", "Right", "Home",
    "End", "PageUp", "PageDown", "PgUp", "PgDn", "PPage", "NPage", "IC", "DC", "Insert", "Delete",
    "F1", "F2", "F3", "F4", "F5", "F6", "F7", "F8", "F9", "F10", "F11", "F12",
];

/// True for a single tmux key name, with optional `C-`, `M-`, `S-` modifiers or the `^X` form.
pub fn is_key_name(s: &str) -> bool {
    if let Some(rest) = s.strip_prefix('^') {
        let mut chars = rest.chars();
        return matches!((chars.next(), chars.next()), (Some(c), None) if c.is_ascii_graphic());
    }
    let mut rest = s;
    let mut modified = false;
    while rest.len() > 2 {
        match rest.get(..2) {
            Some("C-") | Some("M-") | Some("S-") => {
                rest = &rest[2..];
                modified = true;
            }
            _ => break,
        }
    }
    if NAMED.contains(&rest) {
        return true;
    }
    // `C-c`, `M-x`: a modifier and one printable character.
    let mut chars = rest.chars();
    modified && matches!((chars.next(), chars.next()), (Some(c), None) if c.is_ascii_graphic())
}

/// Parses `keys` into the steps to send, or a message with a recovery hint.
pub fn parse(keys: &str) -> Result<Vec<Key>, String> {
    if keys.is_empty() {
        return Err(
            "keys is empty. Send text such as \"ls -l\\n\" or a key name such as \"Enter\" or \"^C\"."
                .into(),
        );
    }
    if keys.len() > MAX_KEYS_BYTES {
        return Err(format!(
            "keys is {} bytes long; the limit is {MAX_KEYS_BYTES}. Write long input to a file in \
             /workspace and run it (e.g. \"sh script.sh\\n\") instead.",
            keys.len()
        ));
    }
    if is_key_name(keys) {
        return Ok(vec![Key::Named(keys.to_owned())]);
    }
    if let Some((i, c)) = keys
        .char_indices()
        .find(|(_, c)| c.is_control() && !matches!(c, '\n' | '\r' | '\t'))
    {
        let hint = match c {
            '\u{3}' => "send \"^C\" for Ctrl-C",
            '\u{4}' => "send \"^D\" for Ctrl-D",
            '\u{1b}' => "send \"Escape\" for the Escape key",
            '\u{7f}' | '\u{8}' => "send \"BSpace\" for Backspace",
            _ => "send control keys as key names such as \"^C\", \"C-d\" or \"Escape\"",
        };
        return Err(format!(
            "keys contains the control character U+{:04X} at byte {i}; raw control bytes are not sent. \
             Instead, {hint} in a separate tmux_send_keys call.",
            c as u32
        ));
    }
    let normalized = keys.replace("\r\n", "\n").replace('\r', "\n");
    let mut out = Vec::new();
    let mut lines = normalized.split('\n').peekable();
    while let Some(line) = lines.next() {
        if !line.is_empty() {
            out.push(Key::Literal(line.to_owned()));
        }
        if lines.peek().is_some() {
            out.push(Key::Named("Enter".into()));
        }
    }
    Ok(out)
}

/// The tmux arguments (after `tmux -S SOCKET`) that send `keys` to `target` in one invocation.
pub fn send_keys_args(target: &str, keys: &[Key]) -> Vec<String> {
    let mut args = Vec::new();
    for (i, k) in keys.iter().enumerate() {
        if i > 0 {
            args.push(";".to_owned());
        }
        args.extend(["send-keys".to_owned(), "-t".to_owned(), target.to_owned()]);
        match k {
            Key::Literal(text) => args.extend(["-l".to_owned(), "--".to_owned(), escape(text)]),
            Key::Named(name) => args.extend(["--".to_owned(), escape(name)]),
        }
    }
    args
}

/// tmux splits commands at an argument that ends with `;` even when it came from argv; a
/// trailing `\;` stands for a literal `;`.
fn escape(arg: &str) -> String {
    match arg.strip_suffix(';') {
        Some(head) => format!("{head}\\;"),
        None => arg.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_names() {
        for k in [
            "Enter", "^C", "^[", "C-c", "M-x", "C-M-a", "S-Up", "F5", "Escape", "BSpace",
        ] {
            assert!(is_key_name(k), "{k}");
        }
        for k in [
            "enter",
            "ls",
            "C-",
            "^",
            "^CC",
            "C-cc",
            "Enter ",
            "hello world",
            "-",
        ] {
            assert!(!is_key_name(k), "{k}");
        }
    }

    #[test]
    fn text_and_newlines() {
        assert_eq!(
            parse("ls -l\n"),
            Ok(vec![
                Key::Literal("ls -l".into()),
                Key::Named("Enter".into())
            ])
        );
        assert_eq!(
            parse("a\r\n\nb"),
            Ok(vec![
                Key::Literal("a".into()),
                Key::Named("Enter".into()),
                Key::Named("Enter".into()),
                Key::Literal("b".into()),
            ])
        );
        assert_eq!(parse("^C"), Ok(vec![Key::Named("^C".into())]));
        // A key name inside text is text.
        assert_eq!(
            parse("echo Enter"),
            Ok(vec![Key::Literal("echo Enter".into())])
        );
        assert_eq!(parse("-t x"), Ok(vec![Key::Literal("-t x".into())]));
    }

    #[test]
    fn refuses_control_bytes_and_huge_input() {
        let e = parse("a\u{3}").err().unwrap_or_default();
        assert!(e.contains("U+0003") && e.contains("^C"), "{e}");
        assert!(parse("\u{1b}[A")
            .err()
            .unwrap_or_default()
            .contains("Escape"));
        assert!(parse("a\0b").is_err());
        assert!(parse("").is_err());
        assert!(parse(&"x".repeat(MAX_KEYS_BYTES + 1))
            .err()
            .unwrap_or_default()
            .contains("limit"));
    }

    #[test]
    fn args_are_one_invocation_and_never_options() {
        let keys = parse("-n\n").unwrap_or_default();
        assert_eq!(
            send_keys_args("%3", &keys),
            [
                "send-keys",
                "-t",
                "%3",
                "-l",
                "--",
                "-n",
                ";",
                "send-keys",
                "-t",
                "%3",
                "--",
                "Enter"
            ]
        );
        let keys = parse("echo a;").unwrap_or_default();
        assert_eq!(send_keys_args("%3", &keys)[5], "echo a\\;");
    }
}
