//! The three layers a spec is made from (user config < project config < flags) and where each
//! value came from.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

use crate::error::{line_col, Location, SpecError};
use crate::raw::RawConfig;

/// A parsed config file, kept with its text so that errors can name a line.
#[derive(Debug)]
pub struct ConfigFile {
    pub path: PathBuf,
    pub text: String,
    pub raw: RawConfig,
    pub kind: FileKind,
    /// sha256 of the text (hex): what `wrapix trust` records.
    pub sha256: String,
}

/// The project's config file, in the project folder.
pub const PROJECT_FILE: &str = "wrapix.toml";
/// Config files are small; a larger one is refused rather than read.
const CONFIG_LIMIT: u64 = 1024 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    User,
    Project,
}

impl ConfigFile {
    /// Reads and parses `path`; `Ok(None)` when it does not exist.
    pub fn load(path: &Path, kind: FileKind) -> Result<Option<Self>, SpecError> {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => {
                return Err(SpecError::Read {
                    path: path.to_owned(),
                    source,
                })
            }
        };
        Self::parse(path, text, kind).map(Some)
    }

    /// Reads `<project>/wrapix.toml`, which the agent can write: a symlink, a FIFO or a huge
    /// file there is an error naming it, never followed or read. `Ok(None)` when missing.
    pub fn load_project(project: &Path) -> Result<Option<Self>, SpecError> {
        let dir = wrapix_hostfs::Dir::open(project)?;
        let path = project.join(PROJECT_FILE);
        let Some(bytes) = dir.read(Path::new(PROJECT_FILE), CONFIG_LIMIT)? else {
            return Ok(None);
        };
        let text = String::from_utf8(bytes).map_err(|_| {
            SpecError::invalid(
                Location::File {
                    path: path.clone(),
                    line: None,
                },
                "(file)",
                "the file is not UTF-8 text",
                "save it as UTF-8",
            )
        })?;
        Self::parse(&path, text, FileKind::Project).map(Some)
    }

    /// Parses `text` as the config file `path`.
    pub fn parse(path: &Path, text: String, kind: FileKind) -> Result<Self, SpecError> {
        match toml::from_str::<RawConfig>(&text) {
            Ok(raw) => Ok(ConfigFile {
                path: path.to_owned(),
                sha256: crate::trust::digest(text.as_bytes()),
                text,
                raw,
                kind,
            }),
            Err(e) => Err(parse_error(path, &text, &e)),
        }
    }

    /// The location of a span in this file.
    pub fn at(&self, span: Range<usize>) -> Location {
        Location::File {
            path: self.path.clone(),
            line: Some(line_col(&self.text, span.start)),
        }
    }

    pub fn origin(&self) -> Origin {
        match self.kind {
            FileKind::User => Origin::User(self.path.clone()),
            FileKind::Project => Origin::Project(self.path.clone()),
        }
    }
}

fn parse_error(path: &Path, text: &str, e: &toml::de::Error) -> SpecError {
    let line = e.span().map(|s| line_col(text, s.start));
    let snippet = e
        .span()
        .and_then(|s| text.get(s))
        .unwrap_or("")
        .trim()
        .to_owned();
    let message = e.message().trim().replace('\n', " ");
    let (key, fix) = if message.starts_with("unknown field") {
        let expected = message
            .split_once("expected")
            .map(|(_, rest)| rest.trim().to_owned())
            .unwrap_or_default();
        (
            snippet,
            format!("remove the key or use {expected}; see README.md#configuration"),
        )
    } else if message.starts_with("invalid type") || message.starts_with("invalid value") {
        (
            e.span()
                .and_then(|sp| key_at(text, sp.start))
                .unwrap_or(snippet),
            "write the value with the type shown in README.md#configuration".to_owned(),
        )
    } else if message.starts_with("missing field") {
        (
            snippet,
            "add the missing field; see README.md#configuration".to_owned(),
        )
    } else {
        (
            if snippet.is_empty() {
                "(syntax)".to_owned()
            } else {
                snippet
            },
            "correct the TOML syntax at that place".to_owned(),
        )
    };
    let key = if key.is_empty() {
        "(syntax)".to_owned()
    } else {
        truncate(&key)
    };
    SpecError::invalid(
        Location::File {
            path: path.to_owned(),
            line,
        },
        key,
        message,
        fix,
    )
}

/// The dotted key whose value starts at `offset`: the `KEY = …` on that line, under the nearest
/// `[table]` header above it.
fn key_at(text: &str, offset: usize) -> Option<String> {
    let offset = offset.min(text.len());
    let line_start = text[..offset].rfind('\n').map_or(0, |i| i + 1);
    let line_end = text[offset..].find('\n').map_or(text.len(), |i| offset + i);
    let line = &text[line_start..line_end];
    let (key, _) = line.split_once('=')?;
    let key = key.trim().trim_matches('"');
    if key.is_empty() {
        return None;
    }
    let table = text[..line_start].lines().rev().find_map(|l| {
        let l = l.trim();
        (l.starts_with('[') && l.ends_with(']'))
            .then(|| l.trim_matches(|c| c == '[' || c == ']').trim().to_owned())
    });
    Some(match table {
        Some(t) if !t.is_empty() => format!("{t}.{key}"),
        _ => key.to_owned(),
    })
}

fn truncate(s: &str) -> String {
    let first = s.lines().next().unwrap_or("");
    if first.chars().count() > 40 {
        format!("{}…", first.chars().take(40).collect::<String>())
    } else {
        first.to_owned()
    }
}

/// Where an effective value came from; shown by `wrapix config show`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    Default,
    User(PathBuf),
    Project(PathBuf),
    Flag(&'static str),
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Default => write!(f, "default"),
            Origin::User(p) | Origin::Project(p) => write!(f, "{}", p.display()),
            Origin::Flag(flag) => write!(f, "flag {flag}"),
        }
    }
}

/// Values given on the command line; they win over both files.
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    pub backend: Option<String>,
    pub profile: Option<String>,
    pub network: Option<String>,
    /// `KEY=VALUE` strings, as typed.
    pub env: Vec<String>,
    /// `SRC:DEST[:ro|rw]` strings, as typed.
    pub mounts: Vec<String>,
    pub deploy_key: Option<String>,
}

/// Everything a spec is made from.
#[derive(Debug, Default)]
pub struct Layers {
    pub user: Option<ConfigFile>,
    pub project: Option<ConfigFile>,
    pub flags: Overrides,
}

impl Layers {
    /// Files from the lowest to the highest precedence.
    pub fn files(&self) -> impl Iterator<Item = &ConfigFile> {
        self.user.iter().chain(self.project.iter())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(text: &str) -> String {
        ConfigFile::parse(Path::new("wrapix.toml"), text.to_owned(), FileKind::Project)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default()
    }

    #[test]
    fn unknown_key_names_line_key_and_fix() {
        let e = err("profile = \"host\"\nprofiel = \"rust\"\n");
        assert!(
            e.starts_with("wrapix.toml:2:1: key `profiel`: unknown field"),
            "{e}"
        );
        assert!(e.contains("fix: remove the key"), "{e}");
        assert_eq!(e.lines().count(), 1, "{e}");
    }

    #[test]
    fn wrong_type_names_the_line_and_key() {
        let e = err("network = 3\n");
        assert!(
            e.starts_with("wrapix.toml:1:11: key `network`: invalid type"),
            "{e}"
        );
        let e = err("[agent]\nhome = 3\n");
        assert!(
            e.starts_with("wrapix.toml:2:8: key `agent.home`: invalid type"),
            "{e}"
        );
    }

    #[test]
    fn nested_unknown_key() {
        let e = err("[[mounts]]\nsource = \"/a\"\ndest = \"/b\"\nmod = \"ro\"\n");
        assert!(e.starts_with("wrapix.toml:4:1: key `mod`"), "{e}");
    }

    #[test]
    fn syntax_error_is_one_line() {
        let e = err("profile = \n");
        assert!(e.starts_with("wrapix.toml:1:"), "{e}");
        assert_eq!(e.lines().count(), 1, "{e}");
    }
}
