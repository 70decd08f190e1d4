//! The one harness of the integration tests: the daemon in-process
//! ([`TestDaemon`], on 127.0.0.1:0 with a config and WAT plugins in a
//! temporary folder) or as the real binary ([`Binary`]), talked to over
//! real HTTP; the `switchyard` command line ([`switchyard`], [`run`]); and
//! [`wait_until`], the one way to wait for something to happen. Tests start
//! daemons, run the command line and wait only through these.
//!
//! The queue the daemons run on: `SWITCHYARD_TEST_QUEUE=memory|disk`
//! appends `[queue]\ntype = "<value>"` to every config without a `[queue]`
//! section ([`test_queue`]) before a daemon starts on it; unset, the
//! default (disk) applies. `make test` runs the suite both ways.

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

mod binary;
pub use binary::Binary;

/// How long a test waits for what should happen promptly (a daemon to
/// start or stop, an event to be handled) before it fails.
pub const PATIENCE: Duration = Duration::from_secs(30);

/// Polls `done` every 20 ms until it holds; fails after `within`, naming
/// `what` (formatted then, so it may show the state at the timeout).
pub async fn wait_until(what: impl Display, within: Duration, done: impl AsyncFnMut() -> bool) {
    wait_until_every(Duration::from_millis(20), what, within, done).await;
}

/// [`wait_until`] polling every `every`, for a wait that samples
/// something on each poll (a peak, a latency, "nothing moved since").
pub async fn wait_until_every(
    every: Duration,
    what: impl Display,
    within: Duration,
    mut done: impl AsyncFnMut() -> bool,
) {
    let t = Instant::now();
    while !done().await {
        assert!(
            t.elapsed() < within,
            "timed out after {within:?} waiting for {what}"
        );
        tokio::time::sleep(every).await;
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

/// Runs `command` (made by [`switchyard`], with any env, cwd or args
/// added) to its end off the async runtime (the daemon it talks to may be
/// in this process) and returns what it printed. Its stdin is empty, as with
/// [`Command::output`].
pub async fn run(command: &mut Command) -> Output {
    let child = spawn(command.stdin(std::process::Stdio::null()));
    tokio::task::spawn_blocking(move || child.wait_with_output().unwrap())
        .await
        .unwrap()
}

/// Starts `command` with its stdout and stderr piped, for one that runs
/// alongside the test (e.g. `tail`): read them, then wait for its end.
pub fn spawn(command: &mut Command) -> std::process::Child {
    command
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap()
}

/// Runs `command` as `command | head -0` would: its standard output is a
/// pipe whose reader has gone before anything was written.
pub async fn run_into_closed_pipe(mut command: Command) -> Output {
    let mut child = spawn(&mut command);
    drop(child.stdout.take());
    tokio::task::spawn_blocking(move || child.wait_with_output().unwrap())
        .await
        .unwrap()
}

/// Appends `[queue]\ntype = "<SWITCHYARD_TEST_QUEUE>"` to the config at
/// `path` when the variable is set and the config has no `[queue]` section
/// (so that the whole suite runs on either queue); does nothing otherwise,
/// or when there is no file there (a test about a missing config).
pub fn test_queue(path: &Path) {
    let Ok(kind) = std::env::var("SWITCHYARD_TEST_QUEUE") else {
        return;
    };
    assert!(
        kind == "memory" || kind == "disk",
        "SWITCHYARD_TEST_QUEUE is memory or disk, not {kind:?}"
    );
    let Ok(text) = std::fs::read_to_string(path) else {
        return;
    };
    if text.lines().any(|l| l.trim() == "[queue]") {
        return;
    }
    let sep = if text.ends_with('\n') || text.is_empty() {
        ""
    } else {
        "\n"
    };
    std::fs::write(path, format!("{text}{sep}\n[queue]\ntype = \"{kind}\"\n")).unwrap();
}

/// Whether the suite runs on the memory queue (`SWITCHYARD_TEST_QUEUE`),
/// for the few tests whose expectations differ by queue (what a tail
/// checkpoint passes, which duplicates a crash makes), each saying why.
pub fn memory_queue() -> bool {
    std::env::var("SWITCHYARD_TEST_QUEUE").is_ok_and(|q| q == "memory")
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

    /// Binds the daemon's listeners on a folder made earlier without loading
    /// its plugins yet: `/readyz` says starting until [`Bound::load`].
    pub async fn bind(dir: TempDir) -> Bound {
        test_queue(&dir.path().join("router.toml"));
        let config = Config::load(&dir.path().join("router.toml")).unwrap_or_else(|e| panic!("{e}"));
        let starting = tokio::time::timeout(PATIENCE, Daemon::bind(config))
            .await
            .unwrap_or_else(|_| panic!("the daemon did not bind within {PATIENCE:?}"))
            .unwrap();
        Bound {
            addr: starting.addr(),
            dir,
            starting,
        }
    }

    /// Starts the daemon on a folder made earlier (e.g. to restart it).
    pub async fn start_in(dir: TempDir) -> TestDaemon {
        test_queue(&dir.path().join("router.toml"));
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

/// A daemon from [`TestDaemon::bind`]: listening, still starting.
pub struct Bound {
    pub addr: SocketAddr,
    /// The daemon's folder, handed on to the [`TestDaemon`] once loaded.
    dir: TempDir,
    starting: switchyard::app::Starting,
}

impl Bound {
    /// Loads the plugins; the daemon is then ready and serving.
    pub async fn load(self) -> TestDaemon {
        let daemon = tokio::time::timeout(PATIENCE, self.starting.load())
            .await
            .unwrap_or_else(|_| panic!("the daemon did not load within {PATIENCE:?}"))
            .unwrap();
        TestDaemon {
            addr: daemon.addr(),
            dir: self.dir,
            daemon: Some(daemon),
        }
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
