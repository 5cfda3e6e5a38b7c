//! Label selectors in Kubernetes' syntax: `app=reviews,tier!=db,env in (a,b),!canary,version`.

use std::fmt;

use crate::error::{Result, StoreError};
use crate::types::Labels;

/// A conjunction of label requirements; the empty selector matches everything.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Selector {
    requirements: Vec<Requirement>,
    text: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Requirement {
    Equals(String, String),
    NotEquals(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    NotExists(String),
}

impl Requirement {
    fn matches(&self, labels: &Labels) -> bool {
        match self {
            Self::Equals(k, v) => labels.get(k) == Some(v),
            Self::NotEquals(k, v) => labels.get(k) != Some(v),
            Self::In(k, vs) => labels.get(k).is_some_and(|v| vs.contains(v)),
            Self::NotIn(k, vs) => labels.get(k).is_none_or(|v| !vs.contains(v)),
            Self::Exists(k) => labels.contains_key(k),
            Self::NotExists(k) => !labels.contains_key(k),
        }
    }
}

impl Selector {
    /// Every value.
    pub fn everything() -> Self {
        Self::default()
    }

    /// Parses a selector; an error names `selector` and what is wrong.
    pub fn parse(text: &str) -> Result<Self> {
        let mut requirements = Vec::new();
        for part in split_top_level(text)? {
            let part = part.trim();
            if part.is_empty() {
                if text.trim().is_empty() {
                    continue;
                }
                return Err(bad(text, "empty requirement"));
            }
            requirements.push(parse_requirement(part).map_err(|reason| bad(text, &reason))?);
        }
        Ok(Self { requirements, text: text.trim().to_owned() })
    }

    /// Whether `labels` meet every requirement.
    pub fn matches(&self, labels: &Labels) -> bool {
        self.requirements.iter().all(|r| r.matches(labels))
    }

    /// Whether this selector matches everything.
    pub fn is_empty(&self) -> bool {
        self.requirements.is_empty()
    }

    /// The selector as written (trimmed).
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

impl fmt::Debug for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Selector({:?})", self.text)
    }
}

fn bad(text: &str, reason: &str) -> StoreError {
    StoreError::invalid("selector", format!("{text:?}: {reason}"))
}

/// Splits at commas outside parentheses.
fn split_top_level(text: &str) -> Result<Vec<&str>> {
    let (mut parts, mut depth, mut start) = (Vec::new(), 0usize, 0);
    for (i, c) in text.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth = depth.checked_sub(1).ok_or_else(|| bad(text, "unbalanced ')'"))?,
            ',' if depth == 0 => {
                parts.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    if depth != 0 {
        return Err(bad(text, "unbalanced '('"));
    }
    parts.push(&text[start..]);
    Ok(parts)
}

fn parse_requirement(part: &str) -> std::result::Result<Requirement, String> {
    if let Some(key) = part.strip_prefix('!') {
        return Ok(Requirement::NotExists(label_key(key.trim())?));
    }
    for (op, make) in [
        ("!=", Requirement::NotEquals as fn(String, String) -> Requirement),
        ("==", Requirement::Equals),
        ("=", Requirement::Equals),
    ] {
        if let Some((key, value)) = part.split_once(op) {
            return Ok(make(label_key(key.trim())?, label_value(value.trim())?));
        }
    }
    let mut words = part.splitn(2, char::is_whitespace);
    let key = words.next().unwrap_or_default();
    let rest = words.next().unwrap_or_default().trim();
    if rest.is_empty() {
        return Ok(Requirement::Exists(label_key(key)?));
    }
    let (negate, set) = if let Some(set) = rest.strip_prefix("notin") {
        (true, set)
    } else if let Some(set) = rest.strip_prefix("in") {
        (false, set)
    } else {
        return Err(format!("{part:?}: expected =, ==, !=, in or notin after {key:?}"));
    };
    let set = set.trim();
    let inner = set
        .strip_prefix('(')
        .and_then(|s| s.strip_suffix(')'))
        .ok_or_else(|| format!("{part:?}: the values of in/notin go in parentheses"))?;
    let values = inner.split(',').map(|v| label_value(v.trim())).collect::<std::result::Result<Vec<_>, _>>()?;
    let key = label_key(key)?;
    Ok(if negate { Requirement::NotIn(key, values) } else { Requirement::In(key, values) })
}

fn label_key(key: &str) -> std::result::Result<String, String> {
    crate::validate::label_key(key).map(|()| key.to_owned())
}

fn label_value(value: &str) -> std::result::Result<String, String> {
    crate::validate::label_value(value).map(|()| value.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    #[test]
    fn every_operator_matches_as_kubernetes_does() {
        let l = labels(&[("app", "reviews"), ("tier", "web"), ("env", "prod")]);
        let cases = [
            ("", true),
            ("app=reviews", true),
            ("app==reviews", true),
            ("app=ratings", false),
            ("app!=ratings", true),
            ("missing!=x", true),
            ("env in (prod, staging)", true),
            ("env notin (prod)", false),
            ("missing notin (prod)", true),
            ("tier", true),
            ("!tier", false),
            ("!canary", true),
            ("app=reviews,tier=web,env in (prod)", true),
            ("app=reviews,tier=db", false),
        ];
        for (text, want) in cases {
            assert_eq!(Selector::parse(text).unwrap().matches(&l), want, "{text}");
        }
    }

    #[test]
    fn malformed_selectors_are_refused_with_a_reason() {
        for (text, want) in [
            ("app=reviews,", "empty requirement"),
            ("env in prod", "parentheses"),
            ("env in (prod", "unbalanced"),
            ("app ~ x", "expected =, ==, !=, in or notin"),
            ("=x", "label key"),
            ("app=a b", "label value"),
        ] {
            let err = Selector::parse(text).expect_err(text).to_string();
            assert!(err.starts_with("selector: ") && err.contains(want), "{text}: {err}");
        }
    }
}
