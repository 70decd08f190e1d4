//! Routing: a pure function from (routes, event) to the ordered list of routes
//! that take the event, with their handlers and sinks. No I/O here.

use serde_json::Value;

use crate::event::version::VersionReq;
use crate::event::Event;

/// A compiled glob over event names or sources: `*` is any run of characters
/// (dots included), `?` one character, `[a-z]` a class, `{a,b}` alternatives.
#[derive(Debug, Clone)]
pub struct NameGlob {
    pattern: String,
    matcher: globset::GlobMatcher,
}

impl NameGlob {
    pub fn new(pattern: &str) -> Result<NameGlob, String> {
        if pattern.is_empty() {
            return Err("invalid glob \"\": must not be empty (use \"*\" for everything)".into());
        }
        let glob = globset::GlobBuilder::new(pattern)
            .literal_separator(false)
            .backslash_escape(true)
            .build()
            .map_err(|e| format!("invalid glob {pattern:?}: {}", e.kind()))?;
        Ok(NameGlob {
            pattern: pattern.to_string(),
            matcher: glob.compile_matcher(),
        })
    }

    pub fn is_match(&self, text: &str) -> bool {
        self.matcher.is_match(text)
    }

    pub fn as_str(&self) -> &str {
        &self.pattern
    }
}

/// A dotted path into `data` or `meta` (`user.id`).
#[derive(Debug, Clone, PartialEq)]
pub struct FieldPath {
    text: String,
    segments: Vec<String>,
}

impl FieldPath {
    pub fn new(text: &str) -> Result<FieldPath, String> {
        let segments: Vec<String> = text.split('.').map(str::to_string).collect();
        if segments.iter().any(String::is_empty) {
            return Err(format!("invalid field path {text:?}: empty segment"));
        }
        Ok(FieldPath {
            text: text.to_string(),
            segments,
        })
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    pub fn lookup<'v>(&self, root: &'v Value) -> Option<&'v Value> {
        Event::lookup(root, &self.segments)
    }
}

/// A test on one field of `data` or `meta`.
#[derive(Debug, Clone, PartialEq)]
pub enum Predicate {
    /// The field equals this value (numbers compare by value: `7 == 7.0`).
    Equals(Value),
    /// The field is present (`true`) or absent (`false`).
    Exists(bool),
    /// The field equals one of these values.
    OneOf(Vec<Value>),
}

impl Predicate {
    fn test(&self, field: Option<&Value>) -> bool {
        match (self, field) {
            (Predicate::Exists(want), f) => f.is_some() == *want,
            (Predicate::Equals(v), Some(f)) => json_eq(v, f),
            (Predicate::OneOf(vs), Some(f)) => vs.iter().any(|v| json_eq(v, f)),
            (_, None) => false,
        }
    }
}

fn json_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => match (x.as_i64(), y.as_i64()) {
            (Some(x), Some(y)) => x == y,
            _ => x.as_f64() == y.as_f64(),
        },
        _ => a == b,
    }
}

/// What a route selects. Every part present must hold; an absent part holds.
#[derive(Debug, Clone, Default)]
pub struct Matcher {
    pub name: Option<NameGlob>,
    pub version: Option<VersionReq>,
    pub source: Option<NameGlob>,
    pub data: Vec<(FieldPath, Predicate)>,
    pub meta: Vec<(FieldPath, Predicate)>,
}

impl Matcher {
    pub fn matches(&self, ev: &Event) -> bool {
        self.name.as_ref().is_none_or(|g| g.is_match(&ev.name))
            && self.source.as_ref().is_none_or(|g| g.is_match(&ev.source))
            && self
                .version
                .as_ref()
                .is_none_or(|r| r.matches(ev.version.as_deref()))
            && self.data.iter().all(|(p, t)| t.test(p.lookup(&ev.data)))
            && self.meta.iter().all(|(p, t)| {
                let field = p
                    .segments
                    .split_first()
                    .and_then(|(first, rest)| Event::lookup(ev.meta.get(first)?, rest));
                t.test(field)
            })
    }
}

#[derive(Debug, Clone)]
pub struct Route {
    pub name: String,
    pub matcher: Matcher,
    /// Data keys that must be present; without them the route's handlers are
    /// not run and the event goes to dead letters naming the missing keys.
    pub require: Vec<FieldPath>,
    /// Plugin names, run in this order.
    pub handlers: Vec<String>,
    pub sinks: Vec<String>,
    /// Stops later routes from seeing an event this route matched.
    pub is_final: bool,
}

/// One route that takes the event.
#[derive(Debug)]
pub struct RouteMatch<'r> {
    pub route: &'r Route,
    /// Required keys the event lacks; non-empty means: dead-letter, do not run.
    pub missing: Vec<&'r str>,
}

#[derive(Debug, Clone, Default)]
pub struct Router {
    routes: Vec<Route>,
}

impl Router {
    pub fn new(routes: Vec<Route>) -> Router {
        Router { routes }
    }

    pub fn routes(&self) -> &[Route] {
        &self.routes
    }

    /// The routes that take `ev`, in config order, up to and including the
    /// first matching `final` route. Empty means unmatched.
    pub fn route(&self, ev: &Event) -> Vec<RouteMatch<'_>> {
        let mut out = Vec::new();
        for route in &self.routes {
            if !route.matcher.matches(ev) {
                continue;
            }
            let missing = route
                .require
                .iter()
                .filter(|p| p.lookup(&ev.data).is_none())
                .map(FieldPath::as_str)
                .collect();
            out.push(RouteMatch { route, missing });
            if route.is_final {
                break;
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ev(name: &str, version: Option<&str>, data: Value) -> Event {
        let mut e = Event::from_input(json!({"name": name, "data": data}), "http").unwrap();
        e.version = version.map(str::to_string);
        e
    }

    fn route(name: &str, m: Matcher) -> Route {
        Route {
            name: name.into(),
            matcher: m,
            require: vec![],
            handlers: vec![format!("h_{name}")],
            sinks: vec![],
            is_final: false,
        }
    }

    fn glob(p: &str) -> Option<NameGlob> {
        Some(NameGlob::new(p).unwrap())
    }

    fn names(r: &Router, e: &Event) -> Vec<String> {
        r.route(e).iter().map(|m| m.route.name.clone()).collect()
    }

    #[test]
    fn name_globs() {
        let g = |p: &str, n: &str| NameGlob::new(p).unwrap().is_match(n);
        assert!(g("deals.*Click", "deals.DealClick"));
        assert!(g("deals.*Click", "deals.Click"));
        assert!(!g("deals.*Click", "deals.DealClicked"));
        assert!(!g("deals.*Click", "other.DealClick"));
        assert!(g("*", "anything.at.all"));
        assert!(g("deals.*", "deals.a.b"));
        assert!(g("deals.{Click,View}", "deals.View"));
        assert!(g("a.?", "a.b"));
        assert!(!g("a.?", "a.bc"));
        assert!(g("Deals.X", "Deals.X") && !g("Deals.X", "deals.X"));
        assert!(NameGlob::new("deals.[")
            .unwrap_err()
            .contains("invalid glob \"deals.[\""));
        assert!(NameGlob::new("").is_err());
    }

    #[test]
    fn every_matching_route_in_order_until_final() {
        let mut routes = vec![
            route(
                "all",
                Matcher {
                    name: glob("*"),
                    ..Default::default()
                },
            ),
            route(
                "deals",
                Matcher {
                    name: glob("deals.*"),
                    ..Default::default()
                },
            ),
            route(
                "stop",
                Matcher {
                    name: glob("deals.Stop*"),
                    ..Default::default()
                },
            ),
            route("after", Matcher::default()),
        ];
        routes[2].is_final = true;
        let r = Router::new(routes);
        assert_eq!(
            names(&r, &ev("deals.Click", None, json!({}))),
            ["all", "deals", "after"]
        );
        assert_eq!(
            names(&r, &ev("deals.StopNow", None, json!({}))),
            ["all", "deals", "stop"]
        );
        assert_eq!(names(&r, &ev("users.Login", None, json!({}))), ["all", "after"]);
    }

    #[test]
    fn unmatched_is_empty() {
        let r = Router::new(vec![route(
            "d",
            Matcher {
                name: glob("deals.*"),
                ..Default::default()
            },
        )]);
        assert!(r.route(&ev("users.Login", None, json!({}))).is_empty());
        assert!(Router::default().route(&ev("x", None, json!({}))).is_empty());
    }

    #[test]
    fn version_ranges() {
        let m = Matcher {
            version: Some(VersionReq::parse("<2.0").unwrap()),
            ..Default::default()
        };
        let r = Router::new(vec![route("old", m)]);
        assert_eq!(names(&r, &ev("a", Some("1.2"), json!({}))), ["old"]);
        assert!(names(&r, &ev("a", Some("2.0"), json!({}))).is_empty());
        assert!(
            names(&r, &ev("a", None, json!({}))).is_empty(),
            "no version, no match"
        );
    }

    #[test]
    fn source_globs() {
        let m = Matcher {
            source: glob("tail:*"),
            ..Default::default()
        };
        let r = Router::new(vec![route("t", m)]);
        let mut e = ev("a", None, json!({}));
        assert!(names(&r, &e).is_empty());
        e.source = "tail:/var/log/app.log".into();
        assert_eq!(names(&r, &e), ["t"]);
    }

    #[test]
    fn data_and_meta_predicates() {
        let p = |s: &str| FieldPath::new(s).unwrap();
        let m = Matcher {
            data: vec![
                (p("user.tier"), Predicate::Equals(json!("gold"))),
                (p("deal_id"), Predicate::Exists(true)),
                (p("test"), Predicate::Exists(false)),
                (p("region"), Predicate::OneOf(vec![json!("eu"), json!("us")])),
                (p("qty"), Predicate::Equals(json!(2))),
            ],
            meta: vec![(p("host"), Predicate::Equals(json!("web-3")))],
            ..Default::default()
        };
        let r = Router::new(vec![route("p", m)]);
        let good = json!({"user": {"tier": "gold"}, "deal_id": 1, "region": "eu", "qty": 2.0});
        let mut e = ev("a", None, good.clone());
        e.meta.insert("host".into(), json!("web-3"));
        assert_eq!(names(&r, &e), ["p"]);
        for (key, bad) in [
            ("user", json!({"tier": "silver"})),
            ("region", json!("asia")),
            ("test", json!(true)),
            ("qty", json!("2")),
        ] {
            let mut d = good.clone();
            d[key] = bad;
            let mut e2 = e.clone();
            e2.data = d;
            assert!(names(&r, &e2).is_empty(), "{key} should not match");
        }
        let mut d = good.clone();
        d.as_object_mut().unwrap().remove("deal_id");
        let mut e3 = e.clone();
        e3.data = d;
        assert!(names(&r, &e3).is_empty(), "deal_id must exist");
        e.meta.insert("host".into(), json!("web-4"));
        assert!(names(&r, &e).is_empty(), "meta predicate");
    }

    #[test]
    fn require_reports_missing_keys_in_order() {
        let mut rt = route("r", Matcher::default());
        rt.require = vec![
            FieldPath::new("deal_id").unwrap(),
            FieldPath::new("user.id").unwrap(),
            FieldPath::new("ts").unwrap(),
        ];
        let r = Router::new(vec![rt]);
        let got = r.route(&ev("a", None, json!({"user": {"id": 1}})));
        assert_eq!(got[0].missing, ["deal_id", "ts"]);
        let got = r.route(&ev(
            "a",
            None,
            json!({"deal_id": null, "user": {"id": 1}, "ts": 0}),
        ));
        assert!(got[0].missing.is_empty(), "present with null counts as present");
        let got = r.route(&ev("a", None, json!("not an object")));
        assert_eq!(got[0].missing.len(), 3);
    }
}
