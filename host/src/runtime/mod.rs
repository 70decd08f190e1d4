//! The WebAssembly sandbox: one engine (pooling allocator, fuel, epoch
//! deadlines, bounded stack) and one linker, shared by every plugin.
//!
//! - [`guest`]: one executor per kind of guest (core handler, command,
//!   component),
//!   behind the `Guest` trait; [`host`]: the host imports, one module per
//!   capability, and the one signature table the linker and the load-time
//!   check share;
//! - [`plugin`]: loading and checking a plugin; [`invoke`]: running one
//!   event in a fresh or kept instance; [`limits`]: fuel, memory cap and
//!   deadline; [`failure`]: the failure kinds;
//! - [`compile`]: compiles off the reload path within size and time
//!   limits; [`cache`]: compiled modules and components on disk;
//!   [`artifact`]: a module or a component, told apart when compiled;
//! - [`host::log_limit`]: the per-plugin rate limit on forwarded log lines.
//!
//! Where new things go: a kind of guest (as components were, issue 14) is one
//! module in `guest/` implementing `guest::Guest` and `guest::Instance`,
//! plus one arm of `guest::PluginKind` and of `guest::executor`; a host
//! capability (KV, issue 15) is one module in `host/` with its state, its
//! `Import` rows and its `add_to_linker`, plus one entry of
//! `host::CAPABILITIES`.

pub mod artifact;
pub mod cache;
pub mod compile;
pub mod failure;
pub mod guest;
pub mod host;
pub mod invoke;
pub mod limits;
pub mod plugin;

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use wasmtime::{Config, Engine, InstanceAllocationStrategy, Linker, OptLevel, PoolingAllocationConfig};

pub use failure::FailureKind;
pub use host::{CascadeBudget, Emitted, Level, Refused};
pub use invoke::{Invocation, Warm};
pub use plugin::{FileFacts, Plugin};

use crate::config::MAX_PLUGIN_MEMORY;
use host::HostState;

/// How often the epoch advances; deadlines are rounded up to it.
const EPOCH_TICK: Duration = Duration::from_millis(2);
/// Wasm stack per invocation; recursion past it is `stack_overflow`.
pub const MAX_WASM_STACK: usize = 512 << 10;
/// Core instances one component may have, and per instance slot in the
/// pool.
const CORE_PER_COMPONENT: u32 = 32;
/// Native stack of threads that run wasm: comfortably above `MAX_WASM_STACK`.
pub const WORKER_STACK: usize = 8 << 20;

pub struct Runtime {
    engine: Engine,
    /// WASI preview 1 plus the `switchyard` imports; built once.
    linker: Linker<HostState>,
    /// WASI 0.2 plus the `switchyard:handler` world's imports, for
    /// components; built once.
    component_linker: wasmtime::component::Linker<HostState>,
    /// Each plugin's log rate budget, by name: outlives plugin versions.
    log_budgets: host::log_limit::LogBudgets,
}

impl Runtime {
    /// `concurrency` is how many invocations may run at once (worker
    /// threads); the instance pool is sized from it: per worker one
    /// instance running and the ones it keeps for reuse, plus a few for
    /// trial instantiations at load.
    pub fn new(concurrency: usize) -> anyhow::Result<Arc<Runtime>> {
        let per_worker = invoke::WARM_PER_WORKER + 1;
        let slots = u32::try_from(concurrency.saturating_mul(per_worker))
            .unwrap_or(u32::MAX / 2)
            .saturating_add(8);
        let mut pool = PoolingAllocationConfig::new();
        pool.total_core_instances(slots.saturating_mul(16))
            .total_memories(slots.saturating_mul(2))
            .total_tables(slots.saturating_mul(4))
            .max_memories_per_module(1)
            .max_tables_per_module(4)
            .table_elements(100_000)
            .max_memory_size(MAX_PLUGIN_MEMORY as usize)
            // A component is several core instances (its modules, and the
            // shims and adapters its toolchain adds): a Python component
            // has about a dozen, sharing one or two memories and tables.
            .total_component_instances(slots)
            .max_core_instances_per_component(CORE_PER_COMPONENT)
            .max_memories_per_component(4)
            .max_tables_per_component(8)
            .linear_memory_keep_resident(64 << 10)
            .pagemap_scan(wasmtime::Enabled::Auto);
        let mut config = Config::new();
        config
            .consume_fuel(true)
            .epoch_interruption(true)
            .max_wasm_stack(MAX_WASM_STACK)
            .cranelift_opt_level(OptLevel::Speed)
            .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        let engine = Engine::new(&config)
            .map_err(anyhow::Error::from)
            .context("cannot create the wasm engine")?;
        let mut linker = Linker::new(&engine);
        host::add_to_linker(&mut linker)?;
        let mut component_linker = wasmtime::component::Linker::new(&engine);
        host::add_to_component_linker(&mut component_linker)?;
        start_epoch_ticker(&engine);
        Ok(Arc::new(Runtime {
            engine,
            linker,
            component_linker,
            log_budgets: Default::default(),
        }))
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Epoch ticks for a deadline: rounded up, plus one for the tick in progress.
    fn deadline_ticks(timeout: Duration) -> u64 {
        (timeout.as_nanos().div_ceil(EPOCH_TICK.as_nanos()) as u64).saturating_add(1)
    }
}

/// Advances the engine's epoch every tick until the engine is dropped.
fn start_epoch_ticker(engine: &Engine) {
    let weak = engine.weak();
    std::thread::Builder::new()
        .name("epoch-ticker".into())
        .spawn(move || loop {
            std::thread::sleep(EPOCH_TICK);
            match weak.upgrade() {
                Some(engine) => engine.increment_epoch(),
                None => return,
            }
        })
        .expect("spawn the epoch ticker thread");
}
