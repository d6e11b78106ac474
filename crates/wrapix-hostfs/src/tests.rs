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
