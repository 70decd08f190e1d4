//! The daemon as the real `switchyard run` process ([`Binary`]), for what
//! only a process shows: signals, `kill -9`, exit codes, its log, its memory.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use serde_json::Value;

use super::{switchyard, test_queue, wait_until};

/// The real `switchyard run` binary on a config, with its stderr collected.
pub struct Binary {
    pub child: std::process::Child,
    pub addr: SocketAddr,
    /// Every stderr line so far (the daemon's log).
    pub log: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    /// Collects `log`; joined once the daemon has exited, so that the log
    /// is complete.
    reader: Option<std::thread::JoinHandle<()>>,
}

/// The address in the daemon's "switchyard listening" line (once loaded),
/// or with `early` its "listening; loading plugins" line (bound, still
/// starting), in either log format.
fn listening_addr(line: &str, early: bool) -> Option<String> {
    let (message, field) = if early {
        ("listening; loading plugins", "listen")
    } else {
        ("switchyard listening", "addr")
    };
    if line.starts_with('{') {
        let v: Value = serde_json::from_str(line).ok()?;
        if v["message"] != message {
            return None;
        }
        return v[field].as_str().map(str::to_string);
    }
    if !line.contains(message) {
        return None;
    }
    let rest = line.split(&format!("{field}=")).nth(1)?;
    Some(rest.split_whitespace().next().unwrap_or("").to_string())
}

impl Binary {
    pub fn start(config: &Path) -> Binary {
        Binary::start_with(config, &[])
    }

    /// With options before `run`, e.g. `--log-format json`.
    pub fn start_with(config: &Path, global: &[&str]) -> Binary {
        Binary::spawn(config, global, false, None, &[])
    }

    /// With environment variables set, e.g. the test-only crash hook
    /// `SWITCHYARD_TEST_ABORT_ON` (debug builds).
    pub fn start_env(config: &Path, env: &[(&str, &str)]) -> Binary {
        Binary::spawn(config, &[], false, None, env)
    }

    /// Run from the working directory `cwd`, with `config` passed as given
    /// (relative paths are relative to `cwd`).
    pub fn start_from(cwd: &Path, config: &Path) -> Binary {
        Binary::spawn(config, &[], false, Some(cwd), &[])
    }

    /// Returns as soon as the daemon has bound its listeners, while it is
    /// still loading plugins (`/readyz` says starting).
    pub fn start_early(config: &Path) -> Binary {
        Binary::spawn(config, &[], true, None, &[])
    }

    /// Runs `switchyard run --config <config>` from `cwd` expecting it to
    /// be refused: waits up to `within` for it to exit by itself (killing
    /// it and failing otherwise) and returns its exit status and log.
    pub async fn refused(cwd: &Path, config: &Path, within: Duration) -> (std::process::ExitStatus, String) {
        let (child, log, reader, _) = Binary::launch(config, &[], false, Some(cwd), &[]);
        // A refused daemon never listens: no address, but killed on drop
        // (a timeout's panic) like any other.
        let mut binary = Binary {
            child,
            addr: SocketAddr::from(([0, 0, 0, 0], 0)),
            log,
            reader: Some(reader),
        };
        let what = format!(
            "a second daemon with --config {} from {} to be refused",
            config.display(),
            cwd.display()
        );
        wait_until(what, within, async || binary.child.try_wait().unwrap().is_some()).await;
        let status = binary.exited();
        (status, binary.log_lines().join("\n"))
    }

    fn spawn(
        config: &Path,
        global: &[&str],
        early: bool,
        cwd: Option<&Path>,
        env: &[(&str, &str)],
    ) -> Binary {
        let (child, log, reader, rx) = Binary::launch(config, global, early, cwd, env);
        let addr = rx
            .recv_timeout(std::time::Duration::from_secs(30))
            .expect("the daemon must log its listening address")
            .parse()
            .unwrap();
        Binary {
            child,
            addr,
            log,
            reader: Some(reader),
        }
    }

    /// Spawns `switchyard [global] run --config <config>` (with `env`) with a thread
    /// collecting its stderr lines, which sends the listening address
    /// (see [`listening_addr`]) on the returned channel.
    #[allow(clippy::type_complexity)]
    fn launch(
        config: &Path,
        global: &[&str],
        early: bool,
        cwd: Option<&Path>,
        env: &[(&str, &str)],
    ) -> (
        std::process::Child,
        std::sync::Arc<std::sync::Mutex<Vec<String>>>,
        std::thread::JoinHandle<()>,
        std::sync::mpsc::Receiver<String>,
    ) {
        use std::io::BufRead;
        test_queue(&cwd.map_or_else(|| config.to_path_buf(), |cwd| cwd.join(config)));
        let mut command = switchyard(global);
        if let Some(cwd) = cwd {
            command.current_dir(cwd);
        }
        let mut child = command
            .args(["run", "--config"])
            .arg(config)
            .env("SWITCHYARD_LOG", "info")
            .envs(env.iter().copied())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = std::io::BufReader::new(child.stderr.take().unwrap());
        let log = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let lines = log.clone();
        let reader = std::thread::spawn(move || {
            for line in stderr.lines().map_while(Result::ok) {
                if let Some(addr) = listening_addr(&line, early) {
                    let _ = tx.send(addr);
                }
                lines.lock().unwrap().push(line);
            }
        });
        (child, log, reader, rx)
    }

    /// The exit status of a daemon that has exited, once its log is
    /// complete.
    fn exited(&mut self) -> std::process::ExitStatus {
        let status = self.child.try_wait().unwrap().expect("the daemon has exited");
        if let Some(reader) = self.reader.take() {
            reader.join().expect("the log reader panicked");
        }
        status
    }

    /// Sends a signal, e.g. `"HUP"`.
    pub fn signal(&self, name: &str) {
        let kill = std::process::Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.child.id().to_string())
            .status()
            .unwrap();
        assert!(kill.success());
    }

    /// Sends SIGTERM and waits (bounded) for the exit status.
    pub async fn terminate(&mut self) -> std::process::ExitStatus {
        self.signal("TERM");
        wait_until(
            "the daemon to exit after SIGTERM",
            Duration::from_secs(60),
            async || self.child.try_wait().unwrap().is_some(),
        )
        .await;
        self.exited()
    }

    /// Kills the daemon with SIGKILL (`kill -9`): no drain, no flush, no
    /// last checkpoint. Returns once it is gone and its log is complete.
    pub fn kill(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
        self.exited();
    }

    /// Waits (bounded by `within`) for the daemon to exit by itself, e.g.
    /// after the test-only crash hook aborted it; its exit status.
    pub async fn exit_within(&mut self, within: Duration) -> std::process::ExitStatus {
        wait_until("the daemon to exit by itself", within, async || {
            self.child.try_wait().unwrap().is_some()
        })
        .await;
        self.exited()
    }

    /// The daemon's peak resident set so far (`VmHWM`), in KiB.
    pub fn peak_rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmHWM in /proc/PID/status")
    }

    pub fn log_lines(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }
}

impl Drop for Binary {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
