//! The user's git identity, forwarded into the sandbox as `~/.gitconfig` (so a repository's own
//! `user.*` settings still win, as they would on the host).

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long git gets to answer (it reads a few small files; a FIFO planted as a config file
/// must not hold the launch).
const GIT_TIMEOUT: Duration = Duration::from_secs(2);
/// The most output read from it.
const MAX_OUTPUT: u64 = 64 * 1024;

/// `user.name` and `user.email` from the host user's global git config, as git itself reads
/// it: `include` and `includeIf` followed (so `includeIf "gitdir:~/work/"` gives the work
/// identity in a work project). Started early and read when needed ([`Lookup::finish`]), so
/// the git process runs beside the rest of the preparation.
pub struct Lookup {
    child: Option<Child>,
}

/// Starts `git config --global --includes --get-regexp` in the project (for `gitdir:`
/// conditions). Only global files are read: the repository's own config, which the sandbox
/// can see and change, is not. `git config` runs no hooks and no fsmonitor. Without git on
/// the host there is no identity.
pub fn start(env: &BTreeMap<String, String>, project: &Path) -> Lookup {
    let Some(git) = crate::backend::find_program("git", env.get("PATH").map(String::as_str)) else {
        return Lookup { child: None };
    };
    let child = Command::new(git)
        .args([
            "config",
            "--global",
            "--includes",
            "-z",
            "--get-regexp",
            r"^user\.(name|email)$",
        ])
        .env_clear()
        .envs(env)
        .env("GIT_TERMINAL_PROMPT", "0")
        .env("GIT_OPTIONAL_LOCKS", "0")
        .current_dir(project)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .ok();
    Lookup { child }
}

impl Lookup {
    /// The identity (`None` for what is not set), waiting at most [`GIT_TIMEOUT`] for git.
    pub fn finish(self) -> (Option<String>, Option<String>) {
        let Some(mut child) = self.child else {
            return (None, None);
        };
        let start = Instant::now();
        let done = loop {
            match child.try_wait() {
                Ok(Some(status)) => break status.success(),
                Ok(None) if start.elapsed() < GIT_TIMEOUT => {
                    std::thread::sleep(Duration::from_micros(200))
                }
                _ => {
                    let _ = child.kill();
                    let _ = child.wait();
                    break false;
                }
            }
        };
        let mut out = Vec::new();
        if let Some(stdout) = child.stdout.take() {
            let _ = stdout.take(MAX_OUTPUT).read_to_end(&mut out);
        }
        if !done {
            return (None, None);
        }
        parse(&out)
    }
}

/// `git config -z --get-regexp` output: `key\nvalue\0` entries; the last of a key wins.
fn parse(out: &[u8]) -> (Option<String>, Option<String>) {
    let (mut name, mut email) = (None, None);
    for entry in out.split(|b| *b == 0) {
        let text = String::from_utf8_lossy(entry);
        let Some((key, value)) = text.split_once('\n') else {
            continue;
        };
        match key {
            "user.name" => name = Some(value.to_owned()),
            "user.email" => email = Some(value.to_owned()),
            _ => {}
        }
    }
    (name, email)
}

/// Quotes a value for a git config file.
fn quote(v: &str) -> String {
    let mut out = String::from("\"");
    for c in v.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' | '\r' | '\0' => {}
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The sandbox's `~/.gitconfig`, or `None` when the host has no identity.
pub fn gitconfig_for_sandbox(lookup: Lookup) -> Option<String> {
    let (name, email) = lookup.finish();
    if name.is_none() && email.is_none() {
        return None;
    }
    let mut out = String::from("# written by wrapix: the host user's git identity\n[user]\n");
    if let Some(n) = name {
        out.push_str(&format!("\tname = {}\n", quote(&n)));
    }
    if let Some(e) = email {
        out.push_str(&format!("\temail = {}\n", quote(&e)));
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_git_output_last_wins() {
        let out = b"user.name\nAda\0user.email\nada@example.org\0user.name\nAda L.\nx\0junk\0";
        assert_eq!(
            parse(out),
            (Some("Ada L.\nx".into()), Some("ada@example.org".into()))
        );
        assert_eq!(parse(b""), (None, None));
    }

    /// The real git, with an include and an includeIf that applies only in one folder.
    #[test]
    fn includes_and_conditions_are_followed_by_git() {
        let dir = tempfile::tempdir().unwrap();
        let home = dir.path().join("home");
        let work = dir.path().join("work/project");
        let other = dir.path().join("other");
        for d in [&home, &work, &other] {
            std::fs::create_dir_all(d).unwrap();
        }
        std::fs::write(
            home.join("base.inc"),
            "[user]\n\tname = Ada Lovelace ; a comment\n",
        )
        .unwrap();
        std::fs::write(
            home.join("work.inc"),
            "[user]\n\temail = \"ada@work.example\"\n",
        )
        .unwrap();
        std::fs::write(
            home.join(".gitconfig"),
            format!(
                "[include]\n\tpath = base.inc\n[user]\n\temail = ada@home.example\n[includeIf \"gitdir:{}/\"]\n\tpath = work.inc\n",
                dir.path().join("work").display()
            ),
        )
        .unwrap();
        let git = |dir: &Path| {
            std::process::Command::new("git")
                .args(["init", "-q"])
                .current_dir(dir)
                .env("HOME", &home)
                .status()
                .map(|s| s.success())
                .unwrap_or(false)
        };
        if !git(&work) {
            eprintln!("SKIP: git is not installed");
            return;
        }
        let env: BTreeMap<String, String> = [
            ("HOME".to_owned(), home.display().to_string()),
            ("PATH".to_owned(), std::env::var("PATH").unwrap_or_default()),
        ]
        .into_iter()
        .collect();
        assert_eq!(
            start(&env, &work).finish(),
            (Some("Ada Lovelace".into()), Some("ada@work.example".into()))
        );
        assert_eq!(
            start(&env, &other).finish(),
            (Some("Ada Lovelace".into()), Some("ada@home.example".into()))
        );
        // No config at all: nothing.
        let empty: BTreeMap<String, String> = [
            ("HOME".to_owned(), other.display().to_string()),
            ("PATH".to_owned(), std::env::var("PATH").unwrap_or_default()),
        ]
        .into_iter()
        .collect();
        assert_eq!(start(&empty, &other).finish(), (None, None));
    }

    #[test]
    fn quoting_cannot_break_out() {
        assert_eq!(quote("a\"b\\c\nd"), "\"a\\\"b\\\\cd\"");
    }
}
