//! What became of each document: enforced by Envoy, partly, served to SDKs only, invalid, or
//! waiting for a document it names.

use serde::Serialize;

/// The status of one governance document after translation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state")]
pub enum Status {
    /// Envoy enforces all of it; `how` says with what.
    Enforced {
        /// What Envoy does, one line per part.
        how: Vec<String>,
    },
    /// Envoy enforces some of it.
    Partial {
        /// What Envoy does.
        how: Vec<String>,
        /// What it does not, each with why.
        left_out: Vec<String>,
    },
    /// Envoy enforces none of it; SDKs (which receive every rule) may.
    SdkOnly {
        /// Why Envoy cannot.
        why: String,
    },
    /// It cannot be translated at all.
    Invalid {
        /// Why.
        why: String,
    },
    /// It names documents that do not exist (yet).
    Waiting {
        /// The missing documents: `RateLimitStrategy/foo`.
        on: Vec<String>,
    },
}

impl Status {
    /// The state's name: `Enforced`, `Partial`, `SdkOnly`, `Invalid`, `Waiting`.
    pub fn state(&self) -> &'static str {
        match self {
            Status::Enforced { .. } => "Enforced",
            Status::Partial { .. } => "Partial",
            Status::SdkOnly { .. } => "SdkOnly",
            Status::Invalid { .. } => "Invalid",
            Status::Waiting { .. } => "Waiting",
        }
    }
}

/// What was and was not enforced of one document, gathered part by part.
#[derive(Debug, Default)]
pub(crate) struct Report {
    how: Vec<String>,
    left_out: Vec<String>,
    /// Whether a part was left out for being invalid (rather than unknown to Envoy).
    invalid: bool,
}

impl Report {
    /// A part Envoy enforces.
    pub(crate) fn enforced(&mut self, how: impl Into<String>) {
        let how = how.into();
        if !self.how.contains(&how) {
            self.how.push(how);
        }
    }

    /// A part Envoy does not enforce, with why.
    pub(crate) fn left_out(&mut self, why: impl Into<String>) {
        let why = why.into();
        if !self.left_out.contains(&why) {
            self.left_out.push(why);
        }
    }

    /// A part Envoy would refuse, with why: with nothing enforced, the document is `Invalid`.
    pub(crate) fn invalid(&mut self, why: impl Into<String>) {
        self.invalid = true;
        self.left_out(why);
    }

    /// Adds this report's lines to `other`'s, each after `prefix`.
    pub(crate) fn merge_into(&self, other: &mut Report, prefix: &str) {
        self.how.iter().for_each(|h| other.enforced(format!("{prefix}{h}")));
        self.left_out.iter().for_each(|l| other.left_out(format!("{prefix}{l}")));
        other.invalid |= self.invalid;
    }

    /// Whether anything is enforced.
    pub(crate) fn any_enforced(&self) -> bool {
        !self.how.is_empty()
    }

    /// The status: enforced, partial, invalid or SDKs only.
    pub(crate) fn status(self) -> Status {
        if self.how.is_empty() && self.invalid {
            return Status::Invalid { why: self.left_out.join("; ") };
        }
        match (self.how.is_empty(), self.left_out.is_empty()) {
            (false, true) => Status::Enforced { how: self.how },
            (false, false) => Status::Partial { how: self.how, left_out: self.left_out },
            (true, _) if self.left_out.is_empty() => Status::SdkOnly { why: "nothing for Envoy to enforce".to_owned() },
            (true, _) => Status::SdkOnly { why: self.left_out.join("; ") },
        }
    }
}
