//! Small builders for the Envoy messages the translation writes.

use std::time::Duration;

use bosun_model::spec::StringMatch;
use envoy_types::pb::envoy::config::core::v3::{
    AggregatedConfigSource, ApiVersion, ConfigSource, HeaderValue, HeaderValueOption, RuntimeFractionalPercent,
    config_source::ConfigSourceSpecifier,
};
use envoy_types::pb::envoy::r#type::matcher::v3::{RegexMatcher, StringMatcher, string_matcher::MatchPattern};
use envoy_types::pb::envoy::r#type::v3::{FractionalPercent, fractional_percent::DenominatorType};
use envoy_types::pb::google::protobuf::{Any, Duration as ProtoDuration, UInt32Value};
use prost::{Message, Name};

/// A message packed into an `Any`.
pub(crate) fn any<M: Message + Name>(message: &M) -> Any {
    Any { type_url: M::type_url(), value: message.encode_to_vec() }
}

/// A protobuf `Duration`.
pub(crate) fn duration(d: Duration) -> ProtoDuration {
    ProtoDuration {
        seconds: i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        nanos: i32::try_from(d.subsec_nanos()).unwrap_or(0),
    }
}

/// A `UInt32Value`.
pub(crate) fn uint32(value: u32) -> UInt32Value {
    UInt32Value { value }
}

/// A percentage (0 to 100, decimals allowed) as a fraction of a million.
pub(crate) fn percent(value: f64) -> FractionalPercent {
    // 0..=100 × 10,000 fits a u32; the cast saturates in any case.
    FractionalPercent { numerator: (value * 10_000.0).round() as u32, denominator: DenominatorType::Million as i32 }
}

/// Always (100%), under a runtime key operators can turn down.
pub(crate) fn always(runtime_key: &str) -> RuntimeFractionalPercent {
    RuntimeFractionalPercent {
        default_value: Some(FractionalPercent { numerator: 100, denominator: DenominatorType::Hundred as i32 }),
        runtime_key: runtime_key.to_owned(),
    }
}

/// Resources fetched over the ADS stream.
pub(crate) fn ads() -> ConfigSource {
    ConfigSource {
        resource_api_version: ApiVersion::V3 as i32,
        config_source_specifier: Some(ConfigSourceSpecifier::Ads(AggregatedConfigSource {})),
        ..Default::default()
    }
}

/// A header to add (appending, as Envoy does by default).
pub(crate) fn header(key: &str, value: &str) -> HeaderValueOption {
    HeaderValueOption {
        header: Some(HeaderValue { key: key.to_owned(), value: value.to_owned(), ..Default::default() }),
        ..Default::default()
    }
}

/// A regular expression for Envoy (RE2), checked here: Envoy refuses a whole route table for one
/// bad expression. The check uses Rust's `regex` syntax, which accepts what RE2 does but for a
/// few rarely used forms.
pub(crate) fn regex(pattern: &str) -> Result<RegexMatcher, String> {
    regex_syntax::Parser::new()
        .parse(pattern)
        .map_err(|e| format!("regex {pattern:?}: {}", e.to_string().lines().last().unwrap_or("invalid")))?;
    Ok(RegexMatcher { regex: pattern.to_owned(), ..Default::default() })
}

/// A model string match as Envoy's.
pub(crate) fn string_matcher(m: &StringMatch) -> Result<StringMatcher, String> {
    let pattern = match m {
        StringMatch::Exact(s) => MatchPattern::Exact(s.clone()),
        StringMatch::Prefix(s) => MatchPattern::Prefix(s.clone()),
        StringMatch::Regex(s) => MatchPattern::SafeRegex(regex(s)?),
    };
    Ok(StringMatcher { match_pattern: Some(pattern), ignore_case: false })
}
