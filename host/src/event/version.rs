//! Event schema versions (`"1.2"`) and the ranges routes select them by
//! (`"<2.0"`, `">=1.2, <2"`), as balog consumers do.

use std::cmp::Ordering;
use std::fmt;

/// A dotted numeric version; missing components compare as zero (`1.2 == 1.2.0`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Version(Vec<u64>);

impl Version {
    pub fn parse(text: &str) -> Option<Version> {
        let text = text.trim();
        let text = text.strip_prefix(['v', 'V']).unwrap_or(text);
        if text.is_empty() {
            return None;
        }
        text.split('.')
            .map(|part| {
                if part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit()) {
                    None
                } else {
                    part.parse().ok()
                }
            })
            .collect::<Option<Vec<u64>>>()
            .map(Version)
    }
}

impl Ord for Version {
    fn cmp(&self, other: &Self) -> Ordering {
        let len = self.0.len().max(other.0.len());
        (0..len)
            .map(|i| {
                let a = self.0.get(i).copied().unwrap_or(0);
                let b = other.0.get(i).copied().unwrap_or(0);
                a.cmp(&b)
            })
            .find(|o| o.is_ne())
            .unwrap_or(Ordering::Equal)
    }
}

impl PartialOrd for Version {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Lt,
    Le,
    Gt,
    Ge,
    Eq,
    Ne,
}

/// A conjunction of comparisons, or `*` (any version, but one must be present).
#[derive(Debug, Clone)]
pub struct VersionReq {
    text: String,
    comparators: Vec<(Op, Version)>,
}

impl VersionReq {
    pub fn parse(text: &str) -> Result<VersionReq, String> {
        let trimmed = text.trim();
        if trimmed == "*" {
            return Ok(VersionReq {
                text: text.to_string(),
                comparators: Vec::new(),
            });
        }
        let mut comparators = Vec::new();
        for part in trimmed.split(',') {
            let part = part.trim();
            let (op, rest) = [
                (">=", Op::Ge),
                ("<=", Op::Le),
                ("==", Op::Eq),
                ("!=", Op::Ne),
                (">", Op::Gt),
                ("<", Op::Lt),
                ("=", Op::Eq),
            ]
            .iter()
            .find_map(|(sym, op)| part.strip_prefix(sym).map(|rest| (*op, rest)))
            .unwrap_or((Op::Eq, part));
            let version = Version::parse(rest).ok_or_else(|| {
                format!(
                    "invalid version range {text:?}: {part:?} is not a comparison like \">=1.2\" \
                     (operators <, <=, >, >=, =, !=; comma means and)"
                )
            })?;
            comparators.push((op, version));
        }
        Ok(VersionReq {
            text: text.to_string(),
            comparators,
        })
    }

    /// Whether an event's `version` satisfies the range. An event without a
    /// version, or with one that is not dotted numbers, matches no range.
    pub fn matches(&self, version: Option<&str>) -> bool {
        let Some(version) = version.and_then(Version::parse) else {
            return false;
        };
        self.comparators.iter().all(|(op, bound)| {
            let ord = version.cmp(bound);
            match op {
                Op::Lt => ord.is_lt(),
                Op::Le => ord.is_le(),
                Op::Gt => ord.is_gt(),
                Op::Ge => ord.is_ge(),
                Op::Eq => ord.is_eq(),
                Op::Ne => ord.is_ne(),
            }
        })
    }
}

impl fmt::Display for VersionReq {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(req: &str, v: Option<&str>) -> bool {
        VersionReq::parse(req).unwrap().matches(v)
    }

    #[test]
    fn comparisons() {
        assert!(m("<2.0", Some("1.9.9")));
        assert!(!m("<2.0", Some("2")));
        assert!(!m("<2.0", Some("2.0.0")));
        assert!(m(">=1.2, <2", Some("1.2")));
        assert!(m(">=1.2, <2", Some("1.10")));
        assert!(!m(">=1.2, <2", Some("1.1.9")));
        assert!(m("1.2", Some("1.2.0")));
        assert!(m("=1.2", Some("v1.2")));
        assert!(m("!=1.2", Some("1.3")));
        assert!(!m("!=1.2", Some("1.2")));
        assert!(m("> 1", Some("1.0.1")));
        assert!(m("<=1", Some("1.0")));
    }

    #[test]
    fn missing_or_unparsable_versions_never_match() {
        assert!(!m("<2.0", None));
        assert!(!m("*", None));
        assert!(m("*", Some("0.1")));
        assert!(!m("<2.0", Some("beta")));
        assert!(!m("<2.0", Some("1..2")));
    }

    #[test]
    fn bad_ranges_are_errors() {
        for bad in ["", "<", "~1.2", ">=1.2,", "1.x", ">= one"] {
            let err = VersionReq::parse(bad).unwrap_err();
            assert!(err.contains("invalid version range"), "{bad}: {err}");
        }
    }
}
