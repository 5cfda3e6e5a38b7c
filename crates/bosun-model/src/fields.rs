//! Reading a JSON mapping field by field, collecting every problem instead of stopping at the first.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{Map, Value as Json};

use crate::FieldError;
use crate::units::{Percentage, parse_duration, parse_percentage};

/// The problems found so far.
pub(crate) type Errors = Vec<FieldError>;

/// `path.field`, or `field` at the top.
pub(crate) fn join(path: &str, field: &str) -> String {
    if path.is_empty() { field.to_owned() } else { format!("{path}.{field}") }
}

/// Checks an HTTP header name (an RFC 9110 token).
pub(crate) fn header_name(name: &str) -> Result<(), String> {
    if !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)) {
        Ok(())
    } else {
        Err(format!("{name:?} is not an HTTP header name"))
    }
}

/// The JSON type's name, for "must be a string, not a number".
fn type_name(value: &Json) -> &'static str {
    match value {
        Json::Null => "null",
        Json::Bool(_) => "a boolean",
        Json::Number(_) => "a number",
        Json::String(_) => "a string",
        Json::Array(_) => "a list",
        Json::Object(_) => "a mapping",
    }
}

/// Whether a list is required.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Need {
    /// It may be absent or empty.
    Optional,
    /// It must be given, with at least one item; the reason given when it is empty.
    NonEmpty(&'static str),
}

/// A JSON mapping being read; [`Obj::finish`] reports the fields nobody asked for.
pub(crate) struct Obj {
    path: String,
    map: Map<String, Json>,
    known: Vec<&'static str>,
}

impl Obj {
    /// Reads `value` at `path` as a mapping.
    pub(crate) fn new(path: impl Into<String>, value: Json, errors: &mut Errors) -> Option<Self> {
        let path = path.into();
        match value {
            Json::Object(map) => Some(Self { path, map, known: Vec::new() }),
            other => {
                errors.push(FieldError::new(path, format!("must be a mapping, not {}", type_name(&other))));
                None
            }
        }
    }

    /// This mapping's path.
    pub(crate) fn path(&self) -> &str {
        &self.path
    }

    /// The path of one of this mapping's fields.
    pub(crate) fn at(&self, field: &str) -> String {
        join(&self.path, field)
    }

    /// Takes a field (null counts as absent); reports it missing if `required`.
    pub(crate) fn take(&mut self, field: &'static str, required: bool, errors: &mut Errors) -> Option<Json> {
        self.known.push(field);
        match self.map.remove(field) {
            None | Some(Json::Null) => {
                if required {
                    errors.push(FieldError::new(self.at(field), "missing"));
                }
                None
            }
            Some(value) => Some(value),
        }
    }

    /// A string field.
    pub(crate) fn string(&mut self, field: &'static str, required: bool, errors: &mut Errors) -> Option<String> {
        match self.take(field, required, errors)? {
            Json::String(s) if required && s.is_empty() => {
                errors.push(FieldError::new(self.at(field), "must not be empty"));
                None
            }
            Json::String(s) => Some(s),
            other => {
                errors.push(FieldError::new(self.at(field), format!("must be a string, not {}", type_name(&other))));
                None
            }
        }
    }

    /// An integer field, at least `min`.
    pub(crate) fn int(&mut self, field: &'static str, required: bool, min: i64, errors: &mut Errors) -> Option<i64> {
        let value = self.take(field, required, errors)?;
        match value.as_i64() {
            Some(n) if n >= min => Some(n),
            Some(_) => {
                errors.push(FieldError::new(self.at(field), format!("must be >= {min}")));
                None
            }
            None if value.is_u64() => {
                errors.push(FieldError::new(self.at(field), format!("must be at most {}", i64::MAX)));
                None
            }
            None if value.is_number() => {
                errors.push(FieldError::new(self.at(field), "must be a whole number"));
                None
            }
            None => {
                errors.push(FieldError::new(self.at(field), format!("must be a number, not {}", type_name(&value))));
                None
            }
        }
    }

    /// An integer field within `min..=max`.
    pub(crate) fn int_in(
        &mut self,
        field: &'static str,
        required: bool,
        (min, max): (i64, i64),
        errors: &mut Errors,
    ) -> Option<i64> {
        let n = self.int(field, required, i64::MIN, errors)?;
        if (min..=max).contains(&n) {
            Some(n)
        } else {
            errors.push(FieldError::new(self.at(field), format!("must be between {min} and {max}")));
            None
        }
    }

    /// A number field (decimals allowed) within `min..=max`.
    pub(crate) fn number_in(
        &mut self,
        field: &'static str,
        required: bool,
        (min, max): (f64, f64),
        errors: &mut Errors,
    ) -> Option<f64> {
        let value = self.take(field, required, errors)?;
        match value.as_f64() {
            Some(n) if (min..=max).contains(&n) => Some(n),
            Some(_) => {
                errors.push(FieldError::new(self.at(field), format!("must be between {min} and {max}")));
                None
            }
            None => {
                errors.push(FieldError::new(self.at(field), format!("must be a number, not {}", type_name(&value))));
                None
            }
        }
    }

    /// A duration field (`20ms`, `1s`, `1m`).
    pub(crate) fn duration(&mut self, field: &'static str, required: bool, errors: &mut Errors) -> Option<Duration> {
        let s = self.string(field, required, errors)?;
        parse_duration(&s).map_err(|reason| errors.push(FieldError::new(self.at(field), reason))).ok()
    }

    /// A percentage field (`"60%"`).
    pub(crate) fn percentage(
        &mut self,
        field: &'static str,
        required: bool,
        errors: &mut Errors,
    ) -> Option<Percentage> {
        let s = self.string(field, required, errors)?;
        parse_percentage(&s).map_err(|reason| errors.push(FieldError::new(self.at(field), reason))).ok()
    }

    /// A string field that must be one of `values`, read by `parse`.
    pub(crate) fn one_of<T>(
        &mut self,
        field: &'static str,
        required: bool,
        values: &[&str],
        parse: impl Fn(&str) -> Option<T>,
        errors: &mut Errors,
    ) -> Option<T> {
        let s = self.string(field, required, errors)?;
        let parsed = parse(&s);
        if parsed.is_none() {
            errors.push(FieldError::new(self.at(field), format!("must be one of {}, not {s:?}", values.join(", "))));
        }
        parsed
    }

    /// A mapping field, read by `read`.
    pub(crate) fn object<T>(
        &mut self,
        field: &'static str,
        required: bool,
        errors: &mut Errors,
        read: impl FnOnce(&mut Obj, &mut Errors) -> T,
    ) -> Option<T> {
        let value = self.take(field, required, errors)?;
        let mut obj = Obj::new(self.at(field), value, errors)?;
        let out = read(&mut obj, errors);
        obj.finish(errors);
        Some(out)
    }

    /// A list field, each item read by `read` with its path (`field[i]`); bad items are left out.
    /// A required list must not be empty either (`empty` says why).
    pub(crate) fn list<T>(
        &mut self,
        field: &'static str,
        required: Need,
        errors: &mut Errors,
        mut read: impl FnMut(String, Json, &mut Errors) -> Option<T>,
    ) -> Option<Vec<T>> {
        let value = self.take(field, matches!(required, Need::NonEmpty(_)), errors)?;
        let Json::Array(items) = value else {
            errors.push(FieldError::new(self.at(field), format!("must be a list, not {}", type_name(&value))));
            return None;
        };
        if let (Need::NonEmpty(reason), true) = (required, items.is_empty()) {
            errors.push(FieldError::new(self.at(field), reason));
        }
        let path = self.at(field);
        Some(items.into_iter().enumerate().filter_map(|(i, item)| read(format!("{path}[{i}]"), item, errors)).collect())
    }

    /// A list of mappings, each read by `read`.
    pub(crate) fn objects<T>(
        &mut self,
        field: &'static str,
        required: Need,
        errors: &mut Errors,
        mut read: impl FnMut(&mut Obj, &mut Errors) -> T,
    ) -> Option<Vec<T>> {
        self.list(field, required, errors, |path, item, errors| {
            let mut obj = Obj::new(path, item, errors)?;
            let out = read(&mut obj, errors);
            obj.finish(errors);
            Some(out)
        })
    }

    /// A list of non-empty strings.
    pub(crate) fn strings(&mut self, field: &'static str, required: Need, errors: &mut Errors) -> Option<Vec<String>> {
        self.list(field, required, errors, |path, item, errors| match item {
            Json::String(s) if !s.is_empty() => Some(s),
            Json::String(_) => {
                errors.push(FieldError::new(path, "must not be empty"));
                None
            }
            other => {
                errors.push(FieldError::new(path, format!("must be a string, not {}", type_name(&other))));
                None
            }
        })
    }

    /// A mapping whose values are mappings, each read by `read`; keys failing `check_key` (which
    /// says why) and values `read` refuses are left out.
    pub(crate) fn map_of<T>(
        &mut self,
        field: &'static str,
        errors: &mut Errors,
        check_key: impl Fn(&str) -> Result<(), String>,
        mut read: impl FnMut(&mut Obj, &mut Errors) -> Option<T>,
    ) -> BTreeMap<String, T> {
        let mut out = BTreeMap::new();
        let Some(value) = self.take(field, false, errors) else { return out };
        let Some(obj) = Obj::new(self.at(field), value, errors) else { return out };
        for (key, value) in obj.map {
            let path = join(&obj.path, &key);
            if let Err(reason) = check_key(&key) {
                errors.push(FieldError::new(path, reason));
                continue;
            }
            let Some(mut item) = Obj::new(path, value, errors) else { continue };
            let read = read(&mut item, errors);
            item.finish(errors);
            if let Some(read) = read {
                out.insert(key, read);
            }
        }
        out
    }

    /// A mapping of strings to strings (labels); entries that are not strings are reported and
    /// left out.
    pub(crate) fn string_map(&mut self, field: &'static str, errors: &mut Errors) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        let Some(value) = self.take(field, false, errors) else { return out };
        let Json::Object(map) = value else {
            errors.push(FieldError::new(
                self.at(field),
                format!("must be a mapping of strings, not {}", type_name(&value)),
            ));
            return out;
        };
        for (key, value) in map {
            match value {
                Json::String(s) => {
                    out.insert(key, s);
                }
                other => errors.push(FieldError::new(
                    join(&self.at(field), &key),
                    format!("must be a string, not {}", type_name(&other)),
                )),
            }
        }
        out
    }

    /// Reports the fields that were not asked for.
    pub(crate) fn finish(self, errors: &mut Errors) {
        for field in self.map.keys() {
            let reason = if self.known.is_empty() {
                "unknown field (expected none)".to_owned()
            } else {
                format!("unknown field (expected {})", self.known.join(", "))
            };
            errors.push(FieldError::new(join(&self.path, field), reason));
        }
    }
}
