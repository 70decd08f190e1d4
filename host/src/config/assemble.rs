//! From router.toml as written ([`RawConfig`]) to a [`Config`]: each
//! section checked by its own module, in the order of the file's sections.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use super::raw::RawConfig;
use super::validate::Validator;
use super::{Config, ConfigErrors, DEFAULT_MAX_CASCADE, DEFAULT_MAX_CASCADE_BYTES};
use crate::config::Limits;

impl Validator<'_> {
    /// Every section of `raw`, with relative paths resolved against `base`;
    /// `file` and `warnings` are left empty for the caller.
    pub fn config(
        &mut self,
        raw: RawConfig,
        base: &Path,
        list_plugins: impl FnOnce(&Path) -> Result<BTreeSet<String>, String>,
    ) -> Config {
        let server = self.server(&raw.server);
        let default_limits = self.limits(raw.plugins.limits(), "plugins", Limits::default());
        let plugins_dir = base.join(raw.plugins.dir.as_ref().map_or("plugins/dist", |d| d.get_ref()));
        let known = self.known_plugins(&raw.plugins, &plugins_dir, list_plugins);
        let plugin_settings = self.plugin_settings(&raw, default_limits, known.as_ref(), &plugins_dir);
        let hop_limit = self.int(&raw.router.hop_limit, "router.hop_limit", 1..256, 8) as u32;
        let max_cascade = self.int(
            &raw.router.max_cascade,
            "router.max_cascade",
            1..1_000_001,
            DEFAULT_MAX_CASCADE.into(),
        ) as u32;
        let max_cascade_bytes = self.size(
            &raw.router.max_cascade_bytes,
            "router.max_cascade_bytes",
            1..(1 << 30) + 1,
            DEFAULT_MAX_CASCADE_BYTES,
        );
        let dead_letter = base.join(
            raw.dead_letter
                .path
                .as_ref()
                .map_or("data/dead-letter.ndjson", |p| p.get_ref()),
        );
        let state_dir = base.join(raw.state.dir.as_ref().map_or("data", |d| d.get_ref()));
        let tail_sources = self.tail_sources(&raw.source.tail, base);
        let sinks = self.sinks(&raw.sinks, base);
        let admin_listen = self.admin(&raw.admin, server.listen);
        let auth = self.auth(&raw.auth, base);
        let stream = self.stream(&raw.stream);
        let queue = self.queue(&raw.queue);
        let plugin_log = self.log_limit(&raw.plugins);
        let loading = self.load_limits(&raw.plugins);
        let routes = self.routes(&raw.routes, known.as_ref(), &raw.sinks, &plugins_dir);
        Config {
            file: PathBuf::new(),
            warnings: ConfigErrors {
                file: PathBuf::new(),
                errors: Vec::new(),
            },
            server,
            plugins_dir,
            default_limits,
            loading,
            plugin_settings,
            hop_limit,
            max_cascade,
            max_cascade_bytes,
            dead_letter,
            state_dir,
            tail_sources,
            routes,
            sinks,
            admin_listen,
            auth,
            stream,
            queue,
            plugin_log,
        }
    }
}
