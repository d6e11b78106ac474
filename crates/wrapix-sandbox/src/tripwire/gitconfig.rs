//! A small, deliberately strict reader of git config files: just enough to tell whether a
//! config the agent wrote can make git run anything. Whatever it does not fully understand is
//! "armed"; it never has to agree with git on values, only on which keys are set.

/// One `section[.subsection].key` that the file sets. Section and key are lower-cased, as
/// git compares them; the subsection is kept as written (git compares it case-sensitively).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Key {
    pub section: String,
    pub subsection: Option<String>,
    pub name: String,
    /// The value as git reads it (quotes removed, escapes decoded); `None` for a bare key.
    pub value: Option<String>,
}

/// The paths a repository's config names that git reads config or runs hooks from:
/// `core.hooksPath` (where hooks run from) and `include.path` / `includeIf.*.path` (more
/// config), as written. An error when the file cannot be read safely.
pub(crate) fn code_paths(bytes: &[u8]) -> Result<Vec<(String, String)>, &'static str> {
    Ok(parse(bytes)?
        .into_iter()
        .filter_map(|k| {
            let what = match (k.section.as_str(), k.name.as_str()) {
                ("core", "hookspath") => "core.hooksPath",
                ("include", "path") => "include.path",
                ("includeif", "path") => "includeIf.path",
                _ => return None,
            };
            Some((what.to_owned(), k.value?))
        })
        .collect())
}

/// A value as git reads it: quotes removed, escapes decoded, a trailing comment and unquoted
/// white space at either end dropped.
fn decode(raw: &str) -> String {
    let mut out = String::new();
    let mut quoted = false;
    // The length of `out` up to its last quoted or non-blank character.
    let mut keep = 0;
    let mut chars = raw.trim_start_matches([' ', '\t']).chars();
    while let Some(c) = chars.next() {
        match c {
            '"' => {
                quoted = !quoted;
                keep = out.len();
            }
            '\\' => {
                match chars.next() {
                    Some('n') => out.push('\n'),
                    Some('t') => out.push('\t'),
                    Some('b') => {
                        out.pop();
                    }
                    Some(other) => out.push(other),
                    None => {}
                }
                keep = out.len();
            }
            '#' | ';' if !quoted => break,
            c => {
                out.push(c);
                if quoted || !c.is_whitespace() {
                    keep = out.len();
                }
            }
        }
    }
    out.truncate(keep);
    out
}

/// Why a config counts as armed, a phrase that follows "its config": "sets core.fsmonitor".
pub(crate) fn armed_reason(bytes: &[u8]) -> Option<String> {
    let keys = match parse(bytes) {
        Ok(keys) => keys,
        Err(why) => return Some(format!("cannot be read safely ({why})")),
    };
    keys.iter().find(|k| !allowed(k)).map(|k| {
        let sub = k.subsection.as_deref().map(|_| ".*").unwrap_or("");
        format!("sets {}{sub}.{}", k.section, k.name)
    })
}

/// The keys that `git init` and `git clone` write and that run nothing. `include` and
/// `includeIf` are sections, so they are never in this list.
fn allowed(k: &Key) -> bool {
    let (s, sub, n) = (k.section.as_str(), k.subsection.is_some(), k.name.as_str());
    match (s, sub) {
        ("core", false) => matches!(
            n,
            "repositoryformatversion"
                | "filemode"
                | "bare"
                | "logallrefupdates"
                | "ignorecase"
                | "precomposeunicode"
                | "symlinks"
        ),
        ("remote", true) => matches!(n, "url" | "fetch" | "pushurl" | "tagopt"),
        ("branch", true) => matches!(n, "remote" | "merge" | "rebase"),
        ("extensions", false) => n == "objectformat",
        ("user", false) => matches!(n, "name" | "email"),
        _ => false,
    }
}

/// The keys `bytes` sets, or why it is not the plain config git writes.
pub(crate) fn parse(bytes: &[u8]) -> Result<Vec<Key>, &'static str> {
    let text = std::str::from_utf8(bytes).map_err(|_| "not UTF-8")?;
    if text.contains('\0') || text.contains('\r') {
        return Err("a NUL or carriage return");
    }
    let mut keys = Vec::new();
    let mut section: Option<(String, Option<String>)> = None;
    let mut lines = text.split('\n');
    while let Some(line) = lines.next() {
        let rest = line.trim_start_matches([' ', '\t']);
        if rest.is_empty() || rest.starts_with(['#', ';']) {
            continue;
        }
        let rest = if let Some(after) = rest.strip_prefix('[') {
            let (header, after) = after.split_once(']').ok_or("a section without `]`")?;
            section = Some(section_header(header)?);
            let after = after.trim_start_matches([' ', '\t']);
            if after.is_empty() || after.starts_with(['#', ';']) {
                continue;
            }
            after
        } else {
            rest
        };
        let Some((sec, sub)) = &section else {
            return Err("a key before any section");
        };
        let name_len = rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
            .unwrap_or(rest.len());
        let name = &rest[..name_len];
        if !name.starts_with(|c: char| c.is_ascii_alphabetic()) {
            return Err("a key that is not a plain name");
        }
        let after = rest[name_len..].trim_start_matches([' ', '\t']);
        let mut decoded = None;
        if let Some(value) = after.strip_prefix('=') {
            let mut line = value.to_owned();
            let mut whole = String::new();
            // A value continued on the next line(s) with a trailing backslash.
            while value_continues(&line)? {
                whole.push_str(&line[..line.len() - 1]);
                line = lines
                    .next()
                    .ok_or("a value continued past the end")?
                    .to_owned();
            }
            whole.push_str(&line);
            decoded = Some(decode(&whole));
        } else if !(after.is_empty() || after.starts_with(['#', ';'])) {
            return Err("a key without `=`");
        }
        keys.push(Key {
            section: sec.clone(),
            subsection: sub.clone(),
            name: name.to_ascii_lowercase(),
            value: decoded,
        });
    }
    Ok(keys)
}

/// `[section]`, `[section "subsection"]` or the old `[section.subsection]`.
fn section_header(header: &str) -> Result<(String, Option<String>), &'static str> {
    let plain = |s: &str| {
        !s.is_empty()
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
    };
    if let Some((name, quoted)) = header.split_once([' ', '\t']) {
        let quoted = quoted.trim_start_matches([' ', '\t']);
        let inner = quoted
            .strip_prefix('"')
            .and_then(|q| q.strip_suffix('"'))
            .ok_or("a subsection that is not quoted")?;
        if !plain(name) || name.contains('.') || inner.contains(['"', '\\']) {
            return Err("an unusual section header");
        }
        return Ok((name.to_ascii_lowercase(), Some(inner.to_owned())));
    }
    if !plain(header) {
        return Err("an unusual section header");
    }
    match header.split_once('.') {
        Some((name, sub)) => Ok((name.to_ascii_lowercase(), Some(sub.to_ascii_lowercase()))),
        None => Ok((header.to_ascii_lowercase(), None)),
    }
}

/// Checks one line of a value (quotes, escapes, comments) and says whether it goes on.
fn value_continues(line: &str) -> Result<bool, &'static str> {
    let mut quoted = false;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '"' => quoted = !quoted,
            '\\' => match chars.next() {
                None => return Ok(true),
                Some('n' | 't' | 'b' | '"' | '\\') => {}
                Some(_) => return Err("an unknown escape in a value"),
            },
            '#' | ';' if !quoted => return Ok(false),
            _ => {}
        }
    }
    if quoted {
        return Err("an unterminated quote");
    }
    Ok(false)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    const CLONE: &str = "[core]\n\trepositoryformatversion = 0\n\tfilemode = true\n\tbare = false\n\tlogallrefupdates = true\n[remote \"origin\"]\n\turl = https://example.com/r.git\n\tfetch = +refs/heads/*:refs/remotes/origin/*\n[branch \"main\"]\n\tremote = origin\n\tmerge = refs/heads/main\n";

    #[test]
    fn code_paths_are_read_as_git_reads_them() {
        let text = b"[core]\n\thooksPath = .husky # managed\n[include]\n\tpath = \"../my conf\"\n\
            [includeIf \"gitdir:~/w/\"]\n\tpath = ~/w.inc\n[core]\n\teditor = vim\n";
        assert_eq!(
            code_paths(text).unwrap(),
            vec![
                ("core.hooksPath".to_owned(), ".husky".to_owned()),
                ("include.path".to_owned(), "../my conf".to_owned()),
                ("includeIf.path".to_owned(), "~/w.inc".to_owned()),
            ]
        );
        assert_eq!(decode(" a\\tb  ; c"), "a\tb");
        assert_eq!(decode("\" x \"  "), " x ");
        assert!(code_paths(b"[core\n").is_err());
    }

    #[test]
    fn what_git_clone_writes_is_not_armed() {
        assert_eq!(armed_reason(CLONE.as_bytes()), None);
        assert_eq!(armed_reason(b""), None);
        assert_eq!(
            armed_reason(b"# c\n[user]\nname = \"A \\\"B\\\"\" ; c\nemail=a@b\n[extensions]\n\tobjectFormat = sha256\n"),
            None
        );
    }

    #[test]
    fn keys_are_case_insensitive_and_subsections_kept() {
        let keys =
            parse(b"[Core]\n\tFSMonitor = x\n[Remote \"Origin\"]\nURL = u\n[a.B]\nk\n").unwrap();
        assert_eq!(
            keys,
            vec![
                Key {
                    section: "core".into(),
                    subsection: None,
                    name: "fsmonitor".into(),
                    value: Some("x".into()),
                },
                Key {
                    section: "remote".into(),
                    subsection: Some("Origin".into()),
                    name: "url".into(),
                    value: Some("u".into()),
                },
                Key {
                    section: "a".into(),
                    subsection: Some("b".into()),
                    name: "k".into(),
                    value: None,
                },
            ]
        );
    }

    #[test]
    fn anything_that_runs_code_or_is_odd_is_armed() {
        for (cfg, why) in [
            ("[core]\n\tfsmonitor = /tmp/x\n", "core.fsmonitor"),
            ("[CORE]\n\tFsMonitor = true\n", "core.fsmonitor"),
            ("[core]\nhooksPath = /tmp\n", "core.hookspath"),
            ("[include]\npath = /tmp/c\n", "include.path"),
            (
                "[includeIf \"gitdir:/\"]\npath = /tmp/c\n",
                "includeif.*.path",
            ),
            ("[remote \"o\"]\nuploadpack = sh\n", "remote.*.uploadpack"),
            ("[core] sshCommand = x\n", "core.sshcommand"),
            (
                "[core]\nbare = false\n[filter \"a\"]\nclean = x\n",
                "filter.*.clean",
            ),
            ("[user]\nname = a \\\n  b\n[alias]\nx = !sh\n", "alias.x"),
            ("[core]\n\tpager = \"less\n", "unterminated"),
            ("fsmonitor = x\n", "before any section"),
            ("[core\n", "without `]`"),
            ("[core]\n\tbad\\x = 1\n", "without `=`"),
            ("[core]\r\nfsmonitor=1\r\n", "carriage return"),
            ("\u{feff}[core]\nbare = true\n", "cannot be read safely"),
        ] {
            let reason = armed_reason(cfg.as_bytes()).unwrap_or_default();
            assert!(reason.contains(why), "{cfg:?}: {reason:?}");
        }
    }

    proptest! {
        #[test]
        fn never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = armed_reason(&bytes);
        }

        #[test]
        fn never_panics_on_config_like_text(s in "[\\[\\]\" a-zA-Z.=#;\\\\\n\t-]{0,200}") {
            let _ = armed_reason(s.as_bytes());
        }
    }
}
