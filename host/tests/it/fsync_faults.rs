//! ENOSPC on fsync (issue 17): an ext4 filesystem on a loop device whose
//! backing store is full, as on thin-provisioned storage. Writes succeed;
//! fsync fails once, and the kernel then forgets the error.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;

use crate::faults::Tmpfs;
use crate::harness::{lazy, wait_until, Binary, PATIENCE};

/// An ext4 filesystem on a loop device whose backing file lives on a tmpfs
/// with no room left: writes succeed into the page cache, and fsync fails
/// with ENOSPC, as on thin-provisioned storage.
struct ThinDisk {
    backing: Tmpfs,
    loop_dev: String,
    pub path: PathBuf,
}

impl ThinDisk {
    fn make(dir: &Path) -> Option<ThinDisk> {
        let backing = Tmpfs::mount(&dir.join("backing"), "8m")?;
        let image = backing.path.join("image");
        std::fs::File::create(&image).unwrap().set_len(64 << 20).unwrap();
        let run = |cmd: &mut std::process::Command| {
            let out = cmd.output().unwrap();
            assert!(
                out.status.success(),
                "{cmd:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            String::from_utf8(out.stdout).unwrap().trim().to_string()
        };
        run(std::process::Command::new("mkfs.ext4")
            .args(["-q", "-O", "^has_journal", "-E", "lazy_itable_init=1"])
            .arg(&image));
        let loop_dev = match std::process::Command::new("losetup")
            .arg("-f")
            .arg("--show")
            .arg(&image)
            .output()
        {
            Ok(o) if o.status.success() => String::from_utf8(o.stdout).unwrap().trim().to_string(),
            other => {
                eprintln!("SKIPPED: no loop device: {other:?}");
                return None;
            }
        };
        let path = dir.join("thin");
        std::fs::create_dir_all(&path).unwrap();
        run(std::process::Command::new("mount").arg(&loop_dev).arg(&path));
        // The backing store is full from now on; the filesystem does not know.
        backing.fill_leaving(0);
        Some(ThinDisk {
            backing,
            loop_dev,
            path,
        })
    }
}

impl Drop for ThinDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.path)
            .status();
        let _ = std::process::Command::new("losetup")
            .arg("-d")
            .arg(&self.loop_dev)
            .status();
        let _ = &self.backing;
    }
}

/// ENOSPC on fsync: the sink's lines were written but cannot be made
/// durable. They are not acknowledged (memory queue: the tail checkpoint
/// does not pass them; disk queue: the checkpoint passes them once queued,
/// and the queue keeps them), the stop exits 3, and the next start (with
/// the sink on a sound disk) handles every line.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_fsync_that_fails_holds_the_tail_checkpoint_and_the_exit_code_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let Some(thin) = ThinDisk::make(dir.path()) else {
        return;
    };
    let write_config = |sink: &Path| {
        let toml = format!(
            r#"[server]
listen = "127.0.0.1:0"

[plugins]
dir = "plugins"

[dead_letter]
path = "dead.ndjson"

[[source.tail]]
path = "logs/app.log"
start_at = "beginning"

[[route]]
name = "all"
sinks = ["out"]

[sink.out]
type = "file"
path = "{}"
"#,
            sink.display()
        );
        std::fs::write(dir.path().join("router.toml"), toml).unwrap();
    };
    std::fs::create_dir_all(dir.path().join("plugins")).unwrap();
    std::fs::create_dir_all(dir.path().join("logs")).unwrap();
    crate::tail::append(&dir.path().join("logs/app.log"), &crate::tail::lines(0..100));
    write_config(&thin.path.join("out.ndjson"));
    let config = dir.path().join("router.toml");
    let mut d = Binary::start_with(&config, &["--log-format", "json"]);
    let what = lazy(|| {
        format!(
            "the lines to be written (not fsynced); log: {}",
            d.log_lines().join("\n")
        )
    });
    wait_until(what, Duration::from_secs(20), async || {
        crate::tail::seq_counts(&thin.path.join("out.ndjson")).len() >= 100
    })
    .await;
    let status = d.terminate().await;
    assert_eq!(status.code(), Some(3), "{status}");
    let log = d.log_lines().join("\n");
    assert!(log.contains("cannot fsync"), "{log}");
    let offset = std::fs::read_dir(dir.path().join("data/tail"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .map(|p| serde_json::from_slice::<Value>(&std::fs::read(p).unwrap()).unwrap())
        .map(|cp| cp["files"][0]["offset"].as_u64().unwrap_or(0))
        .next()
        .unwrap_or(0);
    if crate::harness::memory_queue() {
        assert_eq!(
            offset, 0,
            "the checkpoint never passes lines that are not durable"
        );
    }

    write_config(Path::new("out.ndjson"));
    let mut d = Binary::start(&config);
    wait_until("the lines again, on a sound disk", PATIENCE, async || {
        crate::tail::seq_counts(&dir.path().join("out.ndjson")).len() == 100
    })
    .await;
    assert!(d.terminate().await.success());
    crate::tail::assert_exactly_once(&crate::tail::seq_counts(&dir.path().join("out.ndjson")), 0..100);
}
