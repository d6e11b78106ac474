use std::os::unix::fs::{symlink, PermissionsExt};

use super::*;

fn setup() -> (tempfile::TempDir, Dir) {
    let t = tempfile::tempdir().unwrap();
    let d = Dir::open(t.path()).unwrap();
    (t, d)
}

#[test]
fn reads_regular_files_and_reports_missing() {
    let (t, d) = setup();
    std::fs::create_dir_all(t.path().join("a/b")).unwrap();
    std::fs::write(t.path().join("a/b/f"), "hello").unwrap();
    assert_eq!(
        d.read(Path::new("a/b/f"), 100).unwrap().as_deref(),
        Some(&b"hello"[..])
    );
    assert_eq!(d.read(Path::new("a/b/missing"), 100).unwrap(), None);
    assert_eq!(d.read(Path::new("nope/f"), 100).unwrap(), None);
}

#[test]
fn symlinks_are_never_followed() {
    let (t, d) = setup();
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("secret"), "s3cret").unwrap();
    symlink(outside.path().join("secret"), t.path().join("link")).unwrap();
    symlink(outside.path(), t.path().join("dirlink")).unwrap();
    std::fs::create_dir(t.path().join("real")).unwrap();

    for rel in ["link", "dirlink/secret"] {
        let e = d.read(Path::new(rel), 100).unwrap_err();
        assert!(matches!(e, HostFsError::Symlink { .. }), "{rel}: {e}");
        assert!(e.to_string().contains("symbolic link"), "{e}");
    }
    assert!(matches!(
        d.open_dir(Path::new("dirlink")).unwrap_err(),
        HostFsError::Symlink { .. }
    ));
    assert!(matches!(
        d.create_dir_all(Path::new("dirlink/x"), 0o700).unwrap_err(),
        HostFsError::Symlink { .. }
    ));
    assert!(!outside.path().join("x").exists());
    // Writing over a symlink replaces the link, never the target.
    d.write_atomic(Path::new("link"), b"mine", 0o600).unwrap();
    assert_eq!(
        std::fs::read_to_string(outside.path().join("secret")).unwrap(),
        "s3cret"
    );
    assert_eq!(
        std::fs::read_to_string(t.path().join("link")).unwrap(),
        "mine"
    );
    assert!(!t.path().join("link").is_symlink());
    // Writing through a symlinked folder is refused.
    assert!(matches!(
        d.write_atomic(Path::new("dirlink/new"), b"x", 0o600)
            .unwrap_err(),
        HostFsError::Symlink { .. }
    ));
    assert!(!outside.path().join("new").exists());
    assert_eq!(
        d.meta(Path::new("dirlink")).unwrap().unwrap().kind,
        Kind::Symlink
    );
}

#[test]
fn special_and_large_files_are_refused_without_hanging() {
    let (t, d) = setup();
    nix_mkfifo(&t.path().join("fifo"));
    let e = d.read(Path::new("fifo"), 100).unwrap_err();
    assert!(matches!(e, HostFsError::NotRegular { .. }), "{e}");
    std::fs::write(t.path().join("big"), vec![b'x'; 101]).unwrap();
    let e = d.read(Path::new("big"), 100).unwrap_err();
    assert!(matches!(e, HostFsError::TooLarge { .. }), "{e}");
    std::fs::create_dir(t.path().join("dir")).unwrap();
    assert!(matches!(
        d.read(Path::new("dir"), 100).unwrap_err(),
        HostFsError::NotRegular { .. }
    ));
}

fn nix_mkfifo(path: &Path) {
    rustix::fs::mknodat(
        rustix::fs::CWD,
        path,
        FileType::Fifo,
        Mode::from_raw_mode(0o600),
        0,
    )
    .unwrap();
}

#[test]
fn paths_must_be_plain_and_relative() {
    let (_t, d) = setup();
    for bad in ["../x", "/etc/passwd", "a/../../x"] {
        assert!(
            matches!(
                d.read(Path::new(bad), 10).unwrap_err(),
                HostFsError::BadPath { .. }
            ),
            "{bad}"
        );
    }
}

#[test]
fn atomic_writes_leave_no_temporaries_and_set_the_mode() {
    let (t, d) = setup();
    d.create_dir_all(Path::new("s/t"), 0o700).unwrap();
    d.write_atomic(Path::new("s/t/f"), b"one", 0o600).unwrap();
    d.write_atomic(Path::new("s/t/f"), b"two", 0o600).unwrap();
    assert_eq!(
        std::fs::read_to_string(t.path().join("s/t/f")).unwrap(),
        "two"
    );
    let mode = std::fs::metadata(t.path().join("s/t/f"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    assert_eq!(d.list(Path::new("s/t")).unwrap().unwrap().len(), 1);
    assert!(!d.create_new(Path::new("s/t/f"), b"x", 0o600).unwrap());
    assert!(d.create_new(Path::new("s/t/g"), b"x", 0o600).unwrap());
}

#[test]
fn remove_all_does_not_follow_links_out() {
    let (t, d) = setup();
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("keep"), "k").unwrap();
    std::fs::create_dir_all(t.path().join("tree/sub")).unwrap();
    std::fs::write(t.path().join("tree/sub/f"), "f").unwrap();
    symlink(outside.path(), t.path().join("tree/sub/out")).unwrap();
    d.remove_all(Path::new("tree")).unwrap();
    assert!(!t.path().join("tree").exists());
    assert!(outside.path().join("keep").exists());
    d.remove_all(Path::new("tree")).unwrap();
}

#[test]
fn rename_moves_links_themselves() {
    let (t, d) = setup();
    symlink("/etc", t.path().join(".git")).unwrap();
    let q = d.create_dir_all(Path::new("q"), 0o700).unwrap();
    d.rename(Path::new(".git"), &q, Path::new("moved")).unwrap();
    assert!(t.path().join("q/moved").is_symlink());
    assert!(d.meta(Path::new(".git")).unwrap().is_none());
}

#[test]
fn read_link_reads_the_link_itself() {
    let (t, d) = setup();
    symlink("/etc", t.path().join("l")).unwrap();
    std::fs::create_dir(t.path().join("sub")).unwrap();
    symlink("../x y", t.path().join("sub/l2")).unwrap();
    std::fs::write(t.path().join("f"), "x").unwrap();
    assert_eq!(
        d.read_link(Path::new("l")).unwrap(),
        Some(PathBuf::from("/etc"))
    );
    assert_eq!(
        d.read_link(Path::new("sub/l2")).unwrap(),
        Some(PathBuf::from("../x y"))
    );
    assert_eq!(d.read_link(Path::new("missing")).unwrap(), None);
    assert!(d.read_link(Path::new("f")).is_err());
    // A symlinked folder on the way is not followed.
    assert!(matches!(
        d.read_link(Path::new("l/passwd")).unwrap_err(),
        HostFsError::Symlink { .. }
    ));
}

#[test]
fn cross_device_rename_is_recognisable() {
    let (t, d) = setup();
    std::fs::write(t.path().join("f"), "x").unwrap();
    let Ok(shm) = tempfile::tempdir_in("/dev/shm") else {
        eprintln!("SKIP: no /dev/shm");
        return;
    };
    let other = Dir::open(shm.path()).unwrap();
    match d.rename(Path::new("f"), &other, Path::new("f")) {
        // Same filesystem after all (a tmpfs /tmp): nothing to check.
        Ok(()) => {}
        Err(e) => assert!(e.is_cross_device(), "{e}"),
    }
    let e = d
        .rename(Path::new("missing"), &d, Path::new("g"))
        .unwrap_err();
    assert!(!e.is_cross_device());
}

/// Runs `f` as an ordinary user: in a thread whose uids are 65534 when the tests run as root
/// (root ignores permission bits, which these tests are about).
fn unprivileged(f: impl FnOnce() + Send) {
    std::thread::scope(|s| {
        s.spawn(|| {
            if rustix::process::geteuid().is_root() {
                let nobody = rustix::process::Uid::from_raw(65534);
                rustix::thread::set_thread_res_uid(nobody, nobody, nobody).unwrap();
            }
            f();
        })
        .join()
        .unwrap();
    });
}

fn mode(p: &Path) -> u32 {
    std::fs::symlink_metadata(p).unwrap().permissions().mode() & 0o7777
}

fn chmod(p: &Path, m: u32) {
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(m)).unwrap();
}

#[test]
fn unlistable_folders_of_ours_are_opened_as_owner_and_their_modes_kept() {
    unprivileged(|| {
        let (t, d) = setup();
        for (dir, m) in [("a", 0o100), ("b", 0o000), ("c", 0o2300)] {
            std::fs::create_dir_all(t.path().join(dir).join("in/deeper")).unwrap();
            std::fs::write(t.path().join(dir).join("in/f"), "x").unwrap();
            chmod(&t.path().join(dir), m);
            // The plain call is refused, as it was before.
            assert!(d.list(Path::new(dir)).unwrap_err().is_permission_denied());
            let names: Vec<_> = d
                .list_as_owner(Path::new(dir))
                .unwrap()
                .unwrap()
                .into_iter()
                .map(|(n, _)| n)
                .collect();
            assert_eq!(names, ["in"], "{dir}");
            assert_eq!(
                mode(&t.path().join(dir)),
                m,
                "{dir}: the exact mode is back"
            );
            // A folder inside one that is not even searchable (000): opened the same way.
            let outer = d.open_dir_as_owner(Path::new(dir)).unwrap().unwrap();
            let inner = outer.open_dir_as_owner(Path::new("in")).unwrap().unwrap();
            let names: Vec<_> = inner
                .entries()
                .unwrap()
                .into_iter()
                .map(|(n, _)| n)
                .collect();
            assert_eq!(names, ["deeper", "f"], "{dir}");
            assert_eq!(mode(&t.path().join(dir)), m, "{dir}");
            chmod(&t.path().join(dir), 0o700);
        }
        // Folders on the way only need to be searchable (`chmod 100`).
        std::fs::create_dir_all(t.path().join("s/r/.git")).unwrap();
        std::fs::write(t.path().join("s/r/.git/config"), "c").unwrap();
        chmod(&t.path().join("s"), 0o100);
        assert_eq!(
            d.read(Path::new("s/r/.git/config"), 10).unwrap().as_deref(),
            Some(&b"c"[..])
        );
        chmod(&t.path().join("s"), 0o700);
    });
}

#[test]
fn a_link_or_someone_elses_folder_is_never_opened_as_owner() {
    let outside = tempfile::tempdir().unwrap();
    let theirs = outside.path().join("theirs");
    std::fs::create_dir(&theirs).unwrap();
    chmod(&theirs, 0o700);
    chmod(outside.path(), 0o755);
    unprivileged(|| {
        let (t, d) = setup();
        symlink(&theirs, t.path().join("link")).unwrap();
        let e = d.open_dir_as_owner(Path::new("link")).unwrap_err();
        assert!(matches!(e, HostFsError::Symlink { .. }), "{e}");
        let o = Dir::open(outside.path()).unwrap();
        let e = o.open_dir_as_owner(Path::new("theirs")).unwrap_err();
        assert!(e.is_permission_denied(), "{e}");
    });
    assert_eq!(mode(&theirs), 0o700);
}

#[test]
fn moves_out_of_write_protected_folders_as_owner() {
    unprivileged(|| {
        let (t, d) = setup();
        let q = tempfile::tempdir().unwrap();
        let qd = Dir::open(q.path()).unwrap();
        std::fs::create_dir_all(t.path().join("sub/.git/hooks")).unwrap();
        std::fs::write(t.path().join("sub/.git/hooks/pre-commit"), "x").unwrap();
        chmod(&t.path().join("sub/.git/hooks"), 0o500);
        chmod(&t.path().join("sub/.git"), 0o100);
        chmod(&t.path().join("sub"), 0o500);
        let hook = Path::new("sub/.git/hooks/pre-commit");
        assert!(d
            .rename(hook, &qd, Path::new("h"))
            .unwrap_err()
            .is_permission_denied());
        d.rename_as_owner(hook, &qd, Path::new("h")).unwrap();
        assert!(q.path().join("h").is_file());
        assert_eq!(mode(&t.path().join("sub/.git/hooks")), 0o500);
        // A folder is moved too (its own `..` changes, which needs its write bit).
        d.rename_as_owner(Path::new("sub/.git"), &qd, Path::new("git"))
            .unwrap();
        assert!(!t.path().join("sub/.git").exists());
        assert_eq!(mode(&q.path().join("git")), 0o100);
        assert_eq!(mode(&t.path().join("sub")), 0o500);
        chmod(&q.path().join("git"), 0o700);
        chmod(&q.path().join("git/hooks"), 0o700);
        chmod(&t.path().join("sub"), 0o700);
    });
}

#[test]
fn unsynced_writes_replace_content_and_refuse_links() {
    let (t, d) = setup();
    d.write_unsynced(Path::new("m"), b"one two", 0o600).unwrap();
    d.write_unsynced(Path::new("m"), b"3", 0o600).unwrap();
    assert_eq!(std::fs::read_to_string(t.path().join("m")).unwrap(), "3");
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("target"), "keep").unwrap();
    symlink(outside.path().join("target"), t.path().join("l")).unwrap();
    assert!(matches!(
        d.write_unsynced(Path::new("l"), b"x", 0o600).unwrap_err(),
        HostFsError::Symlink { .. }
    ));
    assert_eq!(
        std::fs::read_to_string(outside.path().join("target")).unwrap(),
        "keep"
    );
}

#[test]
fn path_handles_are_the_checked_object_and_refuse_links() {
    let (t, d) = setup();
    std::fs::create_dir_all(t.path().join("a/b")).unwrap();
    let (fd, meta) = d.open_path(Path::new("a/b")).unwrap().unwrap();
    assert_eq!(meta.kind, Kind::Dir);
    // Swapping the path afterwards does not change what the handle is.
    std::fs::rename(t.path().join("a/b"), t.path().join("a/c")).unwrap();
    symlink("/etc", t.path().join("a/b")).unwrap();
    let via = std::fs::read_link(format!(
        "/proc/self/fd/{}",
        std::os::fd::AsRawFd::as_raw_fd(&fd)
    ))
    .unwrap();
    assert_eq!(via, t.path().join("a/c"));
    assert!(matches!(
        d.open_path(Path::new("a/b")).unwrap_err(),
        HostFsError::Symlink { .. }
    ));
    assert!(d.open_path(Path::new("nope")).unwrap().is_none());
}
