//! Which changed settings a reload cannot apply. A reload swaps in routes,
//! sinks, plugins and their limits, and `[auth]`; listeners, the queue
//! (`[server] queue` and `[queue]`), the workers, the dead-letter log, the state folder, the stream hub and
//! the tail sources are set up once, at start.
//!
//! There is no list of them to keep: [`Config`]'s serialized form holds
//! exactly the restart-only settings (every live field is
//! `#[serde(skip)]`), and this diffs the old and new forms.

use serde_json::Value;

use super::Config;

/// The settings, named as in router.toml (`server.listen`,
/// `admin.listen`, `stream.buffer`, `source.tail`, ...), whose value differs
/// between `old` and `new` and which only take effect at the next restart.
/// In the order of [`Config`]'s fields; empty when a reload applies every
/// change.
pub fn restart_only_changes(old: &Config, new: &Config) -> Vec<String> {
    let (old, new) = (form(old), form(new));
    let mut changed = Vec::new();
    for (key, was) in old.as_object().into_iter().flatten() {
        let now = &new[key];
        match (was, now) {
            // A section: each of its keys is a setting of its own.
            (Value::Object(was), Value::Object(now)) => {
                for (k, v) in was {
                    if now.get(k) != Some(v) {
                        changed.push(format!("{key}.{k}"));
                    }
                }
            }
            _ if was != now => changed.push(key.clone()),
            _ => {}
        }
    }
    changed
}

fn form(config: &Config) -> Value {
    serde_json::to_value(config).expect("settings serialize to JSON")
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::path::Path;

    use super::*;

    fn parse(src: &str) -> Config {
        Config::parse(src, Path::new("router.toml"), Path::new("/etc/sy"), |_| {
            Ok(BTreeSet::from(["audit".to_string()]))
        })
        .unwrap_or_else(|e| panic!("{e}"))
    }

    const BASE: &str =
        "[server]\nlisten = \"127.0.0.1:7600\"\n\n[[route]]\nname = \"a\"\nhandlers = [\"audit\"]\n";

    #[test]
    fn live_changes_are_not_reported() {
        let old = parse(BASE);
        assert!(restart_only_changes(&old, &old.clone()).is_empty());
        let new = parse(&format!(
            "{BASE}match = {{ name = \"x.*\" }}\n\n[router]\nhop_limit = 3\n\n[plugins]\nfuel = 5\nlog_rate = 7\n\n\
             [sink.out]\ntype = \"stdout\"\n\n[auth]\ningest = {{ env = \"PATH\" }}\n"
        ));
        assert_eq!(restart_only_changes(&old, &new), Vec::<String>::new());
    }

    #[test]
    fn each_restart_only_setting_is_named_as_in_the_file() {
        let old = parse(BASE);
        let new = parse(
            "[server]\nlisten = \"127.0.0.1:7700\"\nsend_timeout = \"3s\"\n\n[admin]\nlisten = \"127.0.0.1:7601\"\n\n\
             [stream]\nbuffer = 8\n\n[queue]\nsync = \"interval\"\nmax_deliveries = 3\n\n\
             [dead_letter]\npath = \"dl.ndjson\"\n\n[state]\ndir = \"st\"\n\n\
             [[source.tail]]\npath = \"app.log\"\n\n[[route]]\nname = \"a\"\nhandlers = [\"audit\"]\n",
        );
        assert_eq!(
            restart_only_changes(&old, &new),
            [
                "server.listen",
                "server.send_timeout",
                "dead_letter.path",
                "state.dir",
                "source.tail",
                "admin.listen",
                "stream.buffer",
                "queue.sync",
                "queue.max_deliveries",
            ]
        );
    }

    #[test]
    fn a_changed_tail_source_is_told() {
        let tail = |format: &str| {
            parse(&format!(
                "[[source.tail]]\npath = \"app.log\"\nformat = \"regex\"\npattern = \"{format}\"\n\n{BASE}"
            ))
        };
        let (old, new) = (tail("(?P<name>\\\\w+)"), tail("(?P<name>\\\\S+)"));
        assert_eq!(restart_only_changes(&old, &new), ["source.tail"]);
        assert!(restart_only_changes(&old, &old.clone()).is_empty());
    }
}
