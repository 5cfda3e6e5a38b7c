//! `bosun apply`, `bosun get`, `bosun delete`: a kubectl-like client of the admin API.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde_json::{Value as Json, json};

use crate::api::MAX_APPLY_DOCUMENTS;
use crate::resources::{self, LoadError, Location};

/// How to reach the admin API.
#[derive(Debug, clap::Args)]
pub struct Connection {
    /// The admin API of a running `bosun serve`.
    #[arg(long, env = "BOSUN_SERVER", default_value = "http://127.0.0.1:19000", global = true)]
    pub server: String,
    /// A file holding the admin bearer token (needed for writes when the server has one).
    #[arg(long, env = "BOSUN_TOKEN_FILE", global = true)]
    pub token_file: Option<PathBuf>,
    /// For an https server: the CA certificates (PEM) to trust instead of the system's.
    #[arg(long, env = "BOSUN_CA_FILE", global = true, value_name = "FILE")]
    pub ca_file: Option<PathBuf>,
    /// For a server that asks for a client certificate: the certificate chain (PEM).
    #[arg(long, env = "BOSUN_CERT_FILE", global = true, value_name = "FILE", requires = "key_file")]
    pub cert_file: Option<PathBuf>,
    /// The private key (PEM) of --cert-file.
    #[arg(long, env = "BOSUN_KEY_FILE", global = true, value_name = "FILE", requires = "cert_file")]
    pub key_file: Option<PathBuf>,
}

/// `bosun apply`.
#[derive(Debug, clap::Args)]
pub struct ApplyArgs {
    /// A YAML or JSON file, a directory of them, or `-` for standard input; may repeat.
    #[arg(short = 'f', long = "filename", required = true)]
    pub files: Vec<PathBuf>,
}

/// `bosun get`.
#[derive(Debug, clap::Args)]
pub struct GetArgs {
    /// The kind: Cluster, ClusterLoadAssignment (endpoints), Listener, RouteConfiguration
    /// (routes), ..., RateLimitStrategy (rls), FaultToleranceRule (ftr), TrafficRouter (tr), ...,
    /// in any case, or plural; or metadata, servicedefinitions, mappings (the metadata centre's).
    pub kind: String,
    /// One document's name; without it, a list.
    pub name: Option<String>,
    /// The namespace [default: default; lists: every namespace].
    #[arg(short = 'n', long)]
    pub namespace: Option<String>,
    /// Only documents whose labels match (`app=web,tier!=db`).
    #[arg(short = 'l', long)]
    pub selector: Option<String>,
    /// Output: a table, yaml or json.
    #[arg(short = 'o', long, default_value = "table")]
    pub output: Output,
}

/// `bosun delete`.
#[derive(Debug, clap::Args)]
pub struct DeleteArgs {
    pub kind: String,
    pub name: String,
    #[arg(short = 'n', long, default_value = "default")]
    pub namespace: String,
}

/// Output formats of `bosun get`.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum Output {
    Table,
    Yaml,
    Json,
}

/// A client of the admin API.
pub struct Client {
    http: reqwest::Client,
    base: String,
    token: Option<String>,
}

impl Client {
    pub fn new(connection: &Connection) -> anyhow::Result<Self> {
        let token = connection.token_file.as_deref().map(crate::config::read_token).transpose()?;
        let mut http = reqwest::Client::builder().timeout(std::time::Duration::from_secs(60));
        if let Some(ca) = &connection.ca_file {
            let pem = std::fs::read(ca).with_context(|| format!("--ca-file {}", ca.display()))?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem)
                .with_context(|| format!("--ca-file {}: not PEM certificates", ca.display()))?;
            http = http.tls_certs_only(certs);
        }
        if let (Some(cert), Some(key)) = (&connection.cert_file, &connection.key_file) {
            let mut pem = std::fs::read(key).with_context(|| format!("--key-file {}", key.display()))?;
            pem.extend(std::fs::read(cert).with_context(|| format!("--cert-file {}", cert.display()))?);
            let identity = reqwest::Identity::from_pem(&pem)
                .with_context(|| format!("--cert-file {} / --key-file {}", cert.display(), key.display()))?;
            http = http.identity(identity);
        }
        let http = http.build()?;
        Ok(Self { http, base: connection.server.trim_end_matches('/').to_owned(), token })
    }

    /// Sends a request; a non-2xx answer becomes an error with the server's message and details.
    pub(crate) async fn send(&self, method: reqwest::Method, path: &str, body: Option<&Json>) -> anyhow::Result<Json> {
        let url = format!("{}{path}", self.base);
        let mut request = self.http.request(method, &url);
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await.with_context(|| format!("cannot reach {url} (is bosun serve running?)"))?;
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        let json: Json = serde_json::from_str(&text).unwrap_or_else(|_| json!({"error": {"message": text}}));
        if status.is_success() {
            return Ok(json);
        }
        let error = &json["error"];
        let mut message = format!("{status}: {}", error["message"].as_str().unwrap_or("request failed"));
        for detail in error["details"].as_array().into_iter().flatten() {
            let (field, reason) = (detail["field"].as_str().unwrap_or("?"), detail["reason"].as_str().unwrap_or("?"));
            message.push_str(&format!("\n  {field}: {reason}"));
        }
        anyhow::bail!(message)
    }
}

/// Percent-encodes one path segment.
pub(crate) fn segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `bosun apply -f ...`: every document is checked by the server before any is written; each
/// group of up to 100 documents is written all or nothing.
pub async fn apply(connection: &Connection, args: &ApplyArgs) -> anyhow::Result<()> {
    let documents = read_documents(&args.files)?;
    anyhow::ensure!(!documents.is_empty(), "no documents in {:?}", args.files);
    let client = Client::new(connection)?;
    let mut out = std::io::stdout().lock();
    for chunk in documents.chunks(MAX_APPLY_DOCUMENTS) {
        let body = json!({"documents": chunk.iter().map(|(doc, _)| doc).collect::<Vec<_>>()});
        let answer = client.send(reqwest::Method::POST, "/api/v1/apply", Some(&body)).await.map_err(|e| {
            // Name the files: the server's `documents[i]` is the i-th of this chunk.
            let mut message = e.to_string();
            for (i, (_, loc)) in chunk.iter().enumerate() {
                message = message.replace(&format!("documents[{i}]"), &format!("{loc}"));
            }
            anyhow::anyhow!(message)
        })?;
        for result in answer["results"].as_array().into_iter().flatten() {
            let key = result["key"].as_str().unwrap_or("?");
            writeln!(out, "{key} {}", result["action"].as_str().unwrap_or("?"))?;
            for warning in result["warnings"].as_array().into_iter().flatten() {
                let text = |v: &Json| v.as_str().unwrap_or_default().to_owned();
                let (field, reason) = (text(&warning["field"]), text(&warning["reason"]));
                eprintln!("warning: {key}: {field}: {reason}");
            }
        }
    }
    Ok(())
}

/// The documents of the files, directories (their YAML/JSON files, sorted) and `-`.
fn read_documents(paths: &[PathBuf]) -> anyhow::Result<Vec<(Json, Location)>> {
    let mut errors = LoadError::default();
    let mut documents = Vec::new();
    for path in paths {
        if path == Path::new("-") {
            let mut text = String::new();
            std::io::stdin()
                .take(resources::MAX_FILE_BYTES)
                .read_to_string(&mut text)
                .context("reading standard input")?;
            documents.extend(resources::split_documents(Path::new("<stdin>.yaml"), &text, &mut errors));
            continue;
        }
        let files = if path.is_dir() {
            let mut files: Vec<PathBuf> = std::fs::read_dir(path)
                .with_context(|| format!("reading {}", path.display()))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| {
                    p.is_file() && matches!(p.extension().and_then(|e| e.to_str()), Some("yaml" | "yml" | "json"))
                })
                .collect();
            files.sort();
            files
        } else {
            vec![path.clone()]
        };
        for file in files {
            match resources::read_file(&file) {
                Ok(text) => documents.extend(resources::split_documents(&file, &text, &mut errors)),
                Err(mut e) => errors.errors.append(&mut e.errors),
            }
        }
    }
    if !errors.errors.is_empty() {
        anyhow::bail!("{errors}");
    }
    Ok(documents)
}

/// `bosun get KIND [NAME]`.
pub async fn get(connection: &Connection, args: &GetArgs) -> anyhow::Result<()> {
    let client = Client::new(connection)?;
    if let Some(listing) = crate::metadata_api::Listing::of_kind(&args.kind) {
        let answer = client.send(reqwest::Method::GET, &listing.path(args.namespace.as_deref()), None).await?;
        return listing.print(&answer, args.output);
    }
    let kind = segment(&args.kind);
    let items: Vec<Json> = match &args.name {
        Some(name) => {
            let ns = args.namespace.as_deref().unwrap_or("default");
            let path = format!("/api/v1/resources/{kind}/{}/{}", segment(ns), segment(name));
            vec![client.send(reqwest::Method::GET, &path, None).await?]
        }
        None => {
            let mut items = Vec::new();
            let mut token: Option<String> = None;
            loop {
                let mut path = match &args.namespace {
                    Some(ns) => format!("/api/v1/resources/{kind}/{}?limit=500", segment(ns)),
                    None => format!("/api/v1/resources/{kind}?limit=500"),
                };
                if let Some(selector) = &args.selector {
                    path.push_str(&format!("&labelSelector={}", segment(selector)));
                }
                if let Some(t) = &token {
                    path.push_str(&format!("&continue={}", segment(t)));
                }
                let page = client.send(reqwest::Method::GET, &path, None).await?;
                items.extend(page["items"].as_array().cloned().unwrap_or_default());
                match page["continue"].as_str() {
                    Some(t) => token = Some(t.to_owned()),
                    None => break,
                }
            }
            items
        }
    };
    let mut out = std::io::stdout().lock();
    match args.output {
        Output::Json if args.name.is_some() => writeln!(out, "{}", serde_json::to_string_pretty(&items[0])?)?,
        Output::Json => writeln!(out, "{}", serde_json::to_string_pretty(&json!({"kind": "List", "items": items}))?)?,
        Output::Yaml => {
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    writeln!(out, "---")?;
                }
                write!(out, "{}", serde_yaml::to_string(item)?)?;
            }
        }
        Output::Table => write!(out, "{}", table(&items))?,
    }
    Ok(())
}

/// `NAMESPACE NAME KIND REVISION STATUS LABELS`, columns aligned; STATUS is a governance
/// document's translation state (`Enforced`, `Partial`, `SdkOnly`, ...), `-` for others.
fn table(items: &[Json]) -> String {
    let mut rows = vec![["NAMESPACE", "NAME", "KIND", "REVISION", "STATUS", "LABELS"].map(String::from)];
    for item in items {
        let meta = &item["metadata"];
        let labels = meta["labels"]
            .as_object()
            .map(|l| {
                l.iter().map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default())).collect::<Vec<_>>().join(",")
            })
            .unwrap_or_default();
        let text = |v: &Json| v.as_str().unwrap_or_default().to_owned();
        rows.push([
            text(&meta["namespace"]),
            text(&meta["name"]),
            text(&item["kind"]),
            text(&meta["resourceVersion"]),
            item["status"]["state"].as_str().unwrap_or("-").to_owned(),
            labels,
        ]);
    }
    aligned(rows)
}

/// Rows as columns aligned on the widest cell.
pub(crate) fn aligned<const N: usize>(rows: Vec<[String; N]>) -> String {
    let widths: Vec<usize> = (0..N).map(|c| rows.iter().map(|r| r[c].len()).max().unwrap_or(0)).collect();
    let mut out = String::new();
    for row in rows {
        let line: Vec<String> = row.iter().zip(&widths).map(|(cell, w)| format!("{cell:w$}")).collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    }
    out
}

/// `bosun delete KIND NAME`.
pub async fn delete(connection: &Connection, args: &DeleteArgs) -> anyhow::Result<()> {
    let client = Client::new(connection)?;
    let path =
        format!("/api/v1/resources/{}/{}/{}", segment(&args.kind), segment(&args.namespace), segment(&args.name));
    let answer = client.send(reqwest::Method::DELETE, &path, None).await?;
    println!("{} deleted", answer["deleted"].as_str().unwrap_or("?"));
    Ok(())
}

/// `bosun plugins`.
#[derive(Debug, clap::Args)]
pub struct PluginsArgs {
    /// Output format.
    #[arg(short = 'o', long, value_enum, default_value = "table")]
    pub output: Output,
}

/// `bosun plugins`: the plugins `bosun serve` runs, with their state.
pub async fn plugins(connection: &Connection, args: &PluginsArgs) -> anyhow::Result<()> {
    let client = Client::new(connection)?;
    let answer = client.send(reqwest::Method::GET, "/api/v1/plugins", None).await?;
    let items = answer["plugins"].as_array().cloned().unwrap_or_default();
    let mut out = std::io::stdout().lock();
    match args.output {
        Output::Json => writeln!(out, "{}", serde_json::to_string_pretty(&answer)?)?,
        Output::Yaml => write!(out, "{}", serde_yaml::to_string(&answer)?)?,
        Output::Table => {
            let text = |v: &Json| match v {
                Json::Null => "-".to_owned(),
                Json::String(s) => s.clone(),
                other => other.to_string(),
            };
            let mut rows = vec![
                ["NAME", "VERSION", "KIND", "STATE", "PID", "RESTARTS", "HEALTHY", "LAST ERROR"].map(String::from),
            ];
            for p in &items {
                let healthy = match p["lastHealthCheckSecondsAgo"].as_u64() {
                    Some(s) => format!("{s}s ago"),
                    None => "-".to_owned(),
                };
                let error = text(&p["lastError"]).lines().next().unwrap_or_default().to_owned();
                rows.push([
                    text(&p["name"]),
                    text(&p["version"]),
                    text(&p["kind"]),
                    text(&p["state"]),
                    text(&p["pid"]),
                    text(&p["restarts"]),
                    healthy,
                    error,
                ]);
            }
            write!(out, "{}", aligned(rows))?;
        }
    }
    Ok(())
}
