//! The plugin's stderr: hclog JSON lines (`@level`, `@message`, other fields) or text lines
//! with a `[LEVEL]` tag, logged through `tracing`.

use serde_json::Value;

/// A log level of a plugin line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogLevel {
    /// trace
    Trace,
    /// debug
    Debug,
    /// info
    Info,
    /// warn
    Warn,
    /// error
    Error,
}

impl LogLevel {
    fn parse(s: &str) -> Option<Self> {
        Some(match s.to_ascii_lowercase().as_str() {
            "trace" => Self::Trace,
            "debug" => Self::Debug,
            "info" => Self::Info,
            "warn" | "warning" => Self::Warn,
            "error" | "err" => Self::Error,
            _ => return None,
        })
    }
}

/// One parsed stderr line.
#[derive(Debug, Clone, PartialEq)]
pub struct LogLine {
    /// Its level (debug when the line names none, as go-plugin does).
    pub level: LogLevel,
    /// The message.
    pub message: String,
    /// The other fields of a JSON line (`@timestamp` and `@level`/`@message` left out), as
    /// `key=value` text.
    pub fields: String,
}

/// Parses one stderr line of a plugin.
pub fn parse_log_line(line: &str) -> LogLine {
    let line = line.trim_end_matches(['\r', '\n']);
    if line.starts_with('{')
        && let Ok(Value::Object(map)) = serde_json::from_str::<Value>(line)
    {
        let level = map.get("@level").and_then(Value::as_str).and_then(LogLevel::parse).unwrap_or(LogLevel::Debug);
        let message = map.get("@message").and_then(Value::as_str).unwrap_or_default().to_owned();
        let fields = map
            .iter()
            .filter(|(k, _)| !matches!(k.as_str(), "@level" | "@message" | "@timestamp"))
            .map(|(k, v)| match v {
                Value::String(s) => format!("{k}={s:?}"),
                other => format!("{k}={other}"),
            })
            .collect::<Vec<_>>()
            .join(" ");
        return LogLine { level, message, fields };
    }
    // `[LEVEL] msg`, possibly after a timestamp.
    if let Some(open) = line.find('[')
        && open <= 40
        && let Some(len) = line[open..].find(']')
        && let Some(level) = LogLevel::parse(&line[open + 1..open + len])
    {
        let message = line[open + len + 1..].trim_start().to_owned();
        return LogLine { level, message, fields: String::new() };
    }
    LogLine { level: LogLevel::Debug, message: line.to_owned(), fields: String::new() }
}

/// Logs one stderr line of plugin `plugin` through `tracing`.
pub(crate) fn log_line(plugin: &str, line: &str) {
    let LogLine { level, message, fields } = parse_log_line(line);
    match level {
        LogLevel::Trace => tracing::trace!(plugin, %fields, "{message}"),
        LogLevel::Debug => tracing::debug!(plugin, %fields, "{message}"),
        LogLevel::Info => tracing::info!(plugin, %fields, "{message}"),
        LogLevel::Warn => tracing::warn!(plugin, %fields, "{message}"),
        LogLevel::Error => tracing::error!(plugin, %fields, "{message}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hclog_json() {
        let l = parse_log_line(
            r#"{"@level":"warn","@message":"cap applied","@module":"ratelimit","@timestamp":"2026-01-01T00:00:00Z","n":3}"#,
        );
        assert_eq!(l.level, LogLevel::Warn);
        assert_eq!(l.message, "cap applied");
        assert_eq!(l.fields, r#"@module="ratelimit" n=3"#);
    }

    #[test]
    fn level_tag() {
        let l = parse_log_line("2026-01-01T00:00:00.000Z [ERROR] plugin: broken");
        assert_eq!((l.level, l.message.as_str()), (LogLevel::Error, "plugin: broken"));
        let l = parse_log_line("[INFO] hello");
        assert_eq!((l.level, l.message.as_str()), (LogLevel::Info, "hello"));
    }

    #[test]
    fn plain_and_bad_json() {
        assert_eq!(parse_log_line("panic: oops").level, LogLevel::Debug);
        let l = parse_log_line("{not json [WARN] x");
        assert_eq!(l.level, LogLevel::Warn);
        assert_eq!(parse_log_line("[foo] bar").message, "[foo] bar");
    }
}
