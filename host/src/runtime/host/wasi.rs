//! WASI preview 1 for core modules, and WASI 0.2 for components, from one
//! context with nothing granted (ABI.md, "WASI"): no preopened
//! directories, no environment (a command gets its config in one
//! variable), no sockets; clocks and random work; stdout and stderr are
//! captured in memory and become log lines (stdout lines that are JSON
//! objects are a command's emits). `poll_oneoff`, and WASI 0.2's
//! `wasi:io/poll` waits, are replaced by the deadline-bounded ones in
//! [`super::poll`]. WASI 0.2's sockets are linked but can reach nothing (the
//! context's address check refuses every address, and name lookup is off).

use std::time::Instant;

use anyhow::Context as _;
use switchyard_sdk::abi;
use wasmtime::Linker;
use wasmtime_wasi::p1::WasiP1Ctx;
use wasmtime_wasi::p2::pipe::{MemoryInputPipe, MemoryOutputPipe};
use wasmtime_wasi::{WasiCtxBuilder, WasiCtxView, WasiView};

use super::HostState;

/// The WASI preview 1 import module.
pub const MODULE: &str = "wasi_snapshot_preview1";

/// Bytes of stdout and of stderr kept per instance.
const MAX_STDIO: usize = 1 << 20;

/// One instance's WASI context and what it captures.
pub struct WasiState {
    pub ctx: WasiP1Ctx,
    pub stdio: Stdio,
}

/// What a guest that reads its event on stdin is given besides captured
/// stdio (ABI.md, "Command plugins").
pub struct CommandInput<'a> {
    /// The command's stdin: the event and a newline.
    pub stdin: Vec<u8>,
    /// The plugin's config as JSON text, in [`abi::COMMAND_CONFIG_ENV`].
    pub config: &'a str,
}

impl WasiState {
    /// A context whose program name is `name`, whose monotonic clock starts
    /// at `clock_origin`, with stdio captured; `command` gives a command
    /// its stdin and config.
    pub fn new(name: &str, clock_origin: Instant, command: Option<CommandInput<'_>>) -> WasiState {
        let stdio = Stdio {
            out: MemoryOutputPipe::new(MAX_STDIO),
            err: MemoryOutputPipe::new(MAX_STDIO),
            read: (0, 0),
        };
        let mut b = WasiCtxBuilder::new();
        b.arg(name)
            .stdout(stdio.out.clone())
            .stderr(stdio.err.clone())
            .monotonic_clock(super::poll::GuestClock(clock_origin));
        if let Some(c) = command {
            b.stdin(MemoryInputPipe::new(c.stdin))
                .env(abi::COMMAND_CONFIG_ENV, c.config);
        }
        WasiState {
            ctx: b.build_p1(),
            stdio,
        }
    }
}

/// What a WASI guest writes to stdout and stderr, and how much of it has
/// been turned into log lines already.
pub struct Stdio {
    out: MemoryOutputPipe,
    err: MemoryOutputPipe,
    /// Bytes of (stdout, stderr) already returned by [`Stdio::new_lines`].
    read: (usize, usize),
}

impl Stdio {
    /// Lines written since the last call, as (stdout, stderr).
    pub fn new_lines(&mut self) -> (Vec<String>, Vec<String>) {
        let (out, err) = (self.out.contents(), self.err.contents());
        let fresh = (lines(&out[self.read.0..]), lines(&err[self.read.1..]));
        self.read = (out.len(), err.len());
        fresh
    }

    /// Bytes of stdout and stderr turned into lines so far (all that was
    /// written, once an invocation has finished).
    pub fn written(&self) -> usize {
        self.read.0 + self.read.1
    }

    /// The last line on stderr, if any.
    pub fn last_err_line(&self) -> Option<String> {
        lines(&self.err.contents()).pop()
    }
}

fn lines(bytes: &[u8]) -> Vec<String> {
    if bytes.is_empty() {
        return Vec::new();
    }
    String::from_utf8_lossy(bytes)
        .lines()
        .map(|l| l.trim_end_matches('\r').to_string())
        .filter(|l| !l.is_empty())
        .collect()
}

/// Links WASI preview 1, then shadows its `poll_oneoff`.
pub fn add_to_linker(linker: &mut Linker<HostState>) -> anyhow::Result<()> {
    wasmtime_wasi::p1::add_to_linker_sync(linker, |s: &mut HostState| {
        &mut s
            .wasi
            .as_mut()
            .expect("a WASI context is made for every module that imports WASI")
            .ctx
    })
    .map_err(anyhow::Error::from)
    .context("cannot link WASI")?;
    super::poll::add_to_linker(linker)
        .map_err(anyhow::Error::from)
        .context("cannot link the deadline-bounded poll_oneoff")
}

/// WASI 0.2 (components) reads the same context as preview 1.
impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        self.wasi
            .as_mut()
            .expect("a WASI context is made for every component that imports WASI")
            .ctx
            .ctx()
    }
}

/// Links WASI 0.2 into a component linker, then shadows its waits.
pub fn add_to_component_linker(linker: &mut wasmtime::component::Linker<HostState>) -> anyhow::Result<()> {
    wasmtime_wasi::p2::add_to_linker_sync(linker)
        .map_err(anyhow::Error::from)
        .context("cannot link WASI 0.2")?;
    super::poll::add_to_component_linker(linker)
        .map_err(anyhow::Error::from)
        .context("cannot link the deadline-bounded wasi:io/poll")
}
