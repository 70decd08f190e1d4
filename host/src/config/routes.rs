//! `[[route]]`: which events go to which handlers and sinks, checked into
//! the router's [`Route`]s (matching itself is the pure `router`).

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;
use std::path::Path;

use toml::Spanned;

use super::raw::RawRoute;
use super::validate::{line_col, listing, listing_of, toml_to_json, Validator};
use crate::event::version::VersionReq;
use crate::router::{FieldPath, Matcher, NameGlob, Predicate, Route};

impl Validator<'_> {
    /// `[[route]]`s, in order; those with errors are left out. Handlers
    /// naming no plugin file are warnings (their events are dead-lettered
    /// as `unavailable`); sinks must be declared.
    pub fn routes<S>(
        &mut self,
        raw: &[Spanned<RawRoute>],
        known: Option<&BTreeSet<String>>,
        sinks: &BTreeMap<String, S>,
        plugins_dir: &Path,
    ) -> Vec<Route> {
        let mut routes: Vec<Route> = Vec::new();
        let mut seen: BTreeMap<String, (usize, usize)> = BTreeMap::new();
        for spanned in raw {
            let r = spanned.get_ref();
            let name = r.name.get_ref().clone();
            let here = line_col(self.src, r.name.span().start);
            if name.is_empty() {
                self.error(Some(r.name.span()), "route.name: must not be empty".into());
            } else if let Some((line, col)) = seen.get(&name) {
                self.error(
                    Some(r.name.span()),
                    format!(
                        "route {name:?}: duplicate route name (first defined at line {line}, column {col})"
                    ),
                );
            } else {
                seen.insert(name.clone(), here);
            }
            if let Some(route) = self.route(r, spanned.span(), known, sinks, plugins_dir) {
                routes.push(route);
            }
        }
        routes
    }

    fn route<S>(
        &mut self,
        r: &RawRoute,
        span: Range<usize>,
        known: Option<&BTreeSet<String>>,
        sinks: &BTreeMap<String, S>,
        plugins_dir: &Path,
    ) -> Option<Route> {
        let before = self.errors.len();
        let what = format!("route {:?}", r.name.get_ref());
        let m = &r.matcher;
        let name = m.name.as_ref().and_then(|g| {
            self.check(
                g.span(),
                &format!("{what}: match.name"),
                NameGlob::new(g.get_ref()),
            )
        });
        let source = m.source.as_ref().and_then(|g| {
            self.check(
                g.span(),
                &format!("{what}: match.source"),
                NameGlob::new(g.get_ref()),
            )
        });
        let version = m.version.as_ref().and_then(|v| {
            self.check(
                v.span(),
                &format!("{what}: match.version"),
                VersionReq::parse(v.get_ref()),
            )
        });
        let data = self.predicates(&m.data, &format!("{what}: match.data"));
        let meta = self.predicates(&m.meta, &format!("{what}: match.meta"));
        let mut require = Vec::new();
        for key in &r.require {
            if let Some(p) = self.check(
                key.span(),
                &format!("{what}: require"),
                FieldPath::new(key.get_ref()),
            ) {
                require.push(p);
            }
        }
        for h in &r.handlers {
            if let Some(known) = known {
                if !known.contains(h.get_ref()) {
                    self.warn(
                        Some(h.span()),
                        format!(
                            "{what}: handlers: unknown plugin {:?}: no {0}.wasm or {0}.wat in {} ({}); \
                             its events go to dead letters as `unavailable`",
                            h.get_ref(),
                            plugins_dir.display(),
                            listing(known)
                        ),
                    );
                }
            }
        }
        for s in &r.sinks {
            if !sinks.contains_key(s.get_ref()) {
                let names: BTreeSet<String> = sinks.keys().cloned().collect();
                self.error(
                    Some(s.span()),
                    format!(
                        "{what}: sinks: unknown sink {:?} ({})",
                        s.get_ref(),
                        listing_of("sinks", &names)
                    ),
                );
            }
        }
        if r.handlers.is_empty() && r.sinks.is_empty() {
            self.error(
                Some(span),
                format!("{what}: has neither handlers nor sinks, so it would do nothing"),
            );
        }
        if self.errors.len() > before {
            return None;
        }
        Some(Route {
            name: r.name.get_ref().clone(),
            matcher: Matcher {
                name,
                version,
                source,
                data,
                meta,
            },
            require,
            handlers: r.handlers.iter().map(|h| h.get_ref().clone()).collect(),
            sinks: r.sinks.iter().map(|s| s.get_ref().clone()).collect(),
            is_final: r.is_final,
        })
    }

    fn predicates(
        &mut self,
        table: &BTreeMap<String, Spanned<toml::Value>>,
        what: &str,
    ) -> Vec<(FieldPath, Predicate)> {
        let mut out = Vec::new();
        for (key, value) in table {
            let Some(path) = self.check(value.span(), what, FieldPath::new(key)) else {
                continue;
            };
            let predicate = match value.get_ref() {
                toml::Value::Table(t) => match (t.len(), t.get("exists"), t.get("one_of")) {
                    (1, Some(toml::Value::Boolean(b)), _) => Ok(Predicate::Exists(*b)),
                    (1, _, Some(toml::Value::Array(vs))) => {
                        Ok(Predicate::OneOf(vs.iter().map(toml_to_json).collect()))
                    }
                    _ => Err(format!(
                        "{key:?}: a predicate is a value, {{ exists = true|false }} or {{ one_of = [..] }}"
                    )),
                },
                other => Ok(Predicate::Equals(toml_to_json(other))),
            };
            if let Some(p) = self.check(value.span(), what, predicate) {
                out.push((path, p));
            }
        }
        out
    }
}
