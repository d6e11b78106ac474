//! `profile`, `[profiles.NAME]`, top-level `packages` and `[resources]`.

use std::collections::BTreeMap;

use wrapix_image::profile::{self, ProfileDef, ResolveError};
use wrapix_image::Package;

use crate::error::{Location, SpecError};
use crate::layer::{Layers, Origin};
use crate::spec::{Profile, Resources};
use crate::types::EnvName;

/// A user profile with where it was defined.
pub struct UserProfile {
    pub def: ProfileDef,
    pub location: Location,
    pub extends_location: Option<Location>,
}

fn parse_packages(
    file: &crate::layer::ConfigFile,
    key: &str,
    list: &toml::Spanned<Vec<toml::Spanned<String>>>,
) -> Result<Vec<Package>, SpecError> {
    list.get_ref()
        .iter()
        .map(|p| Package::parse(p.get_ref()).map_err(|b| SpecError::at(file.at(p.span()), key, b)))
        .collect()
}

/// Every `[profiles.NAME]` of both config files (the project's replaces the user's of the
/// same name).
pub fn user_profiles(layers: &Layers) -> Result<BTreeMap<String, UserProfile>, SpecError> {
    let mut out = BTreeMap::new();
    for file in layers.files() {
        let Some(profiles) = &file.raw.profiles else {
            continue;
        };
        for (name, raw) in profiles {
            let location = file.at(raw.span());
            let key = format!("profiles.{name}");
            let valid = !name.is_empty()
                && name.len() <= 64
                && name.starts_with(|c: char| c.is_ascii_lowercase())
                && name
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
            if !valid {
                return Err(SpecError::invalid(
                    location,
                    &key,
                    format!("profile name {name:?} is not a plain name"),
                    "use lowercase letters, digits, `-` and `_`, starting with a letter",
                ));
            }
            if profile::is_builtin(name) {
                return Err(SpecError::invalid(
                    location,
                    &key,
                    format!("{name:?} is a built-in profile and cannot be redefined"),
                    format!("give yours another name with extends = \"{name}\""),
                ));
            }
            let raw = raw.get_ref();
            let packages = match &raw.packages {
                Some(list) => parse_packages(file, &format!("{key}.packages"), list)?,
                None => Vec::new(),
            };
            let mut env = BTreeMap::new();
            for (k, v) in raw.env.iter().flatten() {
                EnvName::parse(k)
                    .map_err(|e| SpecError::at(file.at(v.span()), format!("{key}.env.{k}"), e))?;
                env.insert(k.clone(), v.get_ref().clone());
            }
            out.insert(
                name.clone(),
                UserProfile {
                    def: ProfileDef {
                        extends: raw.extends.as_ref().map(|e| e.get_ref().clone()),
                        packages,
                        env,
                        description: format!("defined in {}", location),
                    },
                    location,
                    extends_location: raw.extends.as_ref().map(|e| file.at(e.span())),
                },
            );
        }
    }
    Ok(out)
}

/// Top-level `packages` of both files, in order (they add up).
fn extra_packages(
    layers: &Layers,
    origins: &mut BTreeMap<&'static str, Origin>,
) -> Result<Option<(Vec<Package>, Location)>, SpecError> {
    let mut out: Option<(Vec<Package>, Location)> = None;
    for file in layers.files() {
        if let Some(list) = &file.raw.packages {
            let parsed = parse_packages(file, "packages", list)?;
            origins.insert("packages", file.origin());
            let loc = file.at(list.span());
            match &mut out {
                Some((v, l)) => {
                    v.extend(parsed);
                    *l = loc;
                }
                None => out = Some((parsed, loc)),
            }
        }
    }
    Ok(out)
}

/// The selected profile, resolved, with the config's extra packages.
pub fn resolve(
    layers: &Layers,
    selected: Option<(&str, Location)>,
    origins: &mut BTreeMap<&'static str, Origin>,
) -> Result<Profile, SpecError> {
    let users = user_profiles(layers)?;
    let defs: BTreeMap<String, ProfileDef> = users
        .iter()
        .map(|(k, v)| (k.clone(), v.def.clone()))
        .collect();
    let extra = extra_packages(layers, origins)?;
    let (name, location) = selected.unwrap_or((profile::HOST, Location::Flag("(default)".into())));
    let spec = profile::resolve(name, &defs).map_err(|e| match e {
        ResolveError::Unknown {
            name: missing,
            known,
        } => {
            // Point at the `extends` that names the missing profile, if that is where it is.
            let loc = users
                .values()
                .find(|u| u.def.extends.as_deref() == Some(missing.as_str()))
                .and_then(|u| u.extends_location.clone())
                .filter(|_| missing != name)
                .unwrap_or_else(|| location.clone());
            SpecError::invalid(
                loc,
                if missing == name {
                    "profile"
                } else {
                    "extends"
                },
                format!("unknown profile {missing:?}"),
                format!(
                    "use one of: {}, or define it under [profiles.{missing}]",
                    known.join(", ")
                ),
            )
        }
        ResolveError::Cycle { chain } => {
            let loc = users
                .get(&chain[0])
                .and_then(|u| u.extends_location.clone())
                .unwrap_or_else(|| location.clone());
            SpecError::invalid(
                loc,
                format!("profiles.{}.extends", chain[0]),
                format!(
                    "profiles extend each other in a cycle: {}",
                    chain.join(" -> ")
                ),
                "remove one of the `extends` so that the chain ends at a built-in profile",
            )
        }
        ResolveError::ExtendsHost { name: from } => SpecError::invalid(
            users
                .get(&from)
                .and_then(|u| u.extends_location.clone())
                .unwrap_or_else(|| location.clone()),
            format!("profiles.{from}.extends"),
            "\"host\" is not an image and cannot be extended",
            "extend \"base\", \"rust\" or \"python\" instead",
        ),
    })?;
    match spec {
        None => match extra {
            Some((_, loc)) => Err(SpecError::invalid(
                loc,
                "packages",
                "extra packages need an image, and the profile is \"host\"",
                "set profile = \"base\" (or another image profile), or remove packages",
            )),
            None => Ok(Profile::Host),
        },
        Some(img) => Ok(Profile::Image(
            img.with_packages(extra.map(|(v, _)| v).unwrap_or_default()),
        )),
    }
}

pub fn resources(
    layers: &Layers,
    origins: &mut BTreeMap<&'static str, Origin>,
) -> Result<Resources, SpecError> {
    let mut out = Resources::default();
    for file in layers.files() {
        let Some(r) = &file.raw.resources else {
            continue;
        };
        let check = |v: &toml::Spanned<i64>, key: &str, max: i64| -> Result<u64, SpecError> {
            let n = *v.get_ref();
            if n < 1 || n > max {
                return Err(SpecError::invalid(
                    file.at(v.span()),
                    format!("resources.{key}"),
                    format!("{n} is out of range"),
                    format!("use a whole number from 1 to {max}"),
                ));
            }
            Ok(n as u64)
        };
        if let Some(v) = &r.cpus {
            out.cpus = Some(check(v, "cpus", 1024)? as u32);
        }
        if let Some(v) = &r.memory_mb {
            out.memory_mb = Some(check(v, "memory_mb", 1 << 30)?);
        }
        if let Some(v) = &r.pids {
            out.pids = Some(check(v, "pids", 1 << 22)?);
        }
        origins.insert("resources", file.origin());
    }
    Ok(out)
}
