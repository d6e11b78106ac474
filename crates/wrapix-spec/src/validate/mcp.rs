//! `[mcp.NAME]` tables → [`McpServer`]s.
//!
//! A table in the project config replaces the user config's table of the same name as a whole;
//! `enabled = false` turns a server off (e.g. one the user config enables everywhere).

use std::collections::BTreeMap;

use toml::{Spanned, Value};

use crate::error::SpecError;
use crate::layer::{ConfigFile, Layers, Origin};
use crate::mcp::{self, McpServer, OptionKind, COMMON_KEYS};
use crate::problem::{McpOptionPathError, Problem};
use crate::types::{check_env_value, EnvName, SandboxPath};

type Table = BTreeMap<String, Spanned<Value>>;

pub fn servers(
    layers: &Layers,
    home: &SandboxPath,
    origins: &mut BTreeMap<&'static str, Origin>,
) -> Result<BTreeMap<String, McpServer>, SpecError> {
    let mut picked: BTreeMap<&str, (&ConfigFile, &Spanned<Table>)> = BTreeMap::new();
    for file in layers.files() {
        for (name, table) in file.raw.mcp.iter().flatten() {
            mcp::check_name(name)
                .map_err(|e| SpecError::at(file.at(table.span()), format!("mcp.{name}"), e))?;
            picked.insert(name, (file, table));
            origins.insert("mcp", file.origin());
        }
    }
    let mut out = BTreeMap::new();
    for (name, (file, table)) in picked {
        if let Some(server) = server(name, file, table, home)? {
            out.insert(name.to_owned(), server);
        }
    }
    Ok(out)
}

fn server(
    name: &str,
    file: &ConfigFile,
    table: &Spanned<Table>,
    home: &SandboxPath,
) -> Result<Option<McpServer>, SpecError> {
    let builtin = mcp::builtin(name);
    let table_span = table.span();
    let table = table.get_ref();
    let at = |key: &str, v: &Spanned<Value>, problem: Problem| {
        SpecError::at(file.at(v.span()), format!("mcp.{name}.{key}"), problem)
    };
    let err = |key: &str, v: &Spanned<Value>, message: String, fix: String| {
        at(key, v, Problem::Other { message, fix })
    };

    // Unknown keys first, so a typo is reported as one.
    for (key, v) in table {
        let known = COMMON_KEYS.contains(&key.as_str())
            || builtin.is_some_and(|b| b.options.iter().any(|o| o.key == key));
        if !known {
            let mut keys: Vec<&str> = COMMON_KEYS.to_vec();
            if let Some(b) = builtin {
                keys.extend(b.options.iter().map(|o| o.key));
            }
            return Err(err(
                key,
                v,
                format!("unknown key `{key}` for MCP server {name:?}"),
                format!("use one of: {}", keys.join(", ")),
            ));
        }
    }

    if let Some(v) = table.get("enabled") {
        match v.get_ref() {
            Value::Boolean(false) => return Ok(None),
            Value::Boolean(true) => {}
            _ => {
                return Err(err(
                    "enabled",
                    v,
                    "`enabled` is not a boolean".into(),
                    "write enabled = true or enabled = false".into(),
                ))
            }
        }
    }

    let mut env = BTreeMap::new();
    if let Some(v) = table.get("env") {
        let Value::Table(t) = v.get_ref() else {
            return Err(err(
                "env",
                v,
                "`env` is not a table".into(),
                "write env = { NAME = \"value\" }".into(),
            ));
        };
        for (k, value) in t {
            let key = format!("env.{k}");
            EnvName::parse(k).map_err(|e| at(&key, v, e.into()))?;
            let Value::String(s) = value else {
                return Err(err(
                    &key,
                    v,
                    format!("the value of {k} is not a string"),
                    "quote the value".into(),
                ));
            };
            check_env_value(s).map_err(|e| at(&key, v, e.into()))?;
            env.insert(k.clone(), s.clone());
        }
    }

    let (command, needs) = match builtin {
        Some(b) => {
            if let Some(v) = table.get("command") {
                return Err(err(
                    "command",
                    v,
                    format!("{name:?} is a built-in server; its command is fixed"),
                    "remove `command`, or give your own server another name".into(),
                ));
            }
            for opt in b.options {
                let Some(v) = table.get(opt.key) else {
                    continue;
                };
                let value = match (opt.kind, v.get_ref()) {
                    (OptionKind::SandboxPath, Value::String(s)) => SandboxPath::parse(s, home)
                        .map_err(|source| {
                            let help = opt.help;
                            at(opt.key, v, McpOptionPathError { source, help }.into())
                        })?
                        .to_string(),
                    (OptionKind::SandboxPath, _) => {
                        return Err(err(
                            opt.key,
                            v,
                            format!("`{}` is not a string", opt.key),
                            format!("write a path inside the sandbox ({})", opt.help),
                        ))
                    }
                };
                env.insert(opt.env.to_owned(), value);
            }
            (
                b.command.iter().map(|s| (*s).to_owned()).collect(),
                b.needs.to_vec(),
            )
        }
        None => {
            let fix = "write command = [\"program\", \"arg\", …] (argv inside the sandbox)";
            let Some(v) = table.get("command") else {
                let known: Vec<&str> = mcp::BUILTIN.iter().map(|b| b.name).collect();
                return Err(SpecError::invalid(
                    file.at(table_span),
                    format!("mcp.{name}.command"),
                    format!(
                        "{name:?} is not a built-in MCP server (built in: {}) and has no command",
                        known.join(", ")
                    ),
                    fix,
                ));
            };
            let argv = match v.get_ref() {
                Value::Array(items) => items
                    .iter()
                    .map(|i| match i {
                        Value::String(s) if !s.contains('\0') => Some(s.clone()),
                        _ => None,
                    })
                    .collect::<Option<Vec<String>>>(),
                _ => None,
            };
            match argv {
                Some(argv) if argv.first().is_some_and(|p| !p.is_empty()) => (argv, Vec::new()),
                _ => {
                    return Err(err(
                        "command",
                        v,
                        "`command` is not a non-empty list of strings".into(),
                        fix.into(),
                    ))
                }
            }
        }
    };
    Ok(Some(McpServer {
        command,
        env,
        needs,
        builtin: builtin.is_some(),
    }))
}
