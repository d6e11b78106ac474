//! The assembled `/etc`, against a fixture host root in a temporary folder.

use std::os::unix::fs::{symlink, MetadataExt, PermissionsExt};

use super::*;

fn ok<T, E: std::fmt::Display>(r: Result<T, E>) -> T {
    r.unwrap_or_else(|e| panic!("{e}"))
}

const NAMES: &[&str] = &[
    "hosts",
    "ssl",
    "alternatives",
    "os-release",
    "localtime",
    "gitconfig",
    "magic",
    "resolv.conf",
    "nsswitch.conf",
];

const PASSWD: &[u8] = b"ada:x:1000:1000:ada:/home/ada:/bin/bash\n";
const GROUP: &[u8] = b"ada:x:1000:\n";

/// A host root: files, folders, links into /usr and elsewhere, a FIFO, an unreadable folder.
fn fixture() -> tempfile::TempDir {
    let t = ok(tempfile::tempdir());
    let r = t.path();
    let etc = r.join("etc");
    for d in [
        "usr/lib",
        "etc/ssl/certs",
        "etc/ssl/private",
        "etc/alternatives",
        "elsewhere",
    ] {
        ok(std::fs::create_dir_all(r.join(d)));
    }
    ok(std::fs::write(etc.join("hosts"), "127.0.0.1 localhost\n"));
    ok(std::fs::write(etc.join("shadow"), "secret\n"));
    ok(std::fs::write(etc.join("ssl/certs/ca.pem"), "CA\n"));
    ok(symlink("/usr/share/ca/x.crt", etc.join("ssl/certs/x.pem")));
    ok(std::fs::write(etc.join("ssl/private/key.pem"), "KEY\n"));
    ok(std::fs::set_permissions(
        etc.join("ssl/private"),
        std::fs::Permissions::from_mode(0o700),
    ));
    ok(symlink(
        "/usr/bin/vim.basic",
        etc.join("alternatives/editor"),
    ));
    ok(std::fs::write(r.join("usr/lib/os-release"), "ID=test\n"));
    ok(symlink("../usr/lib/os-release", etc.join("os-release")));
    // Dangling on the host: left out, as the per-entry binds did.
    ok(symlink(
        "/usr/share/zoneinfo/Nowhere",
        etc.join("localtime"),
    ));
    // A link out of /usr: its target would not be in the sandbox, so it stays a bind.
    ok(std::fs::write(r.join("elsewhere/gitconfig"), "[core]\n"));
    ok(symlink(
        r.join("elsewhere/gitconfig"),
        etc.join("gitconfig"),
    ));
    ok(nix::unistd::mkfifo(
        &etc.join("magic"),
        nix::sys::stat::Mode::from_bits_truncate(0o644),
    ));
    ok(std::fs::write(
        etc.join("resolv.conf"),
        "nameserver 10.0.0.1\n",
    ));
    t
}

fn assemble_in(t: &tempfile::TempDir, build: bool) -> Option<AssembledEtc> {
    ok(assemble(
        t.path(),
        &t.path().join("cache/wrapix/etc"),
        NAMES,
        &[("passwd", PASSWD), ("group", GROUP)],
        build,
    ))
}

#[test]
fn copies_the_entries_and_the_generated_files() {
    let t = fixture();
    let a = assemble_in(&t, true).unwrap_or_else(|| panic!("not built"));
    let d = &a.dir;
    assert_eq!(
        d.parent(),
        Some(t.path().join("cache/wrapix/etc").as_path())
    );
    let mode = |p: &Path| ok(std::fs::symlink_metadata(p)).mode() & 0o7777;
    assert_eq!(mode(&t.path().join("cache/wrapix/etc")), 0o700);
    assert_eq!(mode(d), 0o755);
    let read = |rel: &str| ok(std::fs::read_to_string(d.join(rel)));
    assert_eq!(read("hosts"), "127.0.0.1 localhost\n");
    assert_eq!(read("ssl/certs/ca.pem"), "CA\n");
    assert_eq!(read("passwd").as_bytes(), PASSWD);
    assert_eq!(read("group").as_bytes(), GROUP);
    assert_eq!(mode(&d.join("passwd")), 0o644);
    // Symlinks are copied as symlinks, never followed.
    let link = |rel: &str| ok(std::fs::read_link(d.join(rel)));
    assert_eq!(link("ssl/certs/x.pem"), Path::new("/usr/share/ca/x.crt"));
    assert_eq!(link("alternatives/editor"), Path::new("/usr/bin/vim.basic"));
    assert_eq!(link("os-release"), Path::new("../usr/lib/os-release"));
    // Not copied: what is not listed, what not everyone may read, what is not a regular
    // file, a dangling link.
    for absent in ["shadow", "ssl/private", "magic", "localtime"] {
        assert!(
            std::fs::symlink_metadata(d.join(absent)).is_err(),
            "{absent} copied"
        );
    }
    // Live entries: an empty mount point in the folder, the host's file bound on top.
    assert_eq!(read("resolv.conf"), "");
    assert_eq!(read("gitconfig"), "");
    let etc = t.path().join("etc");
    assert_eq!(
        a.live,
        vec![
            ("gitconfig".into(), etc.join("gitconfig")),
            ("resolv.conf".into(), etc.join("resolv.conf")),
        ]
    );
    // No temporary folder or file is left behind: the folder, and the trees' walk.
    let mut names: Vec<_> = ok(std::fs::read_dir(t.path().join("cache/wrapix/etc")))
        .map(|e| ok(e).file_name())
        .collect();
    names.sort();
    let mut want = vec![
        d.file_name().map(OsStr::to_os_string).unwrap_or_default(),
        OsString::from(TREES),
    ];
    want.sort();
    assert_eq!(names, want);
}

#[test]
fn the_remembered_walk_gives_the_key_a_walk_gives() {
    let t = fixture();
    let etc = t.path().join("etc");
    let trees = t.path().join("cache/wrapix/etc").join(TREES);
    let first = assemble_in(&t, true).unwrap_or_else(|| panic!("not built"));
    let remembered = ok(std::fs::read_to_string(&trees));
    assert!(remembered.contains("ssl/certs/ca.pem"), "{remembered}");
    // Without the file, or with a broken one, the trees are walked: same folder.
    for broken in [
        None,
        Some("not json"),
        Some("{\"format\": \"old\", \"trees\": {}}"),
    ] {
        match broken {
            None => ok(std::fs::remove_file(&trees)),
            Some(text) => ok(std::fs::write(&trees, text)),
        }
        let again = assemble_in(&t, true).unwrap_or_else(|| panic!("not built"));
        assert_eq!(again.dir, first.dir, "{broken:?}");
        assert_eq!(ok(std::fs::read_to_string(&trees)), remembered);
    }
    // A remembered walk that lies about a file deep in a tree is not believed (its lstat
    // differs), and the walk is remembered anew.
    let lie = remembered.replace(" File 3 ", " File 4 ");
    assert_ne!(lie, remembered);
    ok(std::fs::write(&trees, &lie));
    let again = assemble_in(&t, true).unwrap_or_else(|| panic!("not built"));
    assert_eq!(again.dir, first.dir);
    assert_eq!(ok(std::fs::read_to_string(&trees)), remembered);
    // A folder added deep in a tree: its parent's lstat differs, so the tree is walked, and
    // a file later edited in the new folder changes the key again.
    ok(std::fs::create_dir(etc.join("ssl/certs/more")));
    ok(std::fs::write(etc.join("ssl/certs/more/m.pem"), "M\n"));
    let added = assemble_in(&t, true).unwrap_or_else(|| panic!("not built"));
    assert_ne!(added.dir, first.dir);
    ok(std::fs::write(etc.join("ssl/certs/more/m.pem"), "MMMM\n"));
    let edited = assemble_in(&t, true).unwrap_or_else(|| panic!("not built"));
    assert_ne!(edited.dir, added.dir);
    assert_eq!(
        ok(std::fs::read_to_string(
            edited.dir.join("ssl/certs/more/m.pem")
        )),
        "MMMM\n"
    );
}

#[test]
fn reuses_the_folder_until_a_source_changes() {
    let t = fixture();
    let etc = t.path().join("etc");
    let first = assemble_in(&t, true).unwrap_or_else(|| panic!("not built"));
    let ino = ok(std::fs::metadata(&first.dir)).ino();
    let again = assemble_in(&t, true).unwrap_or_else(|| panic!("not built"));
    assert_eq!(again.dir, first.dir);
    assert_eq!(ok(std::fs::metadata(&again.dir)).ino(), ino, "rebuilt");
    drop((first, again));

    // A file added deep in a tree (its folder's mtime changes).
    ok(std::fs::write(etc.join("ssl/certs/new.pem"), "NEW\n"));
    let added = assemble_in(&t, true).unwrap_or_else(|| panic!("not built"));
    assert_ne!(ok(std::fs::metadata(&added.dir)).ino(), ino);
    assert_eq!(
        ok(std::fs::read_to_string(added.dir.join("ssl/certs/new.pem"))),
        "NEW\n"
    );
    drop(added);

    // A file in a tree rewritten in place (same size: only its own mtime changes).
    ok(std::fs::write(etc.join("ssl/certs/ca.pem"), "CB\n"));
    let edited = assemble_in(&t, true).unwrap_or_else(|| panic!("not built"));
    assert_eq!(
        ok(std::fs::read_to_string(edited.dir.join("ssl/certs/ca.pem"))),
        "CB\n"
    );

    // The generated files are part of the key.
    let other = ok(assemble(
        t.path(),
        &t.path().join("cache/wrapix/etc"),
        NAMES,
        &[
            ("passwd", b"bob:x:1001:1001:bob:/home/bob:/bin/sh\n"),
            ("group", GROUP),
        ],
        true,
    ))
    .unwrap_or_else(|| panic!("not built"));
    assert_ne!(other.dir, edited.dir);

    // The live file is not copied: rewriting it changes nothing.
    let before = other.dir.clone();
    drop(other);
    ok(std::fs::write(
        etc.join("resolv.conf"),
        "nameserver 10.9.9.9\n",
    ));
    let again = ok(assemble(
        t.path(),
        &t.path().join("cache/wrapix/etc"),
        NAMES,
        &[
            ("passwd", b"bob:x:1001:1001:bob:/home/bob:/bin/sh\n"),
            ("group", GROUP),
        ],
        true,
    ))
    .unwrap_or_else(|| panic!("not built"));
    assert_eq!(again.dir, before);
}

#[test]
fn old_folders_go_unless_a_run_holds_them() {
    let t = fixture();
    let etc = t.path().join("etc");
    let held = assemble_in(&t, true).unwrap_or_else(|| panic!("not built"));
    ok(std::fs::write(
        etc.join("hosts"),
        "127.0.0.1 localhost wrapix\n",
    ));
    let unheld = assemble_in(&t, true).unwrap_or_else(|| panic!("not built"));
    let unheld_dir = unheld.dir.clone();
    drop(unheld);
    // Still in use by a run: kept.
    assert!(held.dir.join("hosts").exists());
    ok(std::fs::write(
        etc.join("hosts"),
        "127.0.0.1 localhost wrapix2\n",
    ));
    let newest = assemble_in(&t, true).unwrap_or_else(|| panic!("not built"));
    assert!(
        held.dir.join("hosts").exists(),
        "a folder in use was removed"
    );
    assert!(!unheld_dir.exists(), "an unused old folder was kept");
    assert!(newest.dir.exists());
}

#[test]
fn a_dry_run_never_creates_the_cache() {
    let t = fixture();
    assert!(assemble_in(&t, false).is_none());
    assert!(!t.path().join("cache").exists());
    // Once built, a dry run uses it.
    let built = assemble_in(&t, true).unwrap_or_else(|| panic!("not built"));
    let dry = assemble_in(&t, false).unwrap_or_else(|| panic!("not found"));
    assert_eq!(dry.dir, built.dir);
}

#[test]
fn an_unwritable_cache_is_an_error_for_the_caller_to_fall_back_on() {
    let t = fixture();
    ok(std::fs::write(
        t.path().join("cache"),
        "a file, not a folder",
    ));
    let r = assemble(
        t.path(),
        &t.path().join("cache/wrapix/etc"),
        NAMES,
        &[("passwd", PASSWD)],
        true,
    );
    assert!(r.is_err());
}

#[test]
fn links_into_usr_are_told_apart() {
    for (t, into) in [
        ("/usr/share/zoneinfo/UTC", true),
        ("../usr/lib/os-release", true),
        ("../../usr/x", true),
        ("/run/systemd/resolve/stub-resolv.conf", false),
        ("../run/x", false),
        ("/usr/../etc/x", false),
        ("/usrx", false),
        ("hosts.real", false),
    ] {
        assert_eq!(leads_into_usr(Path::new(t)), into, "{t}");
    }
}
