//! `cargo bench -p wrapix-sandbox --bench tripwire`: the median time of a tripwire `snapshot`
//! of synthetic projects (10k and 100k files in nested folders, a few nested repositories),
//! next to `find DIR -name .git` on the same tree in the same run, and the ratio. Warm cache.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use wrapix_hostfs::Dir;
use wrapix_sandbox::tripwire;

const RUNS: usize = 15;

/// `files` files, 10 to a folder, folders 10 to a parent; four nested repositories.
fn build(root: &Path, files: usize) {
    let dirs = files / 10;
    for d in 0..dirs {
        // Folder d sits at the path of its base-10 digits: 1/2/3 for 123.
        let mut p = root.join("src");
        for digit in d.to_string().chars() {
            p.push(digit.to_string());
        }
        p.push("f");
        std::fs::create_dir_all(&p).unwrap();
        for f in 0..10 {
            std::fs::write(p.join(format!("file{f}.rs")), "fn main() {}\n").unwrap();
        }
        if d % (dirs / 4).max(1) == 0 {
            let git = p.join("nested/.git");
            std::fs::create_dir_all(git.join("hooks")).unwrap();
            std::fs::create_dir_all(git.join("objects/pack")).unwrap();
            std::fs::write(git.join("config"), "[core]\n\tbare = false\n").unwrap();
            std::fs::write(git.join("HEAD"), "ref: refs/heads/main\n").unwrap();
            std::fs::write(git.join("hooks/pre-commit.sample"), "#!/bin/sh\n").unwrap();
        }
    }
    let git = root.join(".git");
    std::fs::create_dir_all(git.join("hooks")).unwrap();
    std::fs::create_dir_all(git.join("modules/lib/hooks")).unwrap();
    std::fs::write(git.join("config"), "[core]\n\tbare = false\n").unwrap();
    std::fs::write(git.join("modules/lib/config"), "[core]\n\tbare = false\n").unwrap();
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn time(mut f: impl FnMut()) -> Duration {
    f();
    median(
        (0..RUNS)
            .map(|_| {
                let t = Instant::now();
                f();
                t.elapsed()
            })
            .collect(),
    )
}

fn ms(d: Duration) -> String {
    format!("{:8.2} ms", d.as_secs_f64() * 1000.0)
}

fn main() {
    println!(
        "{:>8} {:>6} | {:>11} {:>11} {:>11} | {:>8} {:>8}",
        "files", "dirs", "find", "snapshot×1", "snapshot", "×1/find", "snap/find"
    );
    for files in [10_000, 100_000] {
        let t = tempfile::tempdir().unwrap();
        build(t.path(), files);
        let dir = Dir::open(t.path()).unwrap();
        let repos = tripwire::snapshot(&dir).unwrap().repositories();
        assert_eq!(repos, 5, "the top repository and four nested ones");
        let dirs = Command::new("find")
            .arg(t.path())
            .args(["-type", "d"])
            .output()
            .unwrap()
            .stdout
            .split(|&b| b == b'\n')
            .count()
            - 1;
        let find = time(|| {
            let s = Command::new("find")
                .arg(t.path())
                .args(["-name", ".git"])
                .stdout(Stdio::null())
                .status()
                .unwrap();
            assert!(s.success());
        });
        let one = time(|| {
            tripwire::snapshot_with_threads(&dir, 1).unwrap();
        });
        let default = time(|| {
            tripwire::snapshot(&dir).unwrap();
        });
        println!(
            "{files:>8} {dirs:>6} | {} {} {} | {:>8.2} {:>8.2}",
            ms(find),
            ms(one),
            ms(default),
            one.as_secs_f64() / find.as_secs_f64(),
            default.as_secs_f64() / find.as_secs_f64()
        );
    }
    println!(
        "(median of {RUNS}; snapshot uses {} threads; find includes its process start)",
        std::thread::available_parallelism().map_or(1, |n| n.get().min(4))
    );
}
