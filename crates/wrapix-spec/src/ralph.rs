//! `[ralph]`: settings of the agent loop (`wrapix ralph`), validated from the same config files
//! as the sandbox. A project file's `agent` and `print_args` widen (they choose what runs with
//! the agent's login) and need `wrapix trust`, which [`crate::validate`] enforces.

use crate::layer::Layers;
use crate::SpecError;

/// Claude Code's arguments for a non-interactive run with machine-readable output.
pub const CLAUDE_PRINT_ARGS: &[&str] = &["-p", "--output-format", "stream-json", "--verbose"];

/// The validated `[ralph]` table.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Ralph {
    /// The agent's argv for ralph's runs (`None`: `[agent] command`).
    pub agent: Option<Vec<String>>,
    /// Arguments added for non-interactive runs (`None`: [`CLAUDE_PRINT_ARGS`] for Claude
    /// Code, nothing for another agent).
    pub print_args: Option<Vec<String>>,
    /// Run in the sandbox after the agent; a non-zero exit fails the step.
    pub check: Option<Vec<String>>,
    /// A step passes only with a clean (committed) git tree. Default true.
    pub require_clean: bool,
    /// `"auto"` (default: beads when the project has `.beads/` and no ralph task), `"ralph"`
    /// or `"beads"`.
    pub tracker: Option<String>,
}

impl Ralph {
    /// The print arguments for `agent` (an argv whose program may be Claude Code).
    pub fn print_args_for(&self, agent: &[String]) -> Vec<String> {
        match &self.print_args {
            Some(a) => a.clone(),
            None if agent
                .first()
                .is_some_and(|p| p.rsplit('/').next() == Some("claude")) =>
            {
                CLAUDE_PRINT_ARGS.iter().map(|s| (*s).to_owned()).collect()
            }
            None => Vec::new(),
        }
    }
}

/// `[ralph]` of the user file, then the project file (each key: the later file wins).
pub fn validate(layers: &Layers) -> Result<Ralph, SpecError> {
    let mut out = Ralph {
        require_clean: true,
        ..Ralph::default()
    };
    for file in layers.files() {
        let Some(r) = &file.raw.ralph else { continue };
        let argv = |key: &str, v: &toml::Spanned<Vec<String>>, may_be_empty: bool| {
            if !may_be_empty && (v.get_ref().is_empty() || v.get_ref()[0].is_empty()) {
                return Err(SpecError::invalid(
                    file.at(v.span()),
                    format!("ralph.{key}"),
                    "the command is empty",
                    "write the program and its arguments, e.g. [\"cargo\", \"test\"]",
                ));
            }
            if v.get_ref().iter().any(|a| a.contains('\0')) {
                return Err(SpecError::invalid(
                    file.at(v.span()),
                    format!("ralph.{key}"),
                    "an argument contains a NUL byte",
                    "remove the NUL byte",
                ));
            }
            Ok(v.get_ref().clone())
        };
        if let Some(a) = &r.agent {
            out.agent = Some(argv("agent", a, false)?);
        }
        if let Some(a) = &r.print_args {
            out.print_args = Some(argv("print_args", a, true)?);
        }
        if let Some(c) = &r.check {
            out.check = Some(argv("check", c, false)?);
        }
        if let Some(c) = &r.require_clean {
            out.require_clean = *c.get_ref();
        }
        if let Some(t) = &r.tracker {
            if !matches!(t.get_ref().as_str(), "auto" | "ralph" | "beads") {
                return Err(SpecError::invalid(
                    file.at(t.span()),
                    "ralph.tracker".to_owned(),
                    "not a tracker ralph knows",
                    "use \"auto\", \"ralph\" or \"beads\"",
                ));
            }
            out.tracker = Some(t.get_ref().clone());
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claude_gets_stream_json_others_nothing() {
        let r = Ralph::default();
        let claude = vec!["/usr/bin/claude".to_owned()];
        assert_eq!(r.print_args_for(&claude), CLAUDE_PRINT_ARGS);
        assert!(r.print_args_for(&["aider".to_owned()]).is_empty());
        let set = Ralph {
            print_args: Some(vec!["--x".into()]),
            ..Ralph::default()
        };
        assert_eq!(set.print_args_for(&claude), ["--x"]);
    }

    #[test]
    fn project_agent_widens_check_does_not() {
        let w = crate::trust::widening_over("[ralph]\ncheck = [\"cargo\", \"test\"]\n", None);
        assert!(w.is_empty(), "{w:?}");
        // The tracker only chooses where tasks are read from: bd runs in the sandbox, and a
        // task is done only by ralph's own record.
        let w = crate::trust::widening("[ralph]\ntracker = \"beads\"\n");
        assert!(w.is_empty(), "{w:?}");
        let w = crate::trust::widening("[ralph]\nagent = [\"x\"]\nprint_args = []\n");
        let keys: Vec<&str> = w.iter().map(|w| w.key.as_str()).collect();
        assert_eq!(keys, ["ralph.agent", "ralph.print_args"]);
    }

    fn user(text: &str) -> crate::raw::RawConfig {
        crate::layer::ConfigFile::parse(
            std::path::Path::new("config.toml"),
            text.to_owned(),
            crate::layer::FileKind::User,
        )
        .unwrap_or_else(|e| panic!("{e}"))
        .raw
    }

    fn keys_over(project: &str, user_text: Option<&str>) -> Vec<String> {
        let u = user_text.map(user);
        crate::trust::widening_over(project, u.as_ref())
            .into_iter()
            .map(|w| w.key)
            .collect()
    }

    /// The agent writes a project `wrapix.toml` (it may create one when there is none) to
    /// make its own work pass: every weakening of the user's verification needs trust.
    #[test]
    fn a_project_may_not_weaken_the_users_verification() {
        let mine = "[ralph]\ncheck = [\"cargo\", \"test\"]\n";
        // The user's check replaced, by one that always passes or by a lesser one.
        assert_eq!(
            keys_over("[ralph]\ncheck = [\"true\"]\n", Some(mine)),
            ["ralph.check"]
        );
        assert_eq!(
            keys_over(
                "[ralph]\ncheck = [\"cargo\", \"test\", \"--lib\"]\n",
                Some(mine)
            ),
            ["ralph.check"]
        );
        assert_eq!(
            keys_over("[ralph]\ncheck = \"true\"\n", Some(mine)),
            ["ralph.check"]
        );
        // The same check, and a check where the user had none, narrow.
        assert!(keys_over(mine, Some(mine)).is_empty());
        assert!(keys_over(mine, Some("profile = \"base\"\n")).is_empty());
        // The clean-tree rule turned off: on by default, and when the user config says so.
        let off = "[ralph]\nrequire_clean = false\n";
        assert_eq!(keys_over(off, None), ["ralph.require_clean"]);
        assert_eq!(keys_over(off, Some(mine)), ["ralph.require_clean"]);
        assert_eq!(
            keys_over(off, Some("[ralph]\nrequire_clean = true\n")),
            ["ralph.require_clean"]
        );
        // Off in the user config already: the project's says nothing new; on narrows.
        assert!(keys_over(off, Some("[ralph]\nrequire_clean = false\n")).is_empty());
        assert!(keys_over("[ralph]\nrequire_clean = true\n", None).is_empty());
        // A key ralph does not know is never taken on trust.
        assert_eq!(
            keys_over("[ralph]\nmax_failures = 99\n", Some(mine)),
            ["ralph.max_failures"]
        );
    }
}
