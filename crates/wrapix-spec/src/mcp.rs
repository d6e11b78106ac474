//! The MCP server registry: `[mcp.NAME]` in `wrapix.toml` turns into servers registered in the
//! agent's settings.
//!
//! Built-in servers are data (name → command, option → environment variable, programs the
//! sandbox must have), so a second built-in server is one more entry in [`BUILTIN`]. Any other
//! name is a server the user brings, with `command = [...]`.

use std::collections::BTreeMap;

use crate::problem::McpNameError;

/// How an option's value is checked before it becomes an environment variable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OptionKind {
    /// A path inside the sandbox: absolute or `~/…`, without `..`.
    SandboxPath,
}

/// One `[mcp.NAME] KEY = value` option of a built-in server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerOption {
    pub key: &'static str,
    /// The environment variable the server reads it from.
    pub env: &'static str,
    pub kind: OptionKind,
    pub help: &'static str,
}

/// A program a server needs inside the sandbox, and the Debian package that provides it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Need {
    pub program: &'static str,
    pub package: &'static str,
}

/// A server wrapix ships.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BuiltinServer {
    pub name: &'static str,
    pub description: &'static str,
    /// argv inside the sandbox.
    pub command: &'static [&'static str],
    pub options: &'static [ServerOption],
    pub needs: &'static [Need],
}

/// Every built-in server.
pub const BUILTIN: &[BuiltinServer] = &[BuiltinServer {
    name: "tmux-debug",
    description: "tmux panes for debugging: run a server in one pane, send input from another",
    command: &["/run/wrapix/bin/wrapix", "mcp", "tmux-debug"],
    options: &[
        ServerOption {
            key: "audit",
            env: "TMUX_DEBUG_AUDIT",
            kind: OptionKind::SandboxPath,
            help: "file inside the sandbox that gets one JSON line per tool call",
        },
        ServerOption {
            key: "audit_full",
            env: "TMUX_DEBUG_AUDIT_FULL",
            kind: OptionKind::SandboxPath,
            help: "folder inside the sandbox that also gets every capture",
        },
    ],
    needs: &[Need {
        program: "tmux",
        package: "tmux",
    }],
}];

/// The built-in server called `name`.
pub fn builtin(name: &str) -> Option<&'static BuiltinServer> {
    BUILTIN.iter().find(|s| s.name == name)
}

/// Keys every `[mcp.NAME]` table may have.
pub const COMMON_KEYS: &[&str] = &["command", "env", "enabled"];

/// A validated server, ready to be registered with the agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct McpServer {
    /// argv inside the sandbox; never empty.
    pub command: Vec<String>,
    /// Environment of the server process (options of built-in servers included).
    pub env: BTreeMap<String, String>,
    /// Programs the sandbox must have for this server.
    pub needs: Vec<Need>,
    /// True for a server from [`BUILTIN`].
    pub builtin: bool,
}

/// A plain server name: letters, digits, `-`, `_`; at most 64 characters.
pub fn check_name(name: &str) -> Result<(), McpNameError> {
    let valid = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if valid {
        Ok(())
    } else {
        Err(McpNameError(name.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_is_consistent() {
        for s in BUILTIN {
            assert!(check_name(s.name).is_ok(), "{}", s.name);
            assert!(!s.command.is_empty());
            for o in s.options {
                assert!(
                    !COMMON_KEYS.contains(&o.key),
                    "{} shadows a common key",
                    o.key
                );
                assert!(crate::types::EnvName::parse(o.env).is_ok());
            }
        }
        assert_eq!(
            builtin("tmux-debug").map(|s| s.command),
            Some(&["/run/wrapix/bin/wrapix", "mcp", "tmux-debug"][..])
        );
    }

    #[test]
    fn names() {
        assert!(check_name("tmux-debug").is_ok());
        assert!(check_name("my_server2").is_ok());
        assert!(check_name("").is_err());
        assert!(check_name("a b").is_err());
        assert!(check_name("a.b").is_err());
        assert!(check_name(&"x".repeat(65)).is_err());
    }
}
