//! The agent's completion signal: a line `RALPH_COMPLETE`, `RALPH_BLOCKED: reason` or
//! `RALPH_CLARIFY: question`. With Claude Code's `--output-format stream-json` only the final
//! `{"type":"result"}` event's `result` text counts (a signal quoted in a tool's output is
//! not one); otherwise the plain output's lines. No signal means not complete.

/// What the agent said at the end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Signal {
    Complete,
    Blocked(String),
    Clarify(String),
    None,
}

/// The longest reason kept (it goes into the task file and the status).
const REASON_MAX: usize = 500;

/// Whether the agent's arguments ask for stream-json output.
pub fn is_stream_json(args: &[String]) -> bool {
    args.iter().any(|a| a == "--output-format=stream-json")
        || args
            .windows(2)
            .any(|w| w[0] == "--output-format" && w[1] == "stream-json")
}

/// The signal in the agent's stdout.
pub fn parse(output: &[u8], stream_json: bool) -> Signal {
    let text = String::from_utf8_lossy(output);
    if stream_json {
        match final_result(&text) {
            Some(result) => in_text(&result),
            None => Signal::None,
        }
    } else {
        in_text(&text)
    }
}

/// The `result` text of the last `{"type":"result"}` event; `None` when there is none or it
/// reports an error.
fn final_result(text: &str) -> Option<String> {
    let mut last = None;
    for line in text.lines() {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(line.trim()) else {
            continue;
        };
        if v.get("type").and_then(|t| t.as_str()) == Some("result") {
            last = Some(v);
        }
    }
    let v = last?;
    if v.get("is_error").and_then(|e| e.as_bool()) == Some(true) {
        return None;
    }
    v.get("result").and_then(|r| r.as_str()).map(str::to_owned)
}

/// A blocking signal wins over `RALPH_COMPLETE` (the agent said it could not finish).
fn in_text(text: &str) -> Signal {
    let mut complete = false;
    for line in text.lines() {
        let line = line.trim();
        if let Some(r) = line.strip_prefix("RALPH_BLOCKED:") {
            return Signal::Blocked(reason(r));
        }
        if let Some(q) = line.strip_prefix("RALPH_CLARIFY:") {
            return Signal::Clarify(reason(q));
        }
        if line == "RALPH_COMPLETE" {
            complete = true;
        }
    }
    if complete {
        Signal::Complete
    } else {
        Signal::None
    }
}

fn reason(s: &str) -> String {
    let s = crate::tracker::escape(s.trim());
    match s.char_indices().nth(REASON_MAX) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_text_lines() {
        assert_eq!(parse(b"work\nRALPH_COMPLETE\n", false), Signal::Complete);
        assert_eq!(
            parse(b"RALPH_COMPLETE is what I print\n", false),
            Signal::None
        );
        assert_eq!(
            parse(b"RALPH_COMPLETE\nRALPH_BLOCKED: no db\n", false),
            Signal::Blocked("no db".into())
        );
        assert_eq!(
            parse(b"  RALPH_CLARIFY: which API?\n", false),
            Signal::Clarify("which API?".into())
        );
        assert_eq!(parse(b"", false), Signal::None);
    }

    #[test]
    fn stream_json_reads_only_the_final_result() {
        let quoted = r#"{"type":"assistant","message":{"content":[{"type":"text","text":"RALPH_COMPLETE"}]}}"#;
        let done = r#"{"type":"result","subtype":"success","is_error":false,"result":"Done.\nRALPH_COMPLETE"}"#;
        let err = r#"{"type":"result","subtype":"error_max_turns","is_error":true,"result":"RALPH_COMPLETE"}"#;
        assert_eq!(parse(quoted.as_bytes(), true), Signal::None);
        assert_eq!(
            parse(format!("{quoted}\n{done}\n").as_bytes(), true),
            Signal::Complete
        );
        assert_eq!(
            parse(format!("{done}\n{err}\n").as_bytes(), true),
            Signal::None
        );
        assert_eq!(parse(b"RALPH_COMPLETE\n", true), Signal::None);
    }

    #[test]
    fn stream_json_is_recognised_in_both_spellings() {
        let a = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(is_stream_json(&a(&[
            "-p",
            "--output-format",
            "stream-json"
        ])));
        assert!(is_stream_json(&a(&["--output-format=stream-json"])));
        assert!(!is_stream_json(&a(&["-p", "--output-format", "text"])));
    }
}
