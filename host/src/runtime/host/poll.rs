//! WASI preview 1 `poll_oneoff`, bounded by the invocation's deadline
//! (issue 16).
//!
//! wasmtime-wasi's own `poll_oneoff` sleeps for as long as the guest asks:
//! epoch interruption cannot stop a host call, so a handler sleeping 5 s
//! held its worker 5 s and ended `ok` despite `timeout = "250ms"`. This one
//! shadows it in the linker and never waits past [`Deadline`]: a wait that
//! would end after the deadline ends the invocation as `timeout` at once.
//!
//! The audit of the other preview 1 functions: with what the sandbox grants
//! (stdin a memory pipe or closed, stdout/stderr memory pipes, no preopened
//! directories, no sockets) none of them can wait: reads and writes on
//! 0, 1 and 2 complete at once, `path_*` have no directory to open,
//! `sock_*` no socket, `sched_yield` returns. So the only wait is the clock
//! one here, and fd subscriptions are always ready:
//! - a clock subscription (realtime or monotonic, relative or absolute)
//!   is ready when its time comes;
//! - `fd_read` on 0 and `fd_write` on 1 or 2 are ready at once (`nbytes` 1,
//!   as wasmtime reports for stdio); any other fd fails the call with
//!   `EBADF`, as wasmtime does for descriptors it cannot poll;
//! - the call waits until the earliest subscription is ready and reports
//!   every subscription ready by then.
//!
//! WASI 0.2 (components) waits in `wasi:io/poll`: `pollable.block` and
//! `poll`. Their pollables are opaque futures (a clock, a stream), so
//! [`add_to_component_linker`] shadows both with the same waits run under
//! a timeout of the time left: a wait still pending at the deadline ends
//! the invocation as `timeout` then.

use std::time::{Duration, SystemTime};

use switchyard_sdk::abi;
use wasmtime::component::{Linker as ComponentLinker, Resource};
use wasmtime::{Caller, Extern, Linker, StoreContextMut};
use wasmtime_wasi::WasiView as _;
use wasmtime_wasi_io::bindings::wasi::io::poll::{Host as PollHost, HostPollable};
use wasmtime_wasi_io::poll::DynPollable;

use super::wasi::MODULE as WASI_MODULE;
use super::HostState;
use crate::runtime::failure::DeadlinePassed;
use crate::runtime::limits::Deadline;

const SUBSCRIPTION_SIZE: usize = 48;
const EVENT_SIZE: usize = 32;

const ERRNO_SUCCESS: i32 = 0;
const ERRNO_BADF: i32 = 8;
const ERRNO_FAULT: i32 = 21;
const ERRNO_INVAL: i32 = 28;

const TAG_CLOCK: u8 = 0;
const TAG_FD_READ: u8 = 1;
const TAG_FD_WRITE: u8 = 2;
const CLOCK_REALTIME: u32 = 0;
const CLOCK_MONOTONIC: u32 = 1;
const ABSTIME: u16 = 1;

/// One decoded subscription: its userdata, event type and how long until
/// it is ready.
struct Sub {
    userdata: u64,
    tag: u8,
    wait: Duration,
}

/// Replaces wasmtime-wasi's `poll_oneoff` in `linker` (added after WASI).
pub fn add_to_linker(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    linker.allow_shadowing(true);
    linker.func_wrap(
        WASI_MODULE,
        "poll_oneoff",
        |mut caller: Caller<'_, HostState>, subs: i32, events: i32, n: i32, out: i32| {
            poll_oneoff(&mut caller, subs as u32, events as u32, n as u32, out as u32)
        },
    )?;
    linker.allow_shadowing(false);
    Ok(())
}

fn range(len: usize, ptr: u32, size: usize) -> Option<std::ops::Range<usize>> {
    let start = ptr as usize;
    let end = start.checked_add(size)?;
    (end <= len).then_some(start..end)
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}

/// Decodes one subscription; `Err` is the errno the whole call returns.
fn decode(b: &[u8], now_mono: Duration, now_wall: Duration) -> Result<Sub, i32> {
    let userdata = u64_at(b, 0);
    let tag = b[8];
    let wait = match tag {
        TAG_CLOCK => {
            let (id, timeout) = (u32_at(b, 16), Duration::from_nanos(u64_at(b, 24)));
            let absolute = u16::from_le_bytes([b[40], b[41]]) & ABSTIME != 0;
            match (id, absolute) {
                (CLOCK_REALTIME | CLOCK_MONOTONIC, false) => timeout,
                (CLOCK_MONOTONIC, true) => timeout.saturating_sub(now_mono),
                (CLOCK_REALTIME, true) => timeout.saturating_sub(now_wall),
                _ => return Err(ERRNO_INVAL),
            }
        }
        TAG_FD_READ if u32_at(b, 16) == 0 => Duration::ZERO,
        TAG_FD_WRITE if matches!(u32_at(b, 16), 1 | 2) => Duration::ZERO,
        TAG_FD_READ | TAG_FD_WRITE => return Err(ERRNO_BADF),
        _ => return Err(ERRNO_INVAL),
    };
    Ok(Sub { userdata, tag, wait })
}

fn poll_oneoff(
    caller: &mut Caller<'_, HostState>,
    subs_ptr: u32,
    events_ptr: u32,
    n: u32,
    out_ptr: u32,
) -> wasmtime::Result<i32> {
    if n == 0 {
        // As in wasmtime: waiting on nothing would never end.
        return Ok(ERRNO_INVAL);
    }
    let Some(Extern::Memory(memory)) = caller.get_export(abi::EXPORT_MEMORY) else {
        return Ok(ERRNO_FAULT);
    };
    let n = n as usize;
    let len = memory.data_size(&*caller);
    let (Some(subs), Some(events), Some(out)) = (
        n.checked_mul(SUBSCRIPTION_SIZE)
            .and_then(|s| range(len, subs_ptr, s)),
        n.checked_mul(EVENT_SIZE).and_then(|s| range(len, events_ptr, s)),
        range(len, out_ptr, 4),
    ) else {
        return Ok(ERRNO_FAULT);
    };
    let state = caller.data();
    let now_mono = state.clock_origin.elapsed();
    let now_wall = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    let deadline: Deadline = state.deadline;
    let data = memory.data(&*caller);
    let mut decoded = Vec::with_capacity(n.min(1024));
    for b in data[subs].chunks_exact(SUBSCRIPTION_SIZE) {
        match decode(b, now_mono, now_wall) {
            Ok(sub) => decoded.push(sub),
            Err(errno) => return Ok(errno),
        }
    }
    let wait = decoded.iter().map(|s| s.wait).min().unwrap_or_default();
    deadline.allow(wait, "poll_oneoff")?;
    if !wait.is_zero() {
        std::thread::sleep(wait);
    }
    let data = memory.data_mut(&mut *caller);
    let mut count = 0u32;
    let mut at = events.start;
    for sub in decoded.iter().filter(|s| s.wait <= wait) {
        let e = &mut data[at..at + EVENT_SIZE];
        e.fill(0);
        e[0..8].copy_from_slice(&sub.userdata.to_le_bytes());
        e[8..10].copy_from_slice(&(ERRNO_SUCCESS as u16).to_le_bytes());
        e[10] = sub.tag;
        if sub.tag != TAG_CLOCK {
            e[16..24].copy_from_slice(&1u64.to_le_bytes());
        }
        at += EVENT_SIZE;
        count += 1;
    }
    debug_assert!(at <= events.end);
    data[out].copy_from_slice(&count.to_le_bytes());
    Ok(ERRNO_SUCCESS)
}

/// The guest's WASI monotonic clock: time since `origin`, the instant kept
/// in [`HostState::clock_origin`], so absolute waits can be measured.
pub struct GuestClock(pub std::time::Instant);

impl wasmtime_wasi::HostMonotonicClock for GuestClock {
    fn resolution(&self) -> u64 {
        1
    }

    fn now(&self) -> u64 {
        u64::try_from(self.0.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }
}

/// The WASI 0.2 interface whose waits are shadowed, as wasmtime-wasi
/// names it in the linker (imports of older 0.2 versions resolve to it).
const P2_POLL: &str = "wasi:io/poll@0.2.12";

/// Replaces wasmtime-wasi's `wasi:io/poll` waits in a component `linker`
/// (added after WASI 0.2) with ones bounded by [`Deadline`].
pub fn add_to_component_linker(linker: &mut ComponentLinker<HostState>) -> wasmtime::Result<()> {
    linker.allow_shadowing(true);
    let mut poll = linker.instance(P2_POLL)?;
    poll.func_wrap(
        "[method]pollable.block",
        |mut store: StoreContextMut<'_, HostState>, (pollable,): (Resource<DynPollable>,)| {
            let deadline = store.data().deadline;
            let table = store.data_mut().ctx().table;
            within(deadline, "pollable.block", HostPollable::block(table, pollable))
        },
    )?;
    poll.func_wrap(
        "poll",
        |mut store: StoreContextMut<'_, HostState>, (pollables,): (Vec<Resource<DynPollable>>,)| {
            let deadline = store.data().deadline;
            let table = store.data_mut().ctx().table;
            within(deadline, "poll", PollHost::poll(table, pollables)).map(|ready| (ready,))
        },
    )?;
    linker.allow_shadowing(false);
    Ok(())
}

/// Runs a WASI 0.2 wait, ending it as `timeout` if it is still pending at
/// the deadline.
fn within<R>(
    deadline: Deadline,
    what: &str,
    wait: impl std::future::Future<Output = wasmtime::Result<R>>,
) -> wasmtime::Result<R> {
    let left = deadline.remaining();
    wasmtime_wasi::runtime::in_tokio(async { tokio::time::timeout(left, wait).await }).unwrap_or_else(|_| {
        Err(DeadlinePassed(format!(
            "wasi:io/poll {what} was still waiting at the deadline of {:?}",
            deadline.timeout
        ))
        .into())
    })
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;
    use crate::config::{Limits, PluginSettings};
    use crate::runtime::{FailureKind, Plugin, Runtime};

    /// A clock subscription (relative, or absolute on `clock` when `abs`).
    fn clock(userdata: u64, clock: u32, ns: u64, abs: bool) -> [u8; 48] {
        let mut b = [0u8; 48];
        b[0..8].copy_from_slice(&userdata.to_le_bytes());
        b[8] = TAG_CLOCK;
        b[16..20].copy_from_slice(&clock.to_le_bytes());
        b[24..32].copy_from_slice(&ns.to_le_bytes());
        b[40] = u8::from(abs);
        b
    }

    fn fd(userdata: u64, tag: u8, fd: u32) -> [u8; 48] {
        let mut b = [0u8; 48];
        b[0..8].copy_from_slice(&userdata.to_le_bytes());
        b[8] = tag;
        b[16..20].copy_from_slice(&fd.to_le_bytes());
        b
    }

    /// A handler that polls `subs` (placed at 256) and fails unless the
    /// call returns `errno` with `count` events; for absolute monotonic
    /// subscriptions, `add_now` adds the guest's `clock_time_get` to the
    /// first one's timeout.
    fn poller(subs: &[[u8; 48]], errno: i32, count: u32, add_now: bool) -> String {
        let bytes: String = subs.iter().flatten().map(|b| format!("\\{b:02x}")).collect();
        let n = subs.len();
        let add = if add_now {
            "(drop (call $now (i32.const 1) (i64.const 1) (i32.const 8)))
             (i64.store (i32.const 280) (i64.add (i64.load (i32.const 280)) (i64.load (i32.const 8))))"
        } else {
            ""
        };
        format!(
            r#"(module
              (import "wasi_snapshot_preview1" "poll_oneoff" (func $poll (param i32 i32 i32 i32) (result i32)))
              (import "wasi_snapshot_preview1" "clock_time_get" (func $now (param i32 i64 i32) (result i32)))
              (memory (export "memory") 1)
              (data (i32.const 256) "{bytes}")
              (func (export "switchyard_alloc") (param i32) (result i32) (i32.const 4096))
              (func (export "switchyard_handle") (param i32 i32) (result i32)
                {add}
                (if (i32.ne (call $poll (i32.const 256) (i32.const 1024) (i32.const {n}) (i32.const 16))
                            (i32.const {errno})) (then unreachable))
                (if (i32.ne (i32.load (i32.const 16)) (i32.const {count})) (then unreachable))
                (i32.const 0)))"#
        )
    }

    fn run(wat: &str) -> (Result<(), crate::runtime::failure::Failure>, Duration) {
        let rt = Runtime::new(1).unwrap();
        let settings = PluginSettings {
            limits: Limits::default(),
            config: serde_json::json!({}),
        };
        let p = Plugin::from_bytes(&rt, "p", "p.wat".as_ref(), wat.as_bytes(), settings).unwrap();
        let t = Instant::now();
        let inv = p.invoke(b"{}");
        (inv.outcome, t.elapsed())
    }

    const FIVE_S: u64 = 5_000_000_000;

    #[test]
    fn ready_fds_answer_at_once_despite_a_long_clock() {
        let subs = [
            clock(1, CLOCK_MONOTONIC, FIVE_S, false),
            fd(2, TAG_FD_WRITE, 1),
            fd(3, TAG_FD_READ, 0),
        ];
        let (outcome, took) = run(&poller(&subs, 0, 2, false));
        assert_eq!(outcome, Ok(()));
        assert!(took < Duration::from_secs(2), "{took:?}");
    }

    #[test]
    fn bad_descriptors_and_clocks_are_errors_not_waits() {
        assert_eq!(
            run(&poller(&[fd(1, TAG_FD_READ, 7)], ERRNO_BADF, 0, false)).0,
            Ok(())
        );
        assert_eq!(
            run(&poller(&[fd(1, TAG_FD_WRITE, 0)], ERRNO_BADF, 0, false)).0,
            Ok(())
        );
        assert_eq!(
            run(&poller(&[clock(1, 2, 1, false)], ERRNO_INVAL, 0, false)).0,
            Ok(())
        );
        assert_eq!(run(&poller(&[], ERRNO_INVAL, 0, false)).0, Ok(()));
    }

    #[test]
    fn absolute_and_realtime_waits_past_the_deadline_are_timeouts() {
        let wall = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap();
        let cases = [
            poller(&[clock(1, CLOCK_MONOTONIC, FIVE_S, true)], 0, 1, true),
            poller(
                &[clock(1, CLOCK_REALTIME, wall.as_nanos() as u64 + FIVE_S, true)],
                0,
                1,
                false,
            ),
            poller(&[clock(1, CLOCK_REALTIME, FIVE_S, false)], 0, 1, false),
        ];
        for wat in cases {
            let (outcome, took) = run(&wat);
            assert_eq!(outcome.unwrap_err().kind, FailureKind::Timeout);
            assert!(took < Duration::from_secs(2), "{took:?}");
        }
        // An absolute time already past is ready at once.
        let (outcome, _) = run(&poller(&[clock(9, CLOCK_MONOTONIC, 0, true)], 0, 1, false));
        assert_eq!(outcome, Ok(()));
    }
}
