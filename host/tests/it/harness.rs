//! The one harness of the integration tests: the daemon in-process
//! ([`TestDaemon`], on 127.0.0.1:0 with a config and WAT plugins in a
//! temporary folder) or as the real binary ([`Binary`]), talked to over
//! real HTTP; the `switchyard` command line ([`switchyard`], [`run`]); and
//! [`wait_until`], the one way to wait for something to happen.

use std::ffi::OsStr;
use std::fmt::Display;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{HeaderMap, Request, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use switchyard::app::Daemon;
use switchyard::config::Config;
use tempfile::TempDir;

/// How long a test waits for what should happen promptly (a daemon to
/// start or stop, an event to be handled) before it fails.
pub const PATIENCE: Duration = Duration::from_secs(30);

/// Polls `done` every 20 ms until it holds; fails after `within`, naming
/// `what` (formatted then, so it may show the state at the timeout).
pub async fn wait_until(what: impl Display, within: Duration, mut done: impl AsyncFnMut() -> bool) {
    let t = Instant::now();
    while !done().await {
        assert!(
            t.elapsed() < within,
            "timed out after {within:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A description for [`wait_until`] made only when it is shown, so that
/// it can tell the state at the timeout.
pub fn lazy(describe: impl Fn() -> String) -> impl Display {
    struct Lazy<F>(F);
    impl<F: Fn() -> String> Display for Lazy<F> {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str(&(self.0)())
        }
    }
    Lazy(describe)
}

/// The `switchyard` binary with `args`, as a user runs it: without the
/// test process's `SWITCHYARD_URL` and `SWITCHYARD_TOKEN`.
pub fn switchyard<S: AsRef<OsStr>>(args: impl IntoIterator<Item = S>) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_switchyard"));
    command
        .args(args)
        .env_remove("SWITCHYARD_URL")
        .env_remove("SWITCHYARD_TOKEN");
    command
}

/// Runs `command` to its end off the async runtime (the daemon it talks to
/// may be in this process) and returns what it printed.
pub async fn run(mut command: Command) -> Output {
    tokio::task::spawn_blocking(move || command.output().unwrap())
        .await
        .unwrap()
}

/// Runs `command` as `command | head -0` would: its standard output is a
/// pipe whose reader has gone before anything was written.
pub async fn run_into_closed_pipe(mut command: Command) -> Output {
    command
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = command.spawn().unwrap();
    drop(child.stdout.take());
    tokio::task::spawn_blocking(move || child.wait_with_output().unwrap())
        .await
        .unwrap()
}

pub struct TestDaemon {
    pub dir: TempDir,
    pub addr: SocketAddr,
    daemon: Option<Daemon>,
}

/// Writes `router.toml` (with `[server] listen = "127.0.0.1:0"` and `server`
/// lines added) and `plugins/<name>.wat` into a fresh folder.
pub fn write_setup(server: &str, toml: &str, plugins: &[(&str, String)]) -> TempDir {
    write_setup_with(server, "", toml, plugins)
}

/// [`write_setup`] with `plugins_lines` (each ending in a newline) added to
/// `[plugins]`.
pub fn write_setup_with(
    server: &str,
    plugins_lines: &str,
    toml: &str,
    plugins: &[(&str, String)],
) -> TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("plugins")).unwrap();
    for (name, wat) in plugins {
        std::fs::write(dir.path().join("plugins").join(format!("{name}.wat")), wat).unwrap();
    }
    let config = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\n{server}\n\n[plugins]\ndir = \"plugins\"\n{plugins_lines}\n[dead_letter]\npath = \"dead.ndjson\"\n\n{toml}"
    );
    std::fs::write(dir.path().join("router.toml"), config).unwrap();
    dir
}

impl TestDaemon {
    pub async fn start(toml: &str, plugins: &[(&str, String)]) -> TestDaemon {
        TestDaemon::start_with(toml, plugins, "").await
    }

    /// `plugins` may set `[plugins]` defaults only through `[plugin.X]`
    /// tables in `toml`; `server` adds lines to `[server]`.
    pub async fn start_with(toml: &str, plugins: &[(&str, String)], server: &str) -> TestDaemon {
        TestDaemon::start_in(write_setup(server, toml, plugins)).await
    }

    /// Starts the daemon on a folder made earlier (e.g. to restart it).
    pub async fn start_in(dir: TempDir) -> TestDaemon {
        let config = Config::load(&dir.path().join("router.toml")).unwrap_or_else(|e| panic!("{e}"));
        let daemon = tokio::time::timeout(PATIENCE, Daemon::start(config))
            .await
            .unwrap_or_else(|_| panic!("the daemon did not start within {PATIENCE:?}"))
            .unwrap();
        TestDaemon {
            addr: daemon.addr(),
            dir,
            daemon: Some(daemon),
        }
    }

    /// Waits until the live stream (`/v1/stream`) has `n` subscribers.
    pub async fn subscribed(&self, n: u64) {
        wait_until(format!("{n} stream subscriber(s)"), PATIENCE, async || {
            self.get("/v1/stats").await.body["stream"]["subscribers"] == n
        })
        .await;
    }

    /// The running daemon, for what only its insides show.
    pub fn daemon(&self) -> &Daemon {
        self.daemon.as_ref().expect("the daemon is running")
    }

    /// The `[admin] listen` address, when configured.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.daemon.as_ref().and_then(|d| d.admin_addr())
    }

    /// Stops the daemon and hands back its folder.
    pub async fn stop(mut self) -> TempDir {
        self.shutdown().await;
        self.dir
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// Drains the queue and stops; everything accepted is then on disk.
    pub async fn shutdown(&mut self) {
        if let Some(d) = self.daemon.take() {
            tokio::time::timeout(PATIENCE, d.shutdown())
                .await
                .unwrap_or_else(|_| panic!("the daemon did not stop within {PATIENCE:?}"))
                .unwrap();
        }
    }

    pub fn dead_letters(&self) -> Vec<Value> {
        read_ndjson(&self.path("dead.ndjson"))
    }

    pub fn lines(&self, rel: &str) -> Vec<Value> {
        read_ndjson(&self.path(rel))
    }

    pub async fn post(&self, path: &str, content_type: Option<&str>, body: &str) -> Reply {
        let mut headers = Vec::new();
        if let Some(ct) = content_type {
            headers.push(("content-type", ct));
        }
        self.request("POST", path, &headers, body.as_bytes().to_vec())
            .await
    }

    pub async fn post_json(&self, path: &str, body: &Value) -> Reply {
        self.post(path, Some("application/json"), &body.to_string()).await
    }

    pub async fn get(&self, path: &str) -> Reply {
        self.request("GET", path, &[], Vec::new()).await
    }

    pub async fn request(&self, method: &str, path: &str, headers: &[(&str, &str)], body: Vec<u8>) -> Reply {
        request(self.addr, method, path, headers, body).await
    }
}

pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Value,
}

/// One request on a fresh connection.
pub async fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Vec<u8>,
) -> Reply {
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(conn);
    let mut req = Request::builder()
        .method(method)
        .uri(path)
        .header("host", addr.to_string());
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = send
        .send_request(req.body(Full::new(Bytes::from(body))).unwrap())
        .await
        .unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    let body = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()));
    Reply {
        status,
        headers,
        body,
    }
}

pub fn read_ndjson(path: &Path) -> Vec<Value> {
    match std::fs::read_to_string(path) {
        Ok(text) => text.lines().map(|l| serde_json::from_str(l).unwrap()).collect(),
        Err(_) => Vec::new(),
    }
}

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
        Binary::spawn(config, global, false, None)
    }

    /// Run from the working directory `cwd`, with `config` passed as given
    /// (relative paths are relative to `cwd`).
    pub fn start_from(cwd: &Path, config: &Path) -> Binary {
        Binary::spawn(config, &[], false, Some(cwd))
    }

    /// Returns as soon as the daemon has bound its listeners, while it is
    /// still loading plugins (`/readyz` says starting).
    pub fn start_early(config: &Path) -> Binary {
        Binary::spawn(config, &[], true, None)
    }

    fn spawn(config: &Path, global: &[&str], early: bool, cwd: Option<&Path>) -> Binary {
        use std::io::BufRead;
        let mut command = switchyard(global);
        if let Some(cwd) = cwd {
            command.current_dir(cwd);
        }
        let mut child = command
            .args(["run", "--config"])
            .arg(config)
            .env("SWITCHYARD_LOG", "info")
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
        let t = std::time::Instant::now();
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                if let Some(reader) = self.reader.take() {
                    reader.join().expect("the log reader panicked");
                }
                return s;
            }
            assert!(
                t.elapsed() < std::time::Duration::from_secs(60),
                "the daemon did not exit after SIGTERM"
            );
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
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
