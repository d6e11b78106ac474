//! The wire format: one JSON object per line (newline-delimited JSON).
//!
//! ```json
//! {"v":1,"title":"Claude Code","message":"Task completed","sound":"Ping","session_id":"0:1.0"}
//! ```
//!
//! * `v` is the format version; a missing `v` means 1. A frame of another version is dropped.
//! * Unknown fields are ignored, so newer clients can add fields without breaking older daemons.
//! * A frame (the JSON text, without the newline) is at most [`MAX_FRAME`] bytes.
//! * Every field is untrusted (it comes from inside a sandbox): [`Frame::decode`] bounds lengths,
//!   removes control characters, and keeps `sound` and `session_id` only when they are made of
//!   safe characters.

use serde::{Deserialize, Serialize};

/// The format version this crate writes and reads.
pub const VERSION: u32 = 1;
/// The largest frame accepted, in bytes, excluding the newline.
pub const MAX_FRAME: usize = 16 * 1024;
/// Longest title kept (characters); longer ones are cut.
pub const MAX_TITLE: usize = 200;
/// Longest message kept (characters); longer ones are cut.
pub const MAX_MESSAGE: usize = 4000;
/// Longest `sound` and `session_id` accepted.
pub const MAX_TOKEN: usize = 128;

/// The title used when a frame has none.
pub const DEFAULT_TITLE: &str = "wrapix";

/// One notification request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Frame {
    #[serde(default = "default_version")]
    pub v: u32,
    #[serde(default)]
    pub title: String,
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sound: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
}

fn default_version() -> u32 {
    VERSION
}

/// Why a frame was dropped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("frame of {size} bytes is larger than the limit of {MAX_FRAME}")]
    Oversized { size: usize },
    #[error("frame is not valid JSON for a notification: {0}")]
    Malformed(String),
    #[error("frame version {0} is not supported (this daemon reads version {VERSION})")]
    Version(u32),
    #[error("frame has an empty message")]
    Empty,
}

impl Frame {
    pub fn new(title: &str, message: &str) -> Self {
        Frame {
            v: VERSION,
            title: title.to_owned(),
            message: message.to_owned(),
            sound: None,
            session_id: None,
        }
    }

    /// The frame as one line, newline included; the message is cut so the line fits
    /// [`MAX_FRAME`].
    pub fn encode(&self) -> Vec<u8> {
        let mut f = self.clone();
        f.title = cut(&f.title, MAX_TITLE);
        f.message = cut(&f.message, MAX_MESSAGE);
        let mut line = serde_json::to_vec(&f).unwrap_or_default();
        // Escaping can grow the text up to six times; halve the message until it fits.
        while line.len() > MAX_FRAME && !f.message.is_empty() {
            let keep = f.message.chars().count() / 2;
            f.message = cut(&f.message, keep);
            line = serde_json::to_vec(&f).unwrap_or_default();
        }
        line.push(b'\n');
        line
    }

    /// Parses and sanitizes one line (without its newline).
    pub fn decode(line: &[u8]) -> Result<Frame, FrameError> {
        if line.len() > MAX_FRAME {
            return Err(FrameError::Oversized { size: line.len() });
        }
        let mut f: Frame =
            serde_json::from_slice(line).map_err(|e| FrameError::Malformed(e.to_string()))?;
        if f.v != VERSION {
            return Err(FrameError::Version(f.v));
        }
        f.title = cut(&clean(&f.title, false), MAX_TITLE);
        f.message = cut(&clean(&f.message, true), MAX_MESSAGE);
        if f.message.trim().is_empty() {
            return Err(FrameError::Empty);
        }
        if f.title.trim().is_empty() {
            f.title = DEFAULT_TITLE.to_owned();
        }
        f.sound = f.sound.filter(|s| is_token(s));
        f.session_id = f.session_id.filter(|s| is_token(s));
        Ok(f)
    }
}

/// A short name made of letters, digits and `._:%@+-` (sound names, session ids, file names).
pub fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_TOKEN
        && s != "."
        && s != ".."
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._:%@+-".contains(&b))
}

/// Removes control characters (keeping newlines and tabs in messages).
fn clean(s: &str, multiline: bool) -> String {
    s.chars()
        .map(|c| match c {
            '\n' | '\t' if multiline => c,
            c if c.is_control() => ' ',
            c => c,
        })
        .collect()
}

/// At most `max` characters, with `…` when something was cut.
fn cut(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_owned();
    }
    let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn round_trip() {
        let mut f = Frame::new("Claude Code", "Task completed");
        f.sound = Some("Ping".into());
        f.session_id = Some("0:1.0".into());
        let line = f.encode();
        assert_eq!(line.last(), Some(&b'\n'));
        let text = String::from_utf8(line.clone()).unwrap_or_default();
        assert_eq!(
            text,
            "{\"v\":1,\"title\":\"Claude Code\",\"message\":\"Task completed\",\"sound\":\"Ping\",\"session_id\":\"0:1.0\"}\n"
        );
        assert_eq!(Frame::decode(&line[..line.len() - 1]), Ok(f));
    }

    #[test]
    fn unknown_fields_ignored_missing_version_is_one() {
        let f = Frame::decode(br#"{"title":"t","message":"m","future":{"x":1}}"#);
        assert_eq!(f.map(|f| (f.v, f.message)), Ok((1, "m".to_owned())));
    }

    #[test]
    fn rejects_bad_frames() {
        assert!(matches!(
            Frame::decode(b"{not json"),
            Err(FrameError::Malformed(_))
        ));
        assert!(matches!(
            Frame::decode(br#"{"title":"t"}"#),
            Err(FrameError::Malformed(_))
        ));
        assert_eq!(
            Frame::decode(br#"{"v":2,"message":"m"}"#),
            Err(FrameError::Version(2))
        );
        assert_eq!(
            Frame::decode(br#"{"message":" \u0007 "}"#),
            Err(FrameError::Empty)
        );
        let big = vec![b' '; MAX_FRAME + 1];
        assert_eq!(
            Frame::decode(&big),
            Err(FrameError::Oversized {
                size: MAX_FRAME + 1
            })
        );
    }

    #[test]
    fn sanitizes_untrusted_fields() {
        let f = Frame::decode(
            br#"{"title":"a\u001b[31mb","message":"x\ny","sound":"../etc","session_id":"../../x/y"}"#,
        );
        let f = f.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(f.title, "a [31mb");
        assert_eq!(f.message, "x\ny");
        assert_eq!(f.sound, None);
        assert_eq!(f.session_id, None);
        assert!(is_token("%3"));
        assert!(is_token("0:1.0"));
        assert!(!is_token(".."));
        assert!(!is_token("a/b"));
    }

    #[test]
    fn encode_fits_the_limit() {
        let f = Frame::new("t", &"\u{1}".repeat(MAX_MESSAGE * 4));
        let line = f.encode();
        assert!(line.len() <= MAX_FRAME + 1, "{}", line.len());
        assert!(Frame::decode(&line[..line.len() - 1]).is_ok());
    }

    proptest! {
        #[test]
        fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = Frame::decode(&bytes);
        }

        #[test]
        fn encoded_frames_decode(title in ".{0,300}", message in ".{1,5000}") {
            let line = Frame::new(&title, &message).encode();
            prop_assert!(line.len() <= MAX_FRAME + 1);
            match Frame::decode(&line[..line.len() - 1]) {
                Ok(f) => prop_assert!(f.title.chars().count() <= MAX_TITLE),
                Err(FrameError::Empty) => {}
                Err(e) => prop_assert!(false, "{e}"),
            }
        }
    }
}
