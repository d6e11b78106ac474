//! `wrapix trust`: approve the exact content of a project's `wrapix.toml`, withdraw it, list.

use std::path::Path;

use wrapix_spec::error::escape_controls;
use wrapix_spec::layer::{ConfigFile, FileKind};
use wrapix_spec::trust::{self, Record};

use super::Failure;
use crate::cli::TrustArgs;
use crate::context::{host_env, host_user, project_dir, state_root, user_config_path};

pub fn trust(args: &TrustArgs) -> Result<i32, Failure> {
    let env = host_env();
    let user = host_user(&env);
    let root = state_root(&user, &env);
    if args.list {
        return list(&root);
    }
    let project = project_dir(args.project.as_deref())?;
    if args.revoke {
        let had = trust::revoke(&root, &project).map_err(|e| Failure::from_error(1, e))?;
        if had {
            eprintln!(
                "wrapix: {}/wrapix.toml is no longer trusted",
                project.display()
            );
        } else {
            eprintln!(
                "wrapix: {}/wrapix.toml was not trusted; nothing to revoke",
                project.display()
            );
        }
        return Ok(0);
    }
    let Some(file) = ConfigFile::load_project(&project)? else {
        return Err(Failure::usage(format!(
            "{} has no wrapix.toml to trust (fix: create one, or run wrapix trust -C DIR in the project)",
            project.display()
        )));
    };
    let user_config = ConfigFile::load(&user_config_path(&user, &env), FileKind::User)?;
    let widening = trust::widening_over(&file.text, user_config.as_ref().map(|u| &u.raw));
    if file.raw.backend.as_ref().map(|b| b.get_ref().as_str()) == Some("none") {
        eprintln!(
            "wrapix: note: backend = \"none\" is never taken from a project file, trusted or not; pass --backend none yourself when you mean it"
        );
    }
    if widening.is_empty() {
        println!(
            "{} asks for nothing beyond the default sandbox: no trust is needed",
            file.path.display()
        );
        return Ok(0);
    }
    println!(
        "{} asks for more than the default sandbox:",
        file.path.display()
    );
    for w in &widening {
        println!("  {} = {}", w.key, w.value);
        println!("      {}", w.why);
    }
    let record = Record {
        project: project.clone(),
        sha256: file.sha256.clone(),
        trusted_at: jiff::Timestamp::now().to_string(),
        widens: widening.into_iter().map(|w| w.key).collect(),
    };
    let saved = trust::save(&root, &record).map_err(|e| Failure::from_error(1, e))?;
    println!(
        "trusted: this content (sha256 {}…) of {}; any change to the file needs `wrapix trust` again (record: {})",
        &record.sha256[..16],
        file.path.display(),
        saved.display()
    );
    Ok(0)
}

fn list(root: &Path) -> Result<i32, Failure> {
    let records = trust::list(root).map_err(|e| Failure::from_error(1, e))?;
    if records.is_empty() {
        println!("no trusted projects");
    }
    for (project, r) in records {
        let current = ConfigFile::load_project(&project).ok().flatten();
        let state = match current {
            Some(f) if f.sha256 == r.sha256 => "trusted",
            Some(_) => "changed since trusted (not trusted)",
            None => "wrapix.toml missing",
        };
        println!(
            "{}  {}  {}  ({})",
            escape_controls(&project.display().to_string()),
            escape_controls(&r.trusted_at),
            state,
            escape_controls(&r.widens.join(", "))
        );
    }
    Ok(0)
}
