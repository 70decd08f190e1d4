//! Reload latency and start-up time of the release daemon.
//!
//! 1. Rename-over 100 new versions of a small plugin; for each, the time from
//!    the rename to the first event (`?wait=true`) served by the new version.
//! 2. Start-up with the first 10 `.wasm` plugins of plugins/dist: time from
//!    spawning `switchyard run` to `/healthz` answering, with an empty
//!    compiled-module cache (cold) and with the cache filled (warm).
//!
//! Prints one JSON object. Run from the repository root after
//! `cargo build --release` and `plugins/build.sh`.

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

fn emitter(n: usize) -> String {
    let json = format!(r#"{{\"name\":\"seen.v{n}\"}}"#);
    let len = json.len() - json.matches('\\').count();
    format!(
        r#"(module
  (import "switchyard" "emit" (func $emit (param i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 0) "{json}")
  (func (export "switchyard_alloc") (param i32) (result i32) (i32.const 1024))
  (func (export "switchyard_handle") (param i32 i32) (result i32)
    (drop (call $emit (i32.const 0) (i32.const {len}))) (i32.const 0)))"#
    )
}

fn sha12(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .take(6)
        .map(|b| format!("{b:02x}"))
        .collect()
}

struct Daemon {
    child: Child,
    addr: String,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn spawn(config: &Path) -> anyhow::Result<(Daemon, Duration)> {
    let t = Instant::now();
    let mut child = Command::new("target/release/switchyard")
        .args(["run", "--config"])
        .arg(config)
        .env("SWITCHYARD_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .context("run target/release/switchyard (cargo build --release first)")?;
    let stderr = std::io::BufReader::new(child.stderr.take().context("stderr")?);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in stderr.lines().map_while(Result::ok) {
            if let Some(rest) = line.split("addr=").nth(1) {
                let _ = tx.send(rest.split_whitespace().next().unwrap_or("").to_string());
            }
        }
    });
    let addr = rx
        .recv_timeout(Duration::from_secs(60))
        .context("the daemon did not start")?;
    Ok((Daemon { child, addr }, t.elapsed()))
}

async fn post_probe(addr: &str) -> anyhow::Result<Value> {
    let stream = tokio::net::TcpStream::connect(addr).await?;
    let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(conn);
    let req = hyper::Request::post("/v1/events?wait=true")
        .header("host", addr)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from_static(br#"{"name":"work.Probe"}"#)))?;
    let body = send
        .send_request(req)
        .await?
        .into_body()
        .collect()
        .await?
        .to_bytes();
    Ok(serde_json::from_slice(&body)?)
}

fn percentile(sorted: &[Duration], q: f64) -> f64 {
    let i = ((sorted.len() as f64 * q) as usize).min(sorted.len() - 1);
    (sorted[i].as_secs_f64() * 1e5).round() / 100.0
}

async fn reload_latency(dir: &Path) -> anyhow::Result<Value> {
    std::fs::create_dir_all(dir.join("plugins"))?;
    std::fs::write(dir.join("plugins/ver.wat"), emitter(0))?;
    std::fs::write(
        dir.join("router.toml"),
        "[server]\nlisten = \"127.0.0.1:0\"\n[plugins]\ndir = \"plugins\"\n[dead_letter]\npath = \"dead.ndjson\"\n\
         [[route]]\nname = \"work\"\nmatch = { name = \"work.*\" }\nhandlers = [\"ver\"]\n",
    )?;
    let (daemon, _) = spawn(&dir.join("router.toml"))?;
    let mut samples = Vec::new();
    for n in 1..=100 {
        let wat = emitter(n);
        let want = sha12(wat.as_bytes());
        let tmp = dir.join("plugins/.ver.tmp");
        std::fs::write(&tmp, &wat)?;
        let t = Instant::now();
        std::fs::rename(&tmp, dir.join("plugins/ver.wat"))?;
        loop {
            let r = post_probe(&daemon.addr).await?;
            if r["events"][0]["handlers"][0]["plugin_sha256"] == want.as_str() {
                samples.push(t.elapsed());
                break;
            }
            if t.elapsed() > Duration::from_secs(10) {
                bail!("version {n} not served within 10 s");
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
    samples.sort();
    Ok(
        json!({"swaps": samples.len(), "p50_ms": percentile(&samples, 0.5), "p99_ms": percentile(&samples, 0.99),
              "max_ms": percentile(&samples, 1.0)}),
    )
}

fn startup(dir: &Path) -> anyhow::Result<Value> {
    let mut wasm: Vec<PathBuf> = std::fs::read_dir("plugins/dist")
        .context("plugins/dist (run plugins/build.sh)")?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "wasm"))
        .collect();
    wasm.sort();
    wasm.truncate(10);
    if wasm.len() < 10 {
        bail!("need 10 .wasm plugins in plugins/dist, found {}", wasm.len());
    }
    std::fs::create_dir_all(dir.join("plugins"))?;
    let mut bytes = 0;
    for p in &wasm {
        bytes += std::fs::copy(p, dir.join("plugins").join(p.file_name().context("name")?))?;
    }
    std::fs::write(
        dir.join("router.toml"),
        "[server]\nlisten = \"127.0.0.1:0\"\n[plugins]\ndir = \"plugins\"\n[dead_letter]\npath = \"dead.ndjson\"\n",
    )?;
    let mut cold = Vec::new();
    let mut warm = Vec::new();
    for _ in 0..5 {
        let _ = std::fs::remove_dir_all(dir.join("data/compiled"));
        cold.push(spawn(&dir.join("router.toml"))?.1);
        warm.push(spawn(&dir.join("router.toml"))?.1);
    }
    cold.sort();
    warm.sort();
    Ok(json!({"plugins": wasm.len(), "total_wasm_bytes": bytes,
              "cold_median_ms": percentile(&cold, 0.5), "cached_median_ms": percentile(&warm, 0.5)}))
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let reload_dir = tempfile::tempdir()?;
    let reload = reload_latency(reload_dir.path()).await?;
    let start_dir = tempfile::tempdir()?;
    let start = startup(start_dir.path())?;
    println!(
        "{}",
        json!({"reload_rename_to_first_event": reload, "startup_to_listening": start})
    );
    Ok(())
}
