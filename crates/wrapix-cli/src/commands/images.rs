//! `wrapix image …`, `wrapix profile …`, and the image a run needs.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::io::IsTerminal;
use std::path::PathBuf;

use wrapix_image::build::{self, BuildOptions, Outcome};
use wrapix_image::progress::Progress;
use wrapix_image::{ImageError, ImageSpec, Store};
use wrapix_sandbox::backend::find_program;
use wrapix_spec::{Profile, Spec};

use super::Failure;
use crate::cli::{ImageCmd, ProfileCmd, SandboxArgs};
use crate::context::{host_env, host_user, load_layers, load_spec};
use crate::{EXIT_NO_SANDBOX, EXIT_USAGE};

impl From<ImageError> for Failure {
    fn from(e: ImageError) -> Self {
        let code = match e {
            ImageError::NotFound { .. } => EXIT_USAGE,
            _ => EXIT_NO_SANDBOX,
        };
        let message = match e.fix() {
            Some(fix) if !fix.is_empty() => format!("{e} (fix: {fix})"),
            _ => e.to_string(),
        };
        Failure::new(code, message).caused_by(e)
    }
}

fn store(env: &BTreeMap<String, String>) -> Store {
    Store::from_env(env, &host_user(env).home)
}

/// Where images are built: `WRAPIX_IMAGE_BUILDER` is `host` (mmdebstrap here; the default on
/// Linux) or `container` (mmdebstrap in a throw-away Linux container started by Apple's
/// `container` CLI; the default on macOS, which has no mmdebstrap). `WRAPIX_BUILD_IMAGE`
/// names that container's image.
pub(crate) fn options(env: &BTreeMap<String, String>) -> Result<BuildOptions, Failure> {
    let path = env.get("PATH").map(String::as_str);
    let ca = PathBuf::from("/etc/ssl/certs/ca-certificates.crt");
    let default = if cfg!(target_os = "macos") {
        "container"
    } else {
        "host"
    };
    let in_container = match env
        .get("WRAPIX_IMAGE_BUILDER")
        .map(String::as_str)
        .filter(|v| !v.is_empty())
        .unwrap_or(default)
    {
        "host" => None,
        "container" => Some(build::InContainer {
            cli: find_program("container", path).unwrap_or_else(|| PathBuf::from("container")),
            image: env
                .get("WRAPIX_BUILD_IMAGE")
                .filter(|i| !i.is_empty())
                .cloned()
                .unwrap_or_else(|| build::DEFAULT_BUILD_IMAGE.to_owned()),
        }),
        other => {
            return Err(Failure::usage(format!(
                "WRAPIX_IMAGE_BUILDER={other:?} is not a builder (fix: \"host\" to build with this host's mmdebstrap, \"container\" to build in a Linux container started by Apple's container CLI, or unset it)"
            )))
        }
    };
    Ok(BuildOptions {
        mirror: build::mirror(env),
        mmdebstrap: find_program("mmdebstrap", path),
        in_container,
        npm: find_program("npm", path),
        ca_bundle: ca.is_file().then_some(ca),
        as_root: nix::unistd::geteuid().is_root(),
        tmp: std::env::temp_dir(),
    })
}

fn progress(label: String) -> Progress {
    Progress::new(label, std::io::stderr().is_terminal())
}

fn image_spec(spec: &Spec) -> Result<&ImageSpec, Failure> {
    match &spec.profile {
        Profile::Image(img) => Ok(img),
        Profile::Host => Err(Failure::usage(
            "the profile is \"host\", which is not an image (fix: pass --profile base, or set profile in wrapix.toml)",
        )),
    }
}

/// Before a run: the image for the spec's profile, built if missing or damaged. When it is
/// cached this is one `stat` and a small JSON read.
/// Whether the image of the profile `args` select is built and ready (nothing is built).
pub fn image_ready(args: &SandboxArgs, env: &BTreeMap<String, String>) -> Result<(), String> {
    let spec = load_spec(args, env).map_err(|f| f.message)?;
    let Profile::Image(img) = &spec.profile else {
        return Err("the profile is not an image profile".into());
    };
    let hash = img.hash(&build::mirror(env));
    match store(env).lookup(&hash) {
        wrapix_image::store::Lookup::Ready(_) => Ok(()),
        _ => Err(format!("the {} image is not built", img.profile)),
    }
}

pub fn ensure_for_run(spec: &Spec, env: &BTreeMap<String, String>) -> Result<(), Failure> {
    let Profile::Image(img) = &spec.profile else {
        return Ok(());
    };
    let store = store(env);
    let opts = options(env)?;
    let hash = img.hash(&opts.mirror);
    if let wrapix_image::store::Lookup::Ready(_) = store.lookup(&hash) {
        return Ok(());
    }
    let p = progress(format!("building image {} ({hash})", img.profile));
    let (_, outcome) = build::ensure(&store, img, &opts, false, &p)?;
    if let Outcome::Built {
        replaced_corrupted: Some(why),
    } = outcome
    {
        eprintln!("wrapix: the cached image {hash} was corrupted ({why}); it was rebuilt");
    }
    p.finish("ready");
    Ok(())
}

/// The `wrapix builder` image (sshd, Nix), built on first use.
pub fn ensure_builder_image(
    env: &BTreeMap<String, String>,
) -> Result<wrapix_image::Image, Failure> {
    let img = wrapix_image::profile::builder_image();
    let store = store(env);
    let opts = options(env)?;
    let hash = img.hash(&opts.mirror);
    if let wrapix_image::store::Lookup::Ready(image) = store.lookup(&hash) {
        return Ok(image);
    }
    let p = progress(format!("building the builder image ({hash})"));
    let (image, _) = build::ensure(&store, &img, &opts, false, &p)?;
    p.finish("ready");
    Ok(image)
}

pub fn image(cmd: ImageCmd) -> Result<i32, Failure> {
    let env = host_env();
    let store = store(&env);
    match cmd {
        ImageCmd::Build { sandbox } => {
            let spec = load_spec(&sandbox, &env)?;
            let img = image_spec(&spec)?;
            let opts = options(&env)?;
            let p = progress(format!("image {}", img.profile));
            let (image, outcome) = build::ensure(&store, img, &opts, true, &p)?;
            p.finish("ready");
            match outcome {
                Outcome::Cached => eprintln!(
                    "wrapix: image {} is up to date and every file matches its manifest",
                    image.meta.hash
                ),
                Outcome::Built { replaced_corrupted } => {
                    if let Some(why) = replaced_corrupted {
                        eprintln!("wrapix: the cached image was corrupted ({why}); rebuilt");
                    }
                    eprintln!(
                        "wrapix: built image {} in {:.1} s",
                        image.meta.hash,
                        image.meta.build_ms as f64 / 1000.0
                    );
                }
            }
            println!("{}", image.dir.display());
            Ok(0)
        }
        ImageCmd::List => {
            let (images, bad) = store.list()?;
            println!(
                "{:<34} {:<12} {:>9} {:>8}  PACKAGES",
                "HASH", "PROFILE", "SIZE", "FILES"
            );
            for i in &images {
                println!(
                    "{:<34} {:<12} {:>7}MB {:>8}  {}",
                    i.meta.hash,
                    i.meta.spec.profile,
                    i.meta.bytes / 1_000_000,
                    i.meta.entries,
                    i.meta.spec.packages.len()
                );
            }
            for b in &bad {
                println!("{b:<34} (corrupted: `wrapix image rm {b}` or `wrapix image gc`)");
            }
            eprintln!("wrapix: images live in {}", store.root.display());
            Ok(0)
        }
        ImageCmd::Rm { hashes } => {
            let (images, bad) = store.list()?;
            let names: Vec<String> = images
                .iter()
                .map(|i| i.meta.hash.clone())
                .chain(bad)
                .collect();
            for h in &hashes {
                let matches: Vec<&String> =
                    names.iter().filter(|n| n.starts_with(h.as_str())).collect();
                match matches.as_slice() {
                    [one] => {
                        let _lock = store.lock(one)?;
                        store.remove(one)?;
                        eprintln!("wrapix: removed image {one}");
                    }
                    [] => {
                        return Err(ImageError::NotFound {
                            what: format!("matches {h:?} (see `wrapix image list`)"),
                        }
                        .into())
                    }
                    _ => {
                        return Err(Failure::usage(format!(
                            "{h:?} matches several images (fix: give more of the hash)"
                        )))
                    }
                }
            }
            Ok(0)
        }
        ImageCmd::Gc { sandbox, all } => {
            let keep = if all {
                None
            } else {
                load_spec(&sandbox, &env)
                    .ok()
                    .and_then(|s| match &s.profile {
                        Profile::Image(img) => Some(img.hash(&build::mirror(&env))),
                        Profile::Host => None,
                    })
            };
            let (images, bad) = store.list()?;
            let mut freed = 0u64;
            for name in images.iter().map(|i| i.meta.hash.clone()).chain(bad) {
                if Some(&name) == keep.as_ref() {
                    continue;
                }
                let _lock = store.lock(&name)?;
                freed += images
                    .iter()
                    .find(|i| i.meta.hash == name)
                    .map(|i| i.meta.bytes)
                    .unwrap_or(0);
                store.remove(&name)?;
                eprintln!("wrapix: removed image {name}");
            }
            let left = store.clean_leftovers()?;
            eprintln!(
                "wrapix: freed about {} MB; removed {} leftover build folders",
                freed / 1_000_000,
                left.len()
            );
            Ok(0)
        }
        ImageCmd::Export { sandbox, output } => {
            let spec = load_spec(&sandbox, &env)?;
            let img = image_spec(&spec)?;
            let opts = options(&env)?;
            let p = progress(format!("image {}", img.profile));
            let (image, _) = build::ensure(&store, img, &opts, false, &p)?;
            p.step("writing the OCI archive");
            let reference = wrapix_image::oci::export(&image, &output)?;
            p.finish("exported");
            eprintln!(
                "wrapix: wrote {} ({reference}); load it with `podman load -i {}`",
                output.display(),
                output.display()
            );
            Ok(0)
        }
    }
}

pub fn profile(cmd: ProfileCmd) -> Result<i32, Failure> {
    let env = host_env();
    match cmd {
        ProfileCmd::List { sandbox } => {
            let layers = load_layers(&sandbox, &env)?;
            let users = wrapix_spec::validate::user_profiles(&layers)?;
            println!("{:<12} DESCRIPTION", "PROFILE");
            println!(
                "{:<12} the host's system folders, read-only (no image)",
                "host"
            );
            for name in wrapix_image::profile::builtin_names().into_iter().skip(1) {
                let d = wrapix_image::profile::builtin(name)
                    .map(|d| d.description)
                    .unwrap_or_default();
                println!("{name:<12} {d}");
            }
            for (name, u) in &users {
                let ext = u.def.extends.as_deref().unwrap_or("-");
                println!("{name:<12} extends {ext} ({})", u.location);
            }
            Ok(0)
        }
        ProfileCmd::Show { name, sandbox } => {
            let args = SandboxArgs {
                profile: Some(name),
                ..sandbox
            };
            let spec = load_spec(&args, &env)?;
            match &spec.profile {
                Profile::Host => println!(
                    "profile  host: the host's /usr, merged-usr links and selected /etc files, read-only"
                ),
                Profile::Image(img) => {
                    let hash = img.hash(&build::mirror(&env));
                    println!("profile  {}", img.profile);
                    println!("image    {hash} ({})", store(&env).dir(&hash).display());
                    println!("debian   {}", img.debs().join(" "));
                    println!("npm      {}", img.npms().join(" "));
                    println!("pip      {}", img.pips().join(" "));
                    let env: Vec<String> =
                        img.env.iter().map(|(k, v)| format!("{k}={v}")).collect();
                    println!("env      {}", env.join(" "));
                }
            }
            Ok(0)
        }
    }
}

/// `__exec-info FD -- PROGRAM ARGS`: writes this PID (which becomes PROGRAM's) on FD for the
/// executor, which forwards signals to it; podman passes them on to the container's init.
pub fn exec_info(fd: i32, command: &[OsString]) -> Result<i32, Failure> {
    use std::io::Write;
    use std::os::fd::{FromRawFd, OwnedFd};
    use std::os::unix::process::CommandExt;
    if fd < 3 || nix::fcntl::fcntl(fd, nix::fcntl::FcntlArg::F_GETFD).is_err() {
        return Err(Failure::usage("__exec-info needs an open fd of 3 or more"));
    }
    // SAFETY: the executor mapped a pipe to `fd` for this process (checked open above) and
    // nothing else in this process uses it.
    #[allow(unsafe_code)]
    let owned = unsafe { OwnedFd::from_raw_fd(fd) };
    let mut f = std::fs::File::from(owned);
    let _ = writeln!(f, "{{\"child-pid\": {}}}", std::process::id());
    drop(f);
    let err = std::process::Command::new(&command[0])
        .args(&command[1..])
        .exec();
    Err(Failure::new(
        EXIT_NO_SANDBOX,
        format!("cannot run {}: {err}", command[0].to_string_lossy()),
    )
    .caused_by(err))
}
