//! The three layers a spec is made from (user config < project config < flags) and where each
//! value came from.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

use serde::Deserialize;

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

    /// Parses `text` as the config file `path`: first as a TOML document (a failure is a
    /// syntax error), then into [`RawConfig`] (a failure is a key or value the config does not
    /// accept, told apart by where in the document its span falls).
    pub fn parse(path: &Path, text: String, kind: FileKind) -> Result<Self, SpecError> {
        let doc = match toml_edit::ImDocument::parse(text.as_str()) {
            Ok(doc) => doc,
            Err(e) => return Err(syntax_error(path, &text, e.message(), e.span())),
        };
        let de = toml_edit::de::Deserializer::from(doc.clone());
        match RawConfig::deserialize(de) {
            Ok(raw) => Ok(ConfigFile {
                path: path.to_owned(),
                sha256: crate::trust::digest(text.as_bytes()),
                text,
                raw,
                kind,
            }),
            Err(e) => Err(data_error(path, &text, doc.as_table(), &e)),
        }
    }

    /// The location of the first line that sets the top-level `key` (`key =`, `[key]`,
    /// `[key.sub]`, `[[key.sub]]`), or the file alone: for values read without a span (serde
    /// gives none for a table made of `[key.sub]` headers).
    pub fn at_key(&self, key: &str) -> Location {
        let mut offset = 0;
        for line in self.text.split_inclusive('\n') {
            let t = line.trim_start().trim_start_matches('[').trim_start();
            if let Some(rest) = t.strip_prefix(key) {
                if rest.trim_start().starts_with(['=', '.', ']']) {
                    return self.at(offset..offset);
                }
            }
            offset += line.len();
        }
        Location::File {
            path: self.path.clone(),
            line: None,
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

fn location(path: &Path, text: &str, span: Option<&Range<usize>>) -> Location {
    Location::File {
        path: path.to_owned(),
        line: span.map(|s| line_col(text, s.start)),
    }
}

/// The text at `span`, trimmed, for naming the place of an error; `None` when empty.
fn snippet(text: &str, span: Option<&Range<usize>>) -> Option<String> {
    let s = text.get(span?.clone())?.trim();
    (!s.is_empty()).then(|| truncate(s))
}

fn one_line(message: &str) -> String {
    message.trim().replace('\n', " ")
}

/// The text is not a TOML document.
fn syntax_error(path: &Path, text: &str, message: &str, span: Option<Range<usize>>) -> SpecError {
    SpecError::invalid(
        location(path, text, span.as_ref()),
        snippet(text, span.as_ref()).unwrap_or_else(|| "(syntax)".to_owned()),
        one_line(message),
        "correct the TOML syntax at that place",
    )
}

/// The document is TOML but not a config: serde rejected a key (its span is that key's), a
/// value (the value's) or a table (a missing field; the table's).
fn data_error(
    path: &Path,
    text: &str,
    root: &toml_edit::Table,
    e: &toml_edit::de::Error,
) -> SpecError {
    let span = e.span();
    let message = one_line(e.message());
    let place = span.as_ref().and_then(|s| find(root, "", s));
    let (key, fix) = match place {
        Some(Place::Key(key)) => {
            // serde's unknown-field message lists the accepted keys: offer them in the fix.
            let expected = message
                .split_once("expected")
                .map(|(_, rest)| rest.trim().to_owned())
                .unwrap_or_default();
            (
                key,
                format!("remove the key or use {expected}; see README.md#configuration"),
            )
        }
        Some(Place::Value(key)) => (
            key,
            "write the value with the type shown in README.md#configuration".to_owned(),
        ),
        Some(Place::Table(key)) => (
            key,
            "add the missing field; see README.md#configuration".to_owned(),
        ),
        None => (
            snippet(text, span.as_ref()).unwrap_or_else(|| "(config)".to_owned()),
            "add the missing field; see README.md#configuration".to_owned(),
        ),
    };
    SpecError::invalid(
        location(path, text, span.as_ref()),
        truncate(&key),
        message,
        fix,
    )
}

/// What in the document an error's span is: a key, a plain value, or a table (each with its
/// dotted path).
#[derive(Debug, PartialEq)]
enum Place {
    Key(String),
    Value(String),
    Table(String),
}

/// The key, value or table of `table` (at `prefix`) whose span is `span`.
fn find(table: &dyn toml_edit::TableLike, prefix: &str, span: &Range<usize>) -> Option<Place> {
    table.iter().find_map(|(name, item)| {
        let path = if prefix.is_empty() {
            name.to_owned()
        } else {
            format!("{prefix}.{name}")
        };
        let key_span = table.get_key_value(name).and_then(|(k, _)| k.span());
        if key_span.as_ref() == Some(span) {
            return Some(Place::Key(name.to_owned()));
        }
        find_item(item, path, span)
    })
}

fn find_item(item: &toml_edit::Item, path: String, span: &Range<usize>) -> Option<Place> {
    use toml_edit::Item;
    match item {
        Item::None => None,
        Item::Table(_) if item.span().as_ref() == Some(span) => Some(Place::Table(path)),
        Item::Table(t) => find(t, &path, span),
        Item::ArrayOfTables(a) => a.iter().enumerate().find_map(|(i, t)| {
            let path = format!("{path}[{i}]");
            if t.span().as_ref() == Some(span) {
                Some(Place::Table(path))
            } else {
                find(t, &path, span)
            }
        }),
        Item::Value(v) => find_value(v, path, span),
    }
}

fn find_value(value: &toml_edit::Value, path: String, span: &Range<usize>) -> Option<Place> {
    use toml_edit::Value;
    match value {
        Value::InlineTable(_) if value.span().as_ref() == Some(span) => Some(Place::Table(path)),
        _ if value.span().as_ref() == Some(span) => Some(Place::Value(path)),
        Value::InlineTable(t) => find(t, &path, span),
        Value::Array(a) => a
            .iter()
            .enumerate()
            .find_map(|(i, v)| find_value(v, format!("{path}[{i}]"), span)),
        _ => None,
    }
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
    /// `--require-kvm`.
    pub require_kvm: bool,
    pub profile: Option<String>,
    pub network: Option<String>,
    /// `--allow-host DOMAIN` strings, as typed.
    pub allow_hosts: Vec<String>,
    /// `KEY=VALUE` strings, as typed.
    pub env: Vec<String>,
    /// `SRC:DEST[:ro|rw]` strings, as typed.
    pub mounts: Vec<String>,
    pub deploy_key: Option<String>,
    /// `--forward KEY[=VALUE]` strings, as typed.
    pub forward: Vec<String>,
    /// `-p [ADDR:]HOST:SANDBOX` strings, as typed.
    pub ports: Vec<String>,
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
        let e = err("profile = 3\n");
        assert!(
            e.starts_with("wrapix.toml:1:11: key `profile`: invalid type"),
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
    fn missing_field_names_the_table() {
        let e = err("[[mounts]]\nsource = \"/a\"\n");
        assert!(
            e.starts_with("wrapix.toml:1:1: key `mounts[0]`: missing field `dest`"),
            "{e}"
        );
        assert!(e.contains("fix: add the missing field"), "{e}");
        let e = err("mounts = [{ source = \"/a\" }]\n");
        assert!(
            e.starts_with("wrapix.toml:1:11: key `mounts[0]`: missing field `dest`"),
            "{e}"
        );
        assert!(e.contains("fix: add the missing field"), "{e}");
    }

    #[test]
    fn wrong_type_in_arrays_and_tables_of_arrays_names_the_element() {
        let e = err("packages = [\"a\", 3]\n");
        assert!(
            e.starts_with("wrapix.toml:1:18: key `packages[1]`: invalid type"),
            "{e}"
        );
        let e = err("[[mounts]]\nsource = 3\ndest = \"/b\"\n");
        assert!(
            e.starts_with("wrapix.toml:2:10: key `mounts[0].source`: invalid type"),
            "{e}"
        );
        assert!(e.contains("fix: write the value with the type"), "{e}");
    }

    #[test]
    fn unknown_key_in_an_inline_table_and_a_dotted_key() {
        let e = err("agent = { hme = \"x\" }\n");
        assert!(
            e.starts_with("wrapix.toml:1:11: key `hme`: unknown field"),
            "{e}"
        );
        let e = err("agent.hme = \"x\"\n");
        assert!(
            e.starts_with("wrapix.toml:1:7: key `hme`: unknown field"),
            "{e}"
        );
    }

    #[test]
    fn syntax_error_is_one_line() {
        let e = err("profile = \n");
        assert!(e.starts_with("wrapix.toml:1:"), "{e}");
        assert_eq!(e.lines().count(), 1, "{e}");
    }
}
