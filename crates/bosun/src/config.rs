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
    /// Address of the OpenSergo transport gRPC server [default: 127.0.0.1:10246].
    #[arg(long)]
    pub opensergo_addr: Option<SocketAddr>,
    /// A directory of Envoy resources (YAML/JSON) to serve and watch. Files in DIR go to every
    /// node; files in DIR/<cluster>/ only to nodes whose `node.cluster` is <cluster>.
    #[arg(long, value_name = "DIR")]
    pub resources: Option<PathBuf>,
    /// Where state is kept: `embedded` (a file in --data-dir), `memory` (lost on exit),
    /// `etcd://HOST:PORT[,HOST:PORT...][/PREFIX]`, or `postgres://USER@HOST:PORT/DB` [default: embedded].
    #[arg(long, env = "BOSUN_STORE")]
    pub store: Option<String>,
    /// The embedded store's directory [default: ./bosun-data].
    #[arg(long, env = "BOSUN_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// A file holding the bearer token that admin API writes need (none: writes are open, so keep
    /// the admin address on loopback).
    #[arg(long, env = "BOSUN_ADMIN_TOKEN_FILE")]
    pub admin_token_file: Option<PathBuf>,
    /// Log format: `text` or `json` [default: text].
    #[arg(long)]
    pub log_format: Option<LogFormat>,
    /// A directory of plugins, named `<name>-<kind>` (kind: transform, stream or storage): each
    /// executable (or source directory) in it is loaded, besides the `[[plugin]]`s of the file.
    #[arg(long, env = "BOSUN_PLUGIN_DIR", value_name = "DIR")]
    pub plugin_dir: Option<PathBuf>,
    #[command(flatten)]
    pub listen: crate::listen::ListenArgs,
    /// How long published service metadata, definitions and mappings live without a publish or a
    /// heartbeat of their application, in seconds [default: 90].
    #[arg(long, value_name = "SECONDS")]
    pub metadata_ttl: Option<u64>,
    /// Largest metadata_info or service_definition accepted, in bytes [default: 1048576].
    #[arg(long, value_name = "BYTES")]
    pub metadata_max_bytes: Option<usize>,
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
    opensergo_addr: Option<SocketAddr>,
    resources: Option<PathBuf>,
    store: Option<String>,
    data_dir: Option<PathBuf>,
    admin_token_file: Option<PathBuf>,
    log_format: Option<LogFormat>,
    plugin_dir: Option<PathBuf>,
    #[serde(default, rename = "plugin")]
    plugins: Vec<PluginSpec>,
    #[serde(default)]
    xds: crate::listen::XdsFile,
    #[serde(default)]
    admin: crate::listen::PortFile,
    #[serde(default)]
    opensergo: crate::listen::PortFile,
    #[serde(default)]
    metadata: MetadataFile,
}

/// `[metadata]` of `bosun.toml`: the service metadata centre.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct MetadataFile {
    /// `--metadata-ttl`.
    ttl_seconds: Option<u64>,
    /// `--metadata-max-bytes`.
    max_bytes: Option<usize>,
}

/// What a plugin does, and so where Bosun calls it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PluginKind {
    /// Called with each document written, after validation: returns it changed, unchanged or
    /// rejected.
    Transform,
    /// Receives store events of the kinds it subscribes to and writes documents back.
    Stream,
    /// A store backend (`--store plugin:NAME`).
    Storage,
}

impl PluginKind {
    const ALL: [PluginKind; 3] = [PluginKind::Transform, PluginKind::Stream, PluginKind::Storage];

    /// `transform`, `stream`, `storage`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Transform => "transform",
            Self::Stream => "stream",
            Self::Storage => "storage",
        }
    }
}

/// A plugin, from a `[[plugin]]` table of `bosun.toml` or found in the plugin directory.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PluginSpec {
    /// `name` or `name@version`.
    pub name: String,
    /// The executable, or a source directory (a Cargo project or a Go package) built first.
    pub path: PathBuf,
    /// What it does.
    pub kind: PluginKind,
    /// Sent to the plugin (as JSON) in its `Configure` call before it is used.
    #[serde(default = "empty_table")]
    pub config: toml::Table,
    /// For transform plugins: the document kinds it is called for (any of their names)
    /// [default: every governance kind].
    #[serde(default)]
    pub kinds: Vec<String>,
    /// How long a call waits for the plugin while it (re)starts; 0: fail at once.
    #[serde(default = "default_call_wait_seconds")]
    pub call_wait_seconds: u64,
    /// Reload the plugin when its binary (or source) changes on disk.
    #[serde(default = "yes")]
    pub reload: bool,
    /// Mutual TLS between Bosun and the plugin (go-plugin's AutoMTLS).
    #[serde(default = "yes")]
    pub auto_mtls: bool,
}

fn default_call_wait_seconds() -> u64 {
    10
}

fn yes() -> bool {
    true
}

fn empty_table() -> toml::Table {
    toml::Table::new()
}

impl PluginSpec {
    /// The plugins of `dir`: entries named `<name>-<kind>`; others are skipped with a warning.
    pub fn discover(dir: &Path) -> anyhow::Result<Vec<PluginSpec>> {
        let entries = std::fs::read_dir(dir).with_context(|| format!("plugin directory {}", dir.display()))?;
        let mut found = Vec::new();
        for entry in entries {
            let entry = entry.with_context(|| format!("plugin directory {}", dir.display()))?;
            let file_name = entry.file_name();
            let Some(file_name) = file_name.to_str() else { continue };
            if file_name.starts_with('.') {
                continue;
            }
            let kind = file_name
                .rsplit_once('-')
                .and_then(|(name, kind)| PluginKind::ALL.into_iter().find(|k| k.as_str() == kind).map(|k| (name, k)));
            match kind {
                Some((name, kind)) if !name.is_empty() => found.push(PluginSpec {
                    name: name.to_owned(),
                    path: entry.path(),
                    kind,
                    config: toml::Table::new(),
                    kinds: Vec::new(),
                    call_wait_seconds: default_call_wait_seconds(),
                    reload: true,
                    auto_mtls: true,
                }),
                _ => tracing::warn!(
                    path = %entry.path().display(),
                    "not a plugin: names in the plugin directory are <name>-<transform|stream|storage>"
                ),
            }
        }
        found.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(found)
    }

    /// How Bosun launches it.
    pub fn launch_config(&self) -> bosun_plugin::LaunchConfig {
        let mut launch = bosun_plugin::LaunchConfig::new(self.name.clone(), self.path.clone());
        launch.auto_mtls = self.auto_mtls;
        launch
    }

    /// The name without its `@version`.
    pub fn base_name(&self) -> &str {
        self.name.split('@').next().unwrap_or_default()
    }

    /// The plugin's `config` as JSON.
    pub fn config_json(&self) -> String {
        serde_json::to_string(&self.config).unwrap_or_else(|_| "{}".to_owned())
    }
}

/// Checks the plugins' names: each valid (`name` or `name@version`) and unique.
fn check_plugins(plugins: &[PluginSpec]) -> anyhow::Result<()> {
    let mut seen = std::collections::BTreeSet::new();
    for (i, p) in plugins.iter().enumerate() {
        let (name, version) = p.name.split_once('@').unwrap_or((&p.name, ""));
        let valid_name = name.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
            && name.len() <= 63
            && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
        anyhow::ensure!(
            valid_name,
            "plugin[{i}].name {:?}: must be lowercase letters, digits and '-', at most 63, optionally @VERSION",
            p.name
        );
        anyhow::ensure!(
            !p.name.contains('@')
                || (!version.is_empty() && version.chars().all(|c| c.is_ascii_alphanumeric() || ".-+".contains(c))),
            "plugin[{i}].name {:?}: the version after '@' must be like 1.2.0",
            p.name
        );
        anyhow::ensure!(
            seen.insert(name.to_owned()),
            "plugin[{i}].name {:?}: a plugin {name:?} is declared twice",
            p.name
        );
        anyhow::ensure!(
            p.kinds.is_empty() || p.kind == PluginKind::Transform,
            "plugin[{i}].kinds: only transform plugins take kinds"
        );
    }
    Ok(())
}

/// The effective configuration of `bosun serve`.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    pub xds_addr: SocketAddr,
    pub admin_addr: SocketAddr,
    /// Where OpenSergo SDKs subscribe to rules.
    pub opensergo_addr: SocketAddr,
    pub resources: Option<PathBuf>,
    pub store: StoreConfig,
    /// The admin API's bearer token for writes, read from --admin-token-file.
    pub admin_token: Option<String>,
    pub log_format: LogFormat,
    /// The plugins: the file's `[[plugin]]`s, then those of the plugin directory with other names.
    pub plugins: Vec<PluginSpec>,
    /// Where plugins given as source are built: `<data dir>/plugin-builds`.
    pub plugin_build_dir: PathBuf,
    /// TLS, keepalive and limits of the xDS, admin and OpenSergo ports.
    pub ports: crate::listen::Ports,
    /// How the service metadata centre holds entries.
    pub metadata: bosun_metadata::MetadataConfig,
}

/// Which store `bosun serve` uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreConfig {
    Memory,
    Embedded {
        data_dir: PathBuf,
    },
    Etcd {
        endpoints: Vec<String>,
        prefix: Option<String>,
    },
    Postgres {
        url: String,
    },
    /// A storage plugin, by the name of its `[[plugin]]` (kind `storage`).
    Plugin {
        name: String,
    },
}

impl StoreConfig {
    /// Parses --store; `data_dir` is for the embedded store.
    pub fn parse(spec: &str, data_dir: PathBuf) -> anyhow::Result<Self> {
        if spec == "embedded" {
            return Ok(Self::Embedded { data_dir });
        }
        if spec == "memory" {
            return Ok(Self::Memory);
        }
        if let Some(rest) = spec.strip_prefix("etcd://") {
            let (hosts, prefix) = match rest.split_once('/') {
                Some((hosts, prefix)) if !prefix.is_empty() => (hosts, Some(format!("/{}/", prefix.trim_matches('/')))),
                Some((hosts, _)) => (hosts, None),
                None => (rest, None),
            };
            let endpoints: Vec<String> =
                hosts.split(',').filter(|h| !h.is_empty()).map(|h| format!("http://{h}")).collect();
            anyhow::ensure!(
                !endpoints.is_empty(),
                "--store {spec}: no etcd endpoint (etcd://HOST:PORT[,HOST:PORT...][/PREFIX])"
            );
            return Ok(Self::Etcd { endpoints, prefix });
        }
        if spec.starts_with("postgres://") || spec.starts_with("postgresql://") {
            return Ok(Self::Postgres { url: spec.to_owned() });
        }
        if let Some(name) = spec.strip_prefix("plugin:") {
            anyhow::ensure!(!name.is_empty(), "--store {spec:?}: name the storage plugin: plugin:NAME");
            return Ok(Self::Plugin { name: name.to_owned() });
        }
        anyhow::bail!(
            "--store {spec:?}: expected embedded, memory, etcd://HOST:PORT[,...][/PREFIX], postgres://... or plugin:NAME"
        )
    }
}

const DEFAULT_DATA_DIR: &str = "bosun-data";
const MAX_TOKEN_BYTES: u64 = 4096;

const DEFAULT_XDS_ADDR: ([u8; 4], u16) = ([127, 0, 0, 1], 18000);
const DEFAULT_ADMIN_ADDR: ([u8; 4], u16) = ([127, 0, 0, 1], 19000);
/// OpenSergo's own control plane's port.
const DEFAULT_OPENSERGO_ADDR: ([u8; 4], u16) = ([127, 0, 0, 1], 10246);
const MAX_CONFIG_BYTES: u64 = 1 << 20;

impl ServeConfig {
    /// Merges `args` over the configuration file they name (if any) over the defaults.
    pub fn load(args: ServeArgs) -> anyhow::Result<Self> {
        let file = match &args.config {
            Some(path) => read_file_config(path)?,
            None => FileConfig::default(),
        };
        // Relative paths in the file are relative to the file.
        let relative_to_file = |path: Option<PathBuf>| match (&args.config, path) {
            (Some(cfg), Some(p)) if p.is_relative() => Some(cfg.parent().unwrap_or_else(|| Path::new(".")).join(p)),
            (_, p) => p,
        };
        let data_dir = args
            .data_dir
            .clone()
            .or_else(|| relative_to_file(file.data_dir))
            .unwrap_or_else(|| DEFAULT_DATA_DIR.into());
        let plugin_build_dir = data_dir.join("plugin-builds");
        let store =
            StoreConfig::parse(args.store.as_deref().or(file.store.as_deref()).unwrap_or("embedded"), data_dir)?;
        let token_file = args.admin_token_file.clone().or_else(|| relative_to_file(file.admin_token_file));
        let admin_token = token_file.map(|path| read_token(&path)).transpose()?;
        let mut plugins: Vec<PluginSpec> = file
            .plugins
            .into_iter()
            .map(|mut p| {
                if let Some(path) = relative_to_file(Some(p.path.clone())) {
                    p.path = path;
                }
                p
            })
            .collect();
        if let Some(dir) = args.plugin_dir.clone().or_else(|| relative_to_file(file.plugin_dir)) {
            let base = |name: &str| name.split('@').next().unwrap_or_default().to_owned();
            let declared: std::collections::BTreeSet<String> = plugins.iter().map(|p| base(&p.name)).collect();
            plugins.extend(PluginSpec::discover(&dir)?.into_iter().filter(|p| !declared.contains(&base(&p.name))));
        }
        check_plugins(&plugins)?;
        if let StoreConfig::Plugin { name } = &store {
            let found = plugins.iter().find(|p| p.base_name() == name);
            match found {
                Some(p) if p.kind == PluginKind::Storage => {}
                Some(p) => anyhow::bail!(
                    "--store plugin:{name}: plugin {:?} is a {} plugin, not storage",
                    p.name,
                    p.kind.as_str()
                ),
                None => anyhow::bail!(
                    "--store plugin:{name}: no plugin {name:?} (declare it with [[plugin]] kind = \"storage\", or put {name}-storage in the plugin directory)"
                ),
            }
        }
        let metadata = metadata_config(&args, &file.metadata)?;
        let ports = crate::listen::PortFiles { xds: file.xds, admin: file.admin, opensergo: file.opensergo };
        let ports = crate::listen::resolve(args.listen, ports, &relative_to_file)?;
        Ok(Self {
            xds_addr: args.xds_addr.or(file.xds_addr).unwrap_or_else(|| DEFAULT_XDS_ADDR.into()),
            admin_addr: args.admin_addr.or(file.admin_addr).unwrap_or_else(|| DEFAULT_ADMIN_ADDR.into()),
            opensergo_addr: args
                .opensergo_addr
                .or(file.opensergo_addr)
                .unwrap_or_else(|| DEFAULT_OPENSERGO_ADDR.into()),
            resources: args.resources.or_else(|| relative_to_file(file.resources)),
            store,
            admin_token,
            log_format: args.log_format.or(file.log_format).unwrap_or_default(),
            plugins,
            plugin_build_dir,
            ports,
            metadata,
        })
    }
}

/// The metadata centre's settings: flags over `[metadata]` of the file over the defaults. An
/// error names the flag or the file's key that holds the bad value.
fn metadata_config(args: &ServeArgs, file: &MetadataFile) -> anyhow::Result<bosun_metadata::MetadataConfig> {
    let mut config = bosun_metadata::MetadataConfig::default();
    let ttl =
        args.metadata_ttl.map(|v| ("--metadata-ttl", v)).or(file.ttl_seconds.map(|v| ("metadata.ttl_seconds", v)));
    if let Some((name, seconds)) = ttl {
        anyhow::ensure!(seconds >= 1, "{name}: must be at least 1 second");
        config.ttl = std::time::Duration::from_secs(seconds);
    }
    let max = args
        .metadata_max_bytes
        .map(|v| ("--metadata-max-bytes", v))
        .or(file.max_bytes.map(|v| ("metadata.max_bytes", v)));
    if let Some((name, bytes)) = max {
        let limit = bosun_store::validate::MAX_VALUE_BYTES;
        anyhow::ensure!((1..=limit).contains(&bytes), "{name}: must be 1 to {limit} (the store's limit)");
        config.max_value_bytes = bytes;
    }
    Ok(config)
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

/// Reads a token file: one line, surrounding white space ignored.
pub fn read_token(path: &Path) -> anyhow::Result<String> {
    let meta = std::fs::metadata(path).with_context(|| format!("token file {}", path.display()))?;
    anyhow::ensure!(
        meta.len() <= MAX_TOKEN_BYTES,
        "token file {}: larger than {MAX_TOKEN_BYTES} bytes",
        path.display()
    );
    let token =
        std::fs::read_to_string(path).with_context(|| format!("token file {}", path.display()))?.trim().to_owned();
    anyhow::ensure!(!token.is_empty(), "token file {}: empty", path.display());
    Ok(token)
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
        assert_eq!(defaults.store, StoreConfig::Embedded { data_dir: "bosun-data".into() });
        assert_eq!(defaults.xds_addr.to_string(), "127.0.0.1:18000");
        assert_eq!(defaults.admin_addr.to_string(), "127.0.0.1:19000");
        assert_eq!(defaults.opensergo_addr.to_string(), "127.0.0.1:10246");
    }

    #[test]
    fn store_specs_parse() {
        let dir = PathBuf::from("d");
        assert_eq!(
            StoreConfig::parse("etcd://127.0.0.1:2379,127.0.0.1:2380/team-a", dir.clone()).unwrap(),
            StoreConfig::Etcd {
                endpoints: vec!["http://127.0.0.1:2379".into(), "http://127.0.0.1:2380".into()],
                prefix: Some("/team-a/".into())
            }
        );
        assert_eq!(StoreConfig::parse("memory", dir.clone()).unwrap(), StoreConfig::Memory);
        assert!(matches!(
            StoreConfig::parse("postgres://u@h:5432/db", dir.clone()).unwrap(),
            StoreConfig::Postgres { .. }
        ));
        let err = StoreConfig::parse("redis://x", dir.clone()).unwrap_err().to_string();
        assert!(err.contains("expected embedded"), "{err}");
        assert!(StoreConfig::parse("etcd://", dir).is_err());
    }

    #[test]
    fn metadata_settings_come_from_flags_over_the_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("bosun.toml");
        std::fs::write(&path, "[metadata]\nttl_seconds = 30\nmax_bytes = 4096\n").expect("write");
        let from_file =
            ServeConfig::load(ServeArgs { config: Some(path.clone()), ..Default::default() }).expect("load");
        assert_eq!(from_file.metadata.ttl, std::time::Duration::from_secs(30));
        assert_eq!(from_file.metadata.max_value_bytes, 4096);
        let flag =
            ServeConfig::load(ServeArgs { config: Some(path.clone()), metadata_ttl: Some(5), ..Default::default() })
                .expect("load");
        assert_eq!(flag.metadata.ttl, std::time::Duration::from_secs(5));
        assert_eq!(flag.metadata.max_value_bytes, 4096);
        std::fs::write(&path, "[metadata]\nttl_seconds = 0\n").expect("write");
        let err = ServeConfig::load(ServeArgs { config: Some(path.clone()), ..Default::default() }).expect_err("zero");
        assert!(err.to_string().contains("metadata.ttl_seconds"), "{err:#}");
        std::fs::write(&path, "[metadata]\nttl = 5\n").expect("write");
        let err = ServeConfig::load(ServeArgs { config: Some(path), ..Default::default() }).expect_err("unknown");
        assert!(format!("{err:#}").contains("ttl"), "{err:#}");
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
