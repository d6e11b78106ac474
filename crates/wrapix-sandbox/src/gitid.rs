//! The user's git identity, forwarded into the sandbox as `~/.gitconfig` (so a repository's own
//! `user.*` settings still win, as they would on the host).

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
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
    /// The answer from the cache (the files git reads unchanged since it was stored).
    cached: Option<(Option<String>, Option<String>)>,
    /// Where to store git's answer, and under which key.
    store: Option<(PathBuf, Vec<String>, Vec<PathBuf>)>,
}

/// The files `git config --global` reads: `$GIT_CONFIG_GLOBAL`, else
/// `$XDG_CONFIG_HOME/git/config` (or `~/.config/git/config`) and `~/.gitconfig`.
fn global_files(env: &BTreeMap<String, String>) -> Vec<PathBuf> {
    let var = |k: &str| env.get(k).filter(|v| !v.is_empty()).map(PathBuf::from);
    if let Some(g) = var("GIT_CONFIG_GLOBAL") {
        return vec![g];
    }
    let home = var("HOME");
    let xdg = var("XDG_CONFIG_HOME").or_else(|| home.as_ref().map(|h| h.join(".config")));
    xdg.map(|x| x.join("git/config"))
        .into_iter()
        .chain(home.map(|h| h.join(".gitconfig")))
        .collect()
}

/// What identifies a file's content without reading it (links followed, as git does).
fn stamp(p: &Path) -> String {
    use std::os::unix::fs::MetadataExt;
    match std::fs::metadata(p) {
        Ok(m) => format!(
            "{}:{}:{}:{}.{}:{}.{}",
            m.dev(),
            m.ino(),
            m.size(),
            m.mtime(),
            m.mtime_nsec(),
            m.ctime(),
            m.ctime_nsec()
        ),
        Err(e) => format!("absent:{:?}", e.kind()),
    }
}

/// The cache of git's answer: `$XDG_CACHE_HOME/wrapix/git-identity.json` (the user's own
/// folder, hidden from sandboxes like every wrapix folder). A relative value is ignored, as
/// the XDG rules say: it would name a folder below the working one, often the project.
fn cache_file(env: &BTreeMap<String, String>) -> Option<PathBuf> {
    let var = |k: &str| env.get(k).map(PathBuf::from).filter(|p| p.is_absolute());
    let cache = var("XDG_CACHE_HOME").or_else(|| var("HOME").map(|h| h.join(".cache")))?;
    Some(cache.join("wrapix/git-identity.json"))
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Cached {
    key: Vec<String>,
    name: Option<String>,
    email: Option<String>,
}

/// Whether git's answer from these files can be reused in any project: none of them includes
/// another file (`include` or `includeIf`, whose `gitdir:` conditions depend on the project),
/// and each is small enough to check.
fn cacheable(files: &[PathBuf]) -> bool {
    use std::os::unix::fs::OpenOptionsExt;
    files.iter().all(|f| {
        // Without waiting (a FIFO planted there would wait for a writer), and regular files
        // only.
        let opened = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(f);
        match opened {
            Ok(file) => {
                let mut text = Vec::new();
                file.metadata().is_ok_and(|m| m.is_file())
                    && file
                        .take(MAX_OUTPUT + 1)
                        .read_to_end(&mut text)
                        .is_ok_and(|n| n as u64 <= MAX_OUTPUT)
                    && !String::from_utf8_lossy(&text)
                        .to_ascii_lowercase()
                        .contains("include")
            }
            Err(e) => e.kind() == std::io::ErrorKind::NotFound,
        }
    })
}

/// Starts `git config --global --includes --get-regexp` in the project (for `gitdir:`
/// conditions). Only global files are read: the repository's own config, which the sandbox
/// can see and change, is not. `git config` runs no hooks and no fsmonitor. Without git on
/// the host there is no identity.
///
/// Git's answer is cached while the files it read are unchanged (same inode, size, times) and
/// include no other file: a launch then starts no git at all. With `store` false (`--dry-run`,
/// which changes nothing on the host), the cache is read but never written.
pub fn start(env: &BTreeMap<String, String>, project: &Path, store: bool) -> Lookup {
    let Some(git) = crate::backend::find_program("git", env.get("PATH").map(String::as_str)) else {
        return Lookup {
            child: None,
            cached: None,
            store: None,
        };
    };
    let files = global_files(env);
    let mut key = vec![git.display().to_string()];
    for k in ["GIT_CONFIG_GLOBAL", "HOME", "XDG_CONFIG_HOME"] {
        key.push(format!("{k}={}", env.get(k).map_or("", String::as_str)));
    }
    for f in &files {
        key.push(format!("{}={}", f.display(), stamp(f)));
    }
    let cache = cache_file(env);
    if let Some(c) = cache
        .as_deref()
        .and_then(|p| std::fs::read(p).ok())
        .and_then(|d| serde_json::from_slice::<Cached>(&d).ok())
        .filter(|c| c.key == key)
    {
        return Lookup {
            child: None,
            cached: Some((c.name, c.email)),
            store: None,
        };
    }
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
    Lookup {
        child,
        cached: None,
        store: cache.filter(|_| store).map(|c| (c, key, files)),
    }
}

impl Lookup {
    /// The identity (`None` for what is not set), waiting at most [`GIT_TIMEOUT`] for git.
    pub fn finish(self) -> (Option<String>, Option<String>) {
        if let Some(found) = self.cached {
            return found;
        }
        let Some(mut child) = self.child else {
            return (None, None);
        };
        let start = Instant::now();
        // An answer: success, or exit 1 (`--get-regexp` found nothing: no identity). Not one:
        // any other failure, or git killed after the timeout.
        let answered = loop {
            match child.try_wait() {
                Ok(Some(status)) => break status.success() || status.code() == Some(1),
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
        if !answered {
            return (None, None);
        }
        let found = parse(&out);
        if let Some((path, key, files)) = self.store {
            if cacheable(&files) {
                store(&path, key, &found);
            }
        }
        found
    }
}

/// Writes the cache (a temporary file renamed over it; any failure only means no cache).
fn store(path: &Path, key: Vec<String>, found: &(Option<String>, Option<String>)) {
    let Some(dir) = path.parent() else { return };
    if std::fs::create_dir_all(dir).is_err() {
        return;
    }
    let c = Cached {
        key,
        name: found.0.clone(),
        email: found.1.clone(),
    };
    let Ok(data) = serde_json::to_vec(&c) else {
        return;
    };
    let tmp = dir.join(format!(".git-identity.{}.tmp", std::process::id()));
    if std::fs::write(&tmp, data).is_ok() && std::fs::rename(&tmp, path).is_err() {
        let _ = std::fs::remove_file(&tmp);
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
            start(&env, &work, true).finish(),
            (Some("Ada Lovelace".into()), Some("ada@work.example".into()))
        );
        assert_eq!(
            start(&env, &other, true).finish(),
            (Some("Ada Lovelace".into()), Some("ada@home.example".into()))
        );
        // No config at all: nothing.
        let empty: BTreeMap<String, String> = [
            ("HOME".to_owned(), other.display().to_string()),
            ("PATH".to_owned(), std::env::var("PATH").unwrap_or_default()),
        ]
        .into_iter()
        .collect();
        assert_eq!(start(&empty, &other, true).finish(), (None, None));
    }

    /// Git's answer is reused while the files are unchanged and include nothing; a change, or
    /// an include, runs git again.
    #[test]
    fn the_answer_is_cached_while_the_files_are_unchanged() {
        if std::process::Command::new("git")
            .arg("--version")
            .output()
            .is_err()
        {
            eprintln!("SKIP: git is not installed");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let home = dir.path().join("home");
        std::fs::create_dir_all(&home).unwrap();
        let env: BTreeMap<String, String> = [
            ("HOME".to_owned(), home.display().to_string()),
            ("PATH".to_owned(), std::env::var("PATH").unwrap_or_default()),
        ]
        .into_iter()
        .collect();
        let cfg = home.join(".gitconfig");
        let ran = |want: Option<&str>| {
            let l = start(&env, dir.path(), true);
            let ran = l.child.is_some();
            assert_eq!(l.finish().0.as_deref(), want);
            ran
        };
        // No config: git runs once, then the "no identity" answer is reused.
        assert!(ran(None));
        assert!(!ran(None));
        std::fs::write(&cfg, "[user]\n\tname = Ada\n").unwrap();
        assert!(ran(Some("Ada")));
        assert!(!ran(Some("Ada")));
        // Same size, other content: the times and inode tell.
        std::fs::write(home.join("new"), "[user]\n\tname = Bob\n").unwrap();
        std::fs::rename(home.join("new"), &cfg).unwrap();
        assert!(ran(Some("Bob")));
        assert!(!ran(Some("Bob")));
        // An include: never reused (its file, or a gitdir: condition, may change the answer).
        std::fs::write(home.join("inc"), "[user]\n\tname = Cy\n").unwrap();
        std::fs::write(&cfg, "[Include]\n\tpath = inc\n").unwrap();
        assert!(ran(Some("Cy")));
        assert!(ran(Some("Cy")));
        // A corrupt cache is only a miss.
        std::fs::write(&cfg, "[user]\n\tname = Di\n").unwrap();
        assert!(ran(Some("Di")));
        std::fs::write(home.join(".cache/wrapix/git-identity.json"), "{not json").unwrap();
        assert!(ran(Some("Di")));
        assert!(!ran(Some("Di")));
        // `--dry-run` (store false) reads the cache but never writes it.
        std::fs::remove_file(home.join(".cache/wrapix/git-identity.json")).unwrap();
        assert_eq!(
            start(&env, dir.path(), false).finish().0.as_deref(),
            Some("Di")
        );
        assert!(!home.join(".cache/wrapix/git-identity.json").exists());
    }

    /// A relative `XDG_CACHE_HOME` (or `HOME`) would put the cache below wrapix's working
    /// folder, usually the project, where the sandbox writes the identity of later runs: none
    /// (the XDG rule, and what `own_folders` hides).
    #[test]
    fn a_relative_cache_folder_is_not_used() {
        let env = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect()
        };
        assert_eq!(
            cache_file(&env(&[("HOME", "/home/u"), ("XDG_CACHE_HOME", "cache")])),
            Some(PathBuf::from("/home/u/.cache/wrapix/git-identity.json"))
        );
        assert_eq!(cache_file(&env(&[("HOME", "home")])), None);
        assert_eq!(
            cache_file(&env(&[("XDG_CACHE_HOME", "/c")])),
            Some(PathBuf::from("/c/wrapix/git-identity.json"))
        );
    }

    /// A FIFO as a config file is never cached, and checking it does not wait for a writer.
    #[test]
    fn a_fifo_is_not_cacheable_and_does_not_block() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join(".gitconfig");
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: mkfifo with a NUL-terminated path.
        #[allow(unsafe_code)]
        let rc = unsafe { libc::mkfifo(c.as_ptr(), 0o600) };
        assert_eq!(rc, 0);
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(cacheable(&[fifo]));
        });
        assert_eq!(rx.recv_timeout(Duration::from_secs(5)), Ok(false));
    }

    #[test]
    fn quoting_cannot_break_out() {
        assert_eq!(quote("a\"b\\c\nd"), "\"a\\\"b\\\\cd\"");
    }
}
