//! Configuration of `bosun serve`: flags, a TOML file, and defaults, in that order of precedence.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::Deserialize;

/// Flags of `bosun serve`.
#[derive(Debug, Default, clap::Args)]
pub struct ServeArgs {
    /// A TOML configuration file; flags override its values.
    #[arg(long, env = "BOSUN_CONFIG")]
    pub config: Option<PathBuf>,
    /// Address of the xDS gRPC server [default: 127.0.0.1:18000].
    #[arg(long)]
    pub xds_addr: Option<SocketAddr>,
    /// Address of the admin HTTP server [default: 127.0.0.1:19000].
    #[arg(long)]
    pub admin_addr: Option<SocketAddr>,
    /// A directory of Envoy resources (YAML/JSON) to serve and watch. Files in DIR go to every
    /// node; files in DIR/<cluster>/ only to nodes whose `node.cluster` is <cluster>.
    #[arg(long, value_name = "DIR")]
    pub resources: Option<PathBuf>,
    /// Log format: `text` or `json` [default: text].
    #[arg(long)]
    pub log_format: Option<LogFormat>,
}

/// How logs are written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// The contents of `bosun.toml`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    xds_addr: Option<SocketAddr>,
    admin_addr: Option<SocketAddr>,
    resources: Option<PathBuf>,
    log_format: Option<LogFormat>,
}

/// The effective configuration of `bosun serve`.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    pub xds_addr: SocketAddr,
    pub admin_addr: SocketAddr,
    pub resources: Option<PathBuf>,
    pub log_format: LogFormat,
}

const DEFAULT_XDS_ADDR: ([u8; 4], u16) = ([127, 0, 0, 1], 18000);
const DEFAULT_ADMIN_ADDR: ([u8; 4], u16) = ([127, 0, 0, 1], 19000);
const MAX_CONFIG_BYTES: u64 = 1 << 20;

impl ServeConfig {
    /// Merges `args` over the configuration file they name (if any) over the defaults.
    pub fn load(args: ServeArgs) -> anyhow::Result<Self> {
        let file = match &args.config {
            Some(path) => read_file_config(path)?,
            None => FileConfig::default(),
        };
        // A relative resources path in the file is relative to the file.
        let file_resources = match (&args.config, file.resources) {
            (Some(cfg), Some(dir)) if dir.is_relative() => {
                Some(cfg.parent().unwrap_or_else(|| Path::new(".")).join(dir))
            }
            (_, dir) => dir,
        };
        Ok(Self {
            xds_addr: args.xds_addr.or(file.xds_addr).unwrap_or_else(|| DEFAULT_XDS_ADDR.into()),
            admin_addr: args.admin_addr.or(file.admin_addr).unwrap_or_else(|| DEFAULT_ADMIN_ADDR.into()),
            resources: args.resources.or(file_resources),
            log_format: args.log_format.or(file.log_format).unwrap_or_default(),
        })
    }
}

fn read_file_config(path: &Path) -> anyhow::Result<FileConfig> {
    let meta = std::fs::metadata(path).with_context(|| format!("config file {}", path.display()))?;
    anyhow::ensure!(
        meta.len() <= MAX_CONFIG_BYTES,
        "config file {}: larger than {MAX_CONFIG_BYTES} bytes",
        path.display()
    );
    let text = std::fs::read_to_string(path).with_context(|| format!("config file {}", path.display()))?;
    toml::from_str(&text).with_context(|| format!("config file {}", path.display()))
}

/// Sets up `tracing` output; `RUST_LOG` selects levels (default `info`).
pub fn init_logging(config: &ServeConfig) -> anyhow::Result<()> {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let result = match config.log_format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
    result.map_err(|e| anyhow::anyhow!("logging: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_override_file_over_defaults() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("bosun.toml");
        std::fs::write(&path, "xds_addr = \"127.0.0.1:1\"\nadmin_addr = \"127.0.0.1:2\"\nresources = \"res\"\n")
            .expect("write");
        let cfg = ServeConfig::load(ServeArgs {
            config: Some(path),
            admin_addr: Some("127.0.0.1:3".parse().expect("addr")),
            ..Default::default()
        })
        .expect("load");
        assert_eq!(cfg.xds_addr.port(), 1);
        assert_eq!(cfg.admin_addr.port(), 3);
        assert_eq!(cfg.resources, Some(dir.path().join("res")));
        let defaults = ServeConfig::load(ServeArgs::default()).expect("defaults");
        assert_eq!(defaults.xds_addr.to_string(), "127.0.0.1:18000");
        assert_eq!(defaults.admin_addr.to_string(), "127.0.0.1:19000");
    }

    #[test]
    fn unknown_keys_are_named() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("bosun.toml");
        std::fs::write(&path, "xds_adr = \"127.0.0.1:1\"\n").expect("write");
        let err = ServeConfig::load(ServeArgs { config: Some(path), ..Default::default() }).expect_err("unknown key");
        assert!(format!("{err:#}").contains("xds_adr"), "{err:#}");
    }
}
