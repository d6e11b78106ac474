//! Escape tests: files, processes, capabilities, mounts, `.git`, environment, seccomp.
//! Each asserts what a broken sandbox would show, next to a host-side control.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::process::Stdio;
use std::time::Duration;

use super::harness::{
    host_procs_with, not_applicable, skip, unique, wait_for, Backend, Case, Running, SECRET,
};

/// `ls -A DIR` on the host: what the sandbox's DIR shows when it is the image's (podman), or
/// nothing (the `host` profile has no such folder).
fn image_listing(c: &Case, dir: &str) -> Vec<String> {
    let Some(rootfs) = c.rootfs else {
        return Vec::new();
    };
    let mut names: Vec<String> = std::fs::read_dir(rootfs.join(dir))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn cannot_read_host_files_outside_the_project() {
    let Some(c) = Case::escape() else { return };
    let secret = c.home.join("secret.txt");
    let marker = std::path::PathBuf::from(format!("/tmp/{}", unique("wrapix-tmp-marker")));
    std::fs::write(&marker, SECRET).unwrap();
    std::fs::set_permissions(&marker, std::fs::Permissions::from_mode(0o644)).unwrap();
    c.write(&c.project.join("visible.txt"), "in-project");
    // Control: on the host, the test user can read both files.
    let host = c.host_as_user(
        "/bin/cat",
        &[&secret.to_string_lossy(), &marker.to_string_lossy()],
    );
    assert_eq!(host.ok(), format!("{SECRET}{SECRET}"));

    let script = format!(
        "cat /workspace/visible.txt; echo; \
         for f in '{}' '{}'; do cat \"$f\" 2>/dev/null && echo \"READ $f\"; done; \
         ls -A /root 2>/dev/null | sed 's/^/ROOT /'; \
         ls -A /var/lib 2>/dev/null | sed 's/^/VARLIB /'; \
         ls -A /home | sed 's/^/HOMEDIR /'; echo \"MYHOME $HOME\"",
        secret.display(),
        marker.display()
    );
    let out = c.sh(&script);
    let _ = std::fs::remove_file(&marker);
    let stdout = out.ok();
    assert!(
        stdout.starts_with("in-project\n"),
        "the project is not visible:\n{out}"
    );
    assert!(
        !stdout.contains(SECRET) && !stdout.contains("READ "),
        "a host file was read:\n{out}"
    );
    // The host has neither (bwrap, `host` profile) or the image's own (podman).
    for (prefix, dir) in [("ROOT ", "root"), ("VARLIB ", "var/lib")] {
        let mut seen: Vec<String> = stdout
            .lines()
            .filter_map(|l| l.strip_prefix(prefix).map(str::to_owned))
            .collect();
        seen.sort();
        if dir == "root" && c.env.uid == 0 {
            // The root pass: /root is the sandbox's own private home; none of the host's
            // /root is there (only what wrapix generates, such as .gitconfig).
            let host: Vec<String> = std::fs::read_dir("/root")
                .map(|d| {
                    d.flatten()
                        .map(|e| e.file_name().to_string_lossy().into_owned())
                        .collect()
                })
                .unwrap_or_default();
            let leaked: Vec<&String> = seen
                .iter()
                .filter(|n| host.contains(n) && n.as_str() != ".gitconfig")
                .collect();
            assert!(
                leaked.is_empty(),
                "the host's /root shows: {leaked:?}\n{out}"
            );
            continue;
        }
        assert_eq!(
            seen,
            image_listing(&c, dir),
            "/{dir} is not the sandbox's own:\n{out}"
        );
    }
    let homes: Vec<&str> = stdout
        .lines()
        .filter_map(|l| l.strip_prefix("HOMEDIR "))
        .collect();
    let my_home = stdout.lines().find_map(|l| l.strip_prefix("MYHOME /home/"));
    // The sandbox home only (none in the root pass, whose home is /root).
    assert_eq!(
        homes,
        my_home.into_iter().collect::<Vec<_>>(),
        "/home shows more than the sandbox home:\n{out}"
    );
}

#[test]
fn cannot_see_host_processes() {
    let Some(c) = Case::escape() else { return };
    let marker = unique("wrapix-hostproc");
    let mut sleeper = c
        .env
        .as_user("/bin/bash", &["-c", &format!("exec -a {marker} sleep 300")]);
    sleeper.stdin(Stdio::null());
    let sleeper = Running::start(sleeper).unwrap();
    // Control: the host sees it (it runs as the same user as the sandbox).
    assert!(
        wait_for(Duration::from_secs(10), || !host_procs_with(&marker)
            .is_empty()),
        "host sleep not seen"
    );

    let out = c.sh(
        "for p in /proc/[0-9]*; do tr '\\0' ' ' < $p/cmdline 2>/dev/null; echo; done; \
         echo COUNT $(ls -d /proc/[0-9]* | wc -l)",
    );
    drop(sleeper);
    let stdout = out.ok();
    assert!(
        !stdout.contains(&marker),
        "a host process is visible inside:\n{out}"
    );
    let count: usize = stdout
        .lines()
        .find_map(|l| l.strip_prefix("COUNT "))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(usize::MAX);
    // In the qemu VM, /proc also lists the guest kernel's own threads (no command line):
    // processes of the guest, not of the host. What runs a program is counted.
    let count = if c.backend == Backend::Qemu {
        let programs = stdout
            .lines()
            .filter(|l| !l.trim().is_empty() && !l.starts_with("COUNT "))
            .count();
        assert!(
            count < 200 && programs <= count,
            "{count} processes visible inside:\n{out}"
        );
        programs
    } else {
        count
    };
    assert!(count < 10, "{count} processes visible inside:\n{out}");
}

#[test]
fn holds_no_capability_and_has_seccomp() {
    let Some(c) = Case::escape() else { return };
    let out = c.sh("cat /proc/self/status");
    let status = out.ok();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name).map(|v| v.trim().to_owned()))
            .unwrap_or_else(|| panic!("no {name} in:\n{status}"))
    };
    for cap in ["CapEff:", "CapPrm:", "CapBnd:", "CapAmb:", "CapInh:"] {
        assert_eq!(
            field(cap),
            "0000000000000000",
            "{cap} is not empty:\n{status}"
        );
    }
    assert_eq!(field("NoNewPrivs:"), "1");
    assert_eq!(field("Seccomp:"), "2");
}

#[test]
fn read_only_mount_cannot_be_written_and_rw_mount_is_owned_by_the_user() {
    let Some(c) = Case::escape() else { return };
    let data = c.root.join("data");
    c.write(&data.join("f.txt"), "original");
    // Control: on the host the user may write there.
    let probe = format!(
        "test -w '{}' && test -w '{}'",
        data.display(),
        data.join("f.txt").display()
    );
    c.host_as_user("/bin/sh", &["-c", &probe]).ok();

    let attack = "cat /data/f.txt; echo; echo changed > /data/f.txt && echo WROTE; \
                  touch /data/new && echo CREATED; rm -f /data/f.txt && echo REMOVED; \
                  chmod 777 /data/f.txt && echo CHMODDED; true";
    for spec in [
        format!("{}:/data:ro", data.display()),
        format!("{}:/data", data.display()),
    ] {
        let out = c.sh_with(&["--mount", &spec], attack);
        let stdout = out.ok();
        assert!(
            stdout.starts_with("original"),
            "{spec}: mount not visible:\n{out}"
        );
        for bad in ["WROTE", "CREATED", "REMOVED", "CHMODDED"] {
            assert!(
                !stdout.contains(bad),
                "{spec}: {bad} on a read-only mount:\n{out}"
            );
        }
        assert_eq!(
            std::fs::read_to_string(data.join("f.txt")).unwrap(),
            "original"
        );
        assert!(!data.join("new").exists());
        let mode = std::fs::metadata(data.join("f.txt"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_ne!(mode, 0o777);
    }

    let rw = format!("{}:/data:rw", data.display());
    c.sh_with(&["--mount", &rw], "echo hello > /data/made").ok();
    let made = std::fs::metadata(data.join("made")).unwrap();
    assert_eq!(
        made.uid(),
        c.env.uid,
        "file from an rw mount has the wrong owner"
    );
    assert_eq!(
        std::fs::read_to_string(data.join("made")).unwrap(),
        "hello\n"
    );
}

#[test]
fn git_hooks_and_config_are_read_only_and_git_is_pinned() {
    let Some(c) = Case::escape() else { return };
    c.host_as_user("git", &["init", "-q"]).ok();
    let git = c.project.join(".git");
    let config_before = std::fs::read_to_string(git.join("config")).unwrap();
    let hooks_before = Case::listing(&git.join("hooks"));

    let out = c.sh(
        "git -c user.name=t -c user.email=t@e commit -q --allow-empty -m x && echo COMMITTED; \
         echo '#!/bin/sh' > .git/hooks/pre-commit && echo HOOK-WRITTEN; \
         ln -s /bin/true .git/hooks/post-commit && echo HOOK-LINKED; \
         rm -f .git/hooks/*.sample && echo HOOKS-REMOVED; \
         echo '[core]' >> .git/config && echo CONFIG-WRITTEN; \
         git config core.hooksPath /workspace/h 2>/dev/null && echo GITCONFIG-SET; \
         mv .git/hooks .git/hooks2 && echo HOOKS-MOVED; \
         mv .git/config .git/config2 && echo CONFIG-MOVED; \
         mv .git .git2 && echo GIT-MOVED; \
         true",
    );
    let stdout = out.ok();
    assert!(
        stdout.contains("COMMITTED"),
        "a commit inside failed:\n{out}"
    );
    for bad in [
        "HOOK-WRITTEN",
        "HOOK-LINKED",
        "HOOKS-REMOVED",
        "CONFIG-WRITTEN",
        "GITCONFIG-SET",
        "HOOKS-MOVED",
        "CONFIG-MOVED",
        "GIT-MOVED",
    ] {
        assert!(!stdout.contains(bad), "{bad}:\n{out}");
    }
    let log = c.host_as_user("git", &["log", "--format=%s"]);
    assert_eq!(log.ok(), "x\n", "the commit is not on the host");

    // Last, as it empties the rest of .git: rm -rf fails on the pinned folders.
    let rm = c.sh("rm -rf .git 2>/dev/null; echo rc=$?");
    assert!(!rm.ok().contains("rc=0"), "rm -rf .git succeeded:\n{rm}");
    assert!(git.is_dir() && !c.project.join(".git2").exists());
    assert_eq!(
        std::fs::read_to_string(git.join("config")).unwrap(),
        config_before
    );
    assert_eq!(
        Case::listing(&git.join("hooks")),
        hooks_before,
        "a hook changed on the host"
    );
}

#[test]
fn host_environment_does_not_leak() {
    let Some(c) = Case::escape() else { return };
    let c = c.host_env("WRAPIX_TEST_SECRET", "s3cr3t-value");
    let out = c.sh_with(&["-e", "FOO=bar", "-e", "EQ=B=C"], "env");
    let stdout = out.ok();
    assert!(
        !stdout.contains("s3cr3t-value") && !stdout.contains("WRAPIX_TEST_SECRET"),
        "leak:\n{out}"
    );
    let home = c.home.to_string_lossy();
    assert!(
        !stdout.contains(home.as_ref()),
        "the host home path leaks:\n{out}"
    );
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(lines.contains(&"FOO=bar"), "{out}");
    assert!(
        lines.contains(&"EQ=B=C"),
        "-e splits at the first `=`:\n{out}"
    );
    let sandbox_home = format!("HOME={}", c.sandbox_home());
    assert!(
        lines.contains(&sandbox_home.as_str()),
        "expected {sandbox_home}:\n{out}"
    );
    let path = lines
        .iter()
        .find_map(|l| l.strip_prefix("PATH="))
        .unwrap_or("");
    assert!(path.split(':').any(|d| d == "/usr/bin"), "PATH={path}");
}

#[test]
fn seccomp_blocks_user_namespaces_and_keyrings() {
    let Some(c) = Case::escape() else { return };
    let keyctl = "$r = syscall(250, 0, 0); print \"keyctl=$r err=$!\\n\"";
    // Controls: both work (or fail differently) on the host for the same user.
    c.host_as_user("unshare", &["-U", "true"]).ok();
    let out = c.sh("unshare -U true 2>&1 && echo UNSHARED; echo done");
    let stdout = out.ok();
    assert!(
        stdout.contains("done") && !stdout.contains("UNSHARED"),
        "unshare -U worked:\n{out}"
    );
    if !cfg!(target_arch = "x86_64") {
        skip("the keyctl check uses the x86_64 syscall number");
        return;
    }
    let host = c.host_as_user("perl", &["-e", keyctl]);
    assert!(
        host.ok().contains("keyctl=-1 err=Invalid argument"),
        "host control:\n{host}"
    );
    let out = c.run(&["run", "--", "perl", "-e", keyctl]);
    assert_eq!(
        out.ok(),
        "keyctl=-1 err=Operation not permitted\n",
        "keyctl not blocked:\n{out}"
    );
}

#[test]
fn runs_leave_the_image_unchanged() {
    let Some(c) = Case::escape() else { return };
    let Some(rootfs) = c.rootfs else {
        not_applicable("the host profile runs from no image (the podman pass checks its image)");
        return;
    };
    // Mount points the runtime must create (the home, a new destination) and files it adds
    // (/etc/mtab) must not land in the shared cache. Other tests use the image at the same
    // time, so this compares the folders such writes touch, with their mtimes.
    let state = || {
        ["", "home", "etc"]
            .map(|d| {
                let dir = rootfs.join(d);
                let mtime = std::fs::metadata(&dir).unwrap().mtime();
                (d, mtime, image_listing(&c, d))
            })
            .to_vec()
    };
    let before = state();
    let data = c.root.join("data");
    c.write(&data.join("f.txt"), "x");
    let dest = format!("/{}", unique("wrapix-newdir"));
    let spec = format!("{}:{dest}/deeper:ro", data.display());
    // The destination reaches the script as `$0`.
    let out = c.run(&[
        "run",
        "--mount",
        &spec,
        "--",
        "/bin/sh",
        "-c",
        "cat \"$0\"/deeper/f.txt; touch /usr/x /etc/x /x 2>/dev/null && echo WROTE; true",
        &dest,
    ]);
    assert_eq!(out.ok(), "x", "{out}");
    assert!(
        !rootfs.join(dest.trim_start_matches('/')).exists(),
        "the mount point {dest} was created in the cached image"
    );
    assert_eq!(before, state(), "a run changed the cached image");
}

/// A file descriptor wrapix inherits (from a leaky parent: an IDE, a terminal, a script) does
/// not reach the sandbox: an open directory there would be a way around every mount.
#[test]
fn inherited_fds_do_not_reach_the_sandbox() {
    let Some(c) = Case::escape() else { return };
    let bin = c.env.bin.to_string_lossy().into_owned();
    let home = c.home.to_string_lossy().into_owned();
    let inside = "echo fds: $(ls /proc/self/fd); cat /proc/self/fd/7/secret.txt /proc/self/fd/50/secret.txt 2>&1; true";
    // The user's shell opens fds 7 and 50 on the home folder (no close-on-exec; wrapix closes
    // the first, in the range of its own fd numbers, and marks the second) and execs wrapix.
    // Control: through fd 50 it reads the secret itself.
    let wrapper =
        "exec 7< \"$0\" 50< \"$0\" || exit 9; cat /proc/self/fd/50/secret.txt; echo; exec \"$@\"";
    let args = [
        "-c",
        wrapper,
        &home,
        &bin,
        "run",
        "--network",
        "none",
        "--",
        "/bin/sh",
        "-c",
        inside,
    ];
    // bash: dash cannot redirect fds above 9.
    let mut cmd = c.env.as_user("/bin/bash", &args);
    c.clean_env(&mut cmd);
    let out = super::proc::output(cmd, &c.project, None).unwrap();
    let stdout = out.ok();
    let mut lines = stdout.lines();
    assert_eq!(
        lines.next(),
        Some(SECRET),
        "control: fd 50 was not open:\n{out}"
    );
    let fds = lines.next().unwrap_or_default();
    // 0-2, and the fd `ls` reads /proc/self/fd with.
    assert_eq!(fds, "fds: 0 1 2 3", "the sandbox holds other fds:\n{out}");
    assert!(
        !stdout[SECRET.len()..].contains(SECRET),
        "read through an inherited fd:\n{out}"
    );
}
