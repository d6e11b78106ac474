//! The prompt templates, `.ralph/templates/{plan,ready,step}.md`: plain text with `{{name}}`
//! placeholders, nothing else. They are agent-writable like everything in the project, so
//! rendering is one pass of substitution (a value that contains `{{…}}` stays as it is) and
//! an unknown placeholder is an error naming the file and line.

use std::path::PathBuf;

use crate::error::RalphError;
use crate::project::{Project, TEXT_LIMIT};

/// One of the three templates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Plan,
    Ready,
    Step,
}

pub const TEMPLATES_DIR: &str = ".ralph/templates";
/// `specs/README.md`, the spec format, written by `ralph start`.
pub const SPECS_README: &str = include_str!("../templates/specs-README.md");

impl Kind {
    pub const ALL: [Kind; 3] = [Kind::Plan, Kind::Ready, Kind::Step];

    pub fn name(self) -> &'static str {
        match self {
            Kind::Plan => "plan",
            Kind::Ready => "ready",
            Kind::Step => "step",
        }
    }

    pub fn parse(s: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.name() == s)
    }

    /// The built-in default.
    pub fn default_text(self) -> &'static str {
        match self {
            Kind::Plan => include_str!("../templates/plan.md"),
            Kind::Ready => include_str!("../templates/ready.md"),
            Kind::Step => include_str!("../templates/step.md"),
        }
    }

    /// The placeholders this template may use.
    pub fn placeholders(self) -> &'static [&'static str] {
        match self {
            Kind::Plan => &["label", "spec_path", "spec_format", "specs"],
            Kind::Ready => &["label", "spec_path", "spec", "tasks"],
            Kind::Step => &[
                "task_id",
                "task_title",
                "task_note",
                "label",
                "spec_path",
                "spec",
                "progress",
            ],
        }
    }

    pub fn path(self) -> PathBuf {
        PathBuf::from(format!("{TEMPLATES_DIR}/{}.md", self.name()))
    }

    /// The project's template, or the default when the file is missing.
    pub fn load(self, project: &Project) -> Result<String, RalphError> {
        Ok(project
            .read_text(&self.path(), TEXT_LIMIT)?
            .unwrap_or_else(|| self.default_text().to_owned()))
    }
}

/// Replaces each `{{name}}` in `text` (the file `file`) by its value. Every placeholder must
/// be one of `kind`'s and have a value; an unclosed `{{` is an error too.
pub fn render(
    kind: Kind,
    file: &str,
    text: &str,
    values: &[(&str, &str)],
) -> Result<String, RalphError> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    let mut offset = 0;
    while let Some(i) = rest.find("{{") {
        out.push_str(&rest[..i]);
        let after = &rest[i + 2..];
        let line = crate::error::line_of(text, offset + i);
        let Some(j) = after.find("}}") else {
            return Err(RalphError::malformed(
                file,
                line,
                "a {{ without }}",
                "close the placeholder, or remove the braces",
            ));
        };
        let name = after[..j].trim();
        if !kind.placeholders().contains(&name) {
            return Err(RalphError::malformed(
                file,
                line,
                format!(
                    "unknown placeholder {{{{{}}}}}",
                    crate::tracker::escape(name)
                ),
                format!(
                    "the {} template knows {}",
                    kind.name(),
                    kind.placeholders()
                        .iter()
                        .map(|p| format!("{{{{{p}}}}}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ));
        }
        let value = values
            .iter()
            .find(|(k, _)| *k == name)
            .map_or("", |(_, v)| *v);
        out.push_str(value);
        let used = i + 2 + j + 2;
        offset += used;
        rest = &rest[used..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_render_with_their_own_placeholders() {
        for k in Kind::ALL {
            let values: Vec<(&str, &str)> = k.placeholders().iter().map(|p| (*p, "V")).collect();
            let out = render(k, "t", k.default_text(), &values).unwrap_or_else(|e| panic!("{e}"));
            assert!(!out.contains("{{"), "{}", k.name());
        }
    }

    #[test]
    fn values_are_not_rendered_again() {
        let out = render(Kind::Step, "t", "a {{spec}} b", &[("spec", "{{task_id}}")]);
        assert_eq!(out.ok().as_deref(), Some("a {{task_id}} b"));
    }

    #[test]
    fn unknown_and_unclosed_placeholders_name_the_line() {
        let e = render(
            Kind::Plan,
            ".ralph/templates/plan.md",
            "x\n\n{{task_id}}\n",
            &[],
        );
        let e = e.err().map(|e| e.to_string()).unwrap_or_default();
        assert!(
            e.starts_with(".ralph/templates/plan.md:3: unknown placeholder {{task_id}}"),
            "{e}"
        );
        let e = render(Kind::Plan, "p", "x {{label", &[]).err();
        assert!(e.is_some_and(|e| e.to_string().starts_with("p:1: a {{ without }}")));
    }
}
