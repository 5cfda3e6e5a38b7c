//! `bosun status`: every connected node and where each of its xDS types stands, like
//! `istioctl proxy-status`: `SYNCED` (the last version sent was accepted), `STALE` (sent, not
//! answered yet), `NACKED` (rejected) or `NOT_SENT`.

use std::collections::BTreeMap;
use std::io::Write;

use serde::Serialize;
use serde_json::Value as Json;

use crate::cli::{Client, Connection, Output, aligned};

/// `bosun status`.
#[derive(Debug, clap::Args)]
pub struct StatusArgs {
    /// Output: a table, yaml or json.
    #[arg(short = 'o', long, value_enum, default_value = "table")]
    pub output: Output,
}

/// The table's columns: a short name and the type URL.
const TYPES: [(&str, &str); 4] = [
    ("CDS", bosun_xds::type_url::CLUSTER),
    ("EDS", bosun_xds::type_url::ENDPOINT),
    ("LDS", bosun_xds::type_url::LISTENER),
    ("RDS", bosun_xds::type_url::ROUTE),
];

/// One node (all its streams together).
#[derive(Debug, Default, Serialize)]
struct NodeStatus {
    node: String,
    cluster: String,
    /// Per short type name (`CDS`, ...; other types by type URL).
    types: BTreeMap<String, TypeSync>,
}

/// Where one type stands on one node.
#[derive(Debug, Serialize)]
struct TypeSync {
    state: String,
    sent_version: Option<String>,
    acked_version: Option<String>,
    /// The rejection's message when `state` is `NACKED`.
    error: Option<String>,
}

fn short_name(type_url: &str) -> String {
    TYPES.iter().find(|(_, url)| *url == type_url).map_or_else(|| type_url.to_owned(), |(short, _)| (*short).to_owned())
}

/// Groups the streams of `/status` by node id.
fn nodes(status: &Json) -> Vec<NodeStatus> {
    let mut nodes: BTreeMap<String, NodeStatus> = BTreeMap::new();
    for stream in status["nodes"].as_array().into_iter().flatten() {
        let id = stream["node_id"].as_str().unwrap_or_default();
        let node = nodes.entry(id.to_owned()).or_insert_with(|| NodeStatus {
            node: id.to_owned(),
            cluster: stream["cluster"].as_str().unwrap_or_default().to_owned(),
            types: BTreeMap::new(),
        });
        for (type_url, t) in stream["types"].as_object().into_iter().flatten() {
            let text = |v: &Json| v.as_str().map(str::to_owned);
            let state = text(&t["state"]).unwrap_or_else(|| "UNKNOWN".to_owned());
            let error = (state == "NACKED").then(|| text(&t["last_nack"]["message"])).flatten();
            node.types.insert(
                short_name(type_url),
                TypeSync {
                    state,
                    sent_version: text(&t["sent_version"]),
                    acked_version: text(&t["acked_version"]),
                    error,
                },
            );
        }
    }
    nodes.into_values().collect()
}

/// A table cell: the state and the start of the version it is about.
fn cell(sync: Option<&TypeSync>) -> String {
    let Some(sync) = sync else { return "-".to_owned() };
    match sync.sent_version.as_deref() {
        Some(version) => format!("{} ({})", sync.state, &version[..version.len().min(8)]),
        None => sync.state.clone(),
    }
}

fn table(nodes: &[NodeStatus]) -> String {
    let mut rows = vec![["NODE", "CLUSTER", "CDS", "EDS", "LDS", "RDS"].map(String::from)];
    for n in nodes {
        let [cds, eds, lds, rds] = TYPES.map(|(short, _)| cell(n.types.get(short)));
        rows.push([n.node.clone(), n.cluster.clone(), cds, eds, lds, rds]);
    }
    let mut out = aligned(rows);
    for n in nodes {
        for (short, t) in &n.types {
            if let Some(error) = &t.error {
                out.push_str(&format!("{} {short} NACKED: {}\n", n.node, error.lines().next().unwrap_or_default()));
            }
        }
    }
    out
}

/// `bosun status`: reads the admin API's `/status`.
pub async fn status(connection: &Connection, args: &StatusArgs) -> anyhow::Result<()> {
    let client = Client::new(connection)?;
    let answer = client.send(reqwest::Method::GET, "/status", None).await?;
    let nodes = nodes(&answer);
    let mut out = std::io::stdout().lock();
    match args.output {
        Output::Json => writeln!(out, "{}", serde_json::to_string_pretty(&nodes)?)?,
        Output::Yaml => write!(out, "{}", serde_yaml::to_string(&nodes)?)?,
        Output::Table => write!(out, "{}", table(&nodes))?,
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn streams_of_a_node_merge_into_one_row() {
        let status = json!({"nodes": [
            {"node_id": "n1", "cluster": "edge", "types": {
                bosun_xds::type_url::CLUSTER: {"state": "SYNCED", "sent_version": "0123456789abcdef", "acked_version": "0123456789abcdef"}}},
            {"node_id": "n1", "cluster": "edge", "types": {
                bosun_xds::type_url::LISTENER: {"state": "NACKED", "sent_version": "fedcba9876543210",
                    "acked_version": null, "last_nack": {"message": "duplicate address\nmore"}}}},
        ]});
        let nodes = nodes(&status);
        assert_eq!(nodes.len(), 1);
        let text = table(&nodes);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0].split_whitespace().collect::<Vec<_>>(), ["NODE", "CLUSTER", "CDS", "EDS", "LDS", "RDS"]);
        assert_eq!(
            lines[1].split_whitespace().collect::<Vec<_>>(),
            ["n1", "edge", "SYNCED", "(01234567)", "-", "NACKED", "(fedcba98)", "-"]
        );
        assert_eq!(lines[2], "n1 LDS NACKED: duplicate address");
    }
}
