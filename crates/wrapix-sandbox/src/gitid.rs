//! The user's git identity, forwarded into the sandbox as `~/.gitconfig` (so a repository's own
//! `user.*` settings still win, as they would on the host).

use std::collections::BTreeMap;
use std::path::Path;

/// `[user] name/email` from the host's global git config files, read as plain text
/// (no `git` process on the launch path). `include` directives are not followed.
pub fn host_identity(
    host_home: &Path,
    env: &BTreeMap<String, String>,
) -> (Option<String>, Option<String>) {
    let xdg = env
        .get("XDG_CONFIG_HOME")
        .map(|x| Path::new(x).join("git/config"))
        .unwrap_or_else(|| host_home.join(".config/git/config"));
    let mut name = None;
    let mut email = None;
    for file in [xdg, host_home.join(".gitconfig")] {
        let Ok(text) = std::fs::read_to_string(&file) else {
            continue;
        };
        let (n, e) = parse_user(&text);
        name = n.or(name);
        email = e.or(email);
    }
    (name, email)
}

fn parse_user(text: &str) -> (Option<String>, Option<String>) {
    let mut in_user = false;
    let (mut name, mut email) = (None, None);
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('[') {
            in_user = line
                .trim_start_matches('[')
                .trim_end_matches(']')
                .trim()
                .eq_ignore_ascii_case("user");
            continue;
        }
        if !in_user {
            continue;
        }
        if let Some((k, v)) = line.split_once('=') {
            let v = v.trim().trim_matches('"').to_owned();
            match k.trim().to_ascii_lowercase().as_str() {
                "name" => name = Some(v),
                "email" => email = Some(v),
                _ => {}
            }
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
pub fn gitconfig_for_sandbox(host_home: &Path, env: &BTreeMap<String, String>) -> Option<String> {
    let (name, email) = host_identity(host_home, env);
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
    fn parses_user_section_only() {
        let text = "[core]\n\tname = no\n[user]\n\tname = Ada Lovelace\n\temail = \"ada@example.org\"\n[x]\nemail = no\n";
        assert_eq!(
            parse_user(text),
            (Some("Ada Lovelace".into()), Some("ada@example.org".into()))
        );
    }

    #[test]
    fn quoting_cannot_break_out() {
        assert_eq!(quote("a\"b\\c\nd"), "\"a\\\"b\\\\cd\"");
    }
}
