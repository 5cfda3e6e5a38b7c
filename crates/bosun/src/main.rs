//! `bosun`: a microservice-governance control plane.

mod admin;
mod api;
mod cli;
mod config;
mod directory;
mod documents;
mod listen;
mod metadata_api;
mod plugins;
mod proxy_status;
mod resources;
mod serve;
mod source;
mod status;
mod store;
mod template;
mod tls;

use clap::{Parser, Subcommand};

/// Bosun: tells a fleet of data planes (Envoy, proxyless gRPC) what to do.
#[derive(Debug, Parser)]
#[command(name = "bosun", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the control plane: the store, the xDS server and the admin HTTP API.
    Serve(Box<config::ServeArgs>),
    /// Create or update documents from files (YAML/JSON), directories or standard input.
    Apply {
        #[command(flatten)]
        args: cli::ApplyArgs,
        #[command(flatten)]
        connection: cli::Connection,
    },
    /// Show one document or a list.
    Get {
        #[command(flatten)]
        args: cli::GetArgs,
        #[command(flatten)]
        connection: cli::Connection,
    },
    /// List the plugins `bosun serve` runs, with their state.
    Plugins {
        #[command(flatten)]
        args: cli::PluginsArgs,
        #[command(flatten)]
        connection: cli::Connection,
    },
    /// Every connected node and whether it accepted the config it was sent (SYNCED, STALE,
    /// NACKED), per xDS type.
    Status {
        #[command(flatten)]
        args: proxy_status::StatusArgs,
        #[command(flatten)]
        connection: cli::Connection,
    },
    /// Plugin projects.
    #[command(subcommand)]
    Plugin(PluginCommand),
    /// Delete a document.
    Delete {
        #[command(flatten)]
        args: cli::DeleteArgs,
        #[command(flatten)]
        connection: cli::Connection,
    },
}

#[derive(Debug, Subcommand)]
enum PluginCommand {
    /// Write a ready-to-build plugin project.
    New(template::NewArgs),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    if let Command::Serve(args) = cli.command {
        let config = config::ServeConfig::load(*args)?;
        config::init_logging(&config)?;
        let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
        return runtime.block_on(serve::run(config));
    }
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(async {
        match &cli.command {
            Command::Serve(_) => Ok(()),
            Command::Apply { args, connection } => cli::apply(connection, args).await,
            Command::Get { args, connection } => cli::get(connection, args).await,
            Command::Delete { args, connection } => cli::delete(connection, args).await,
            Command::Plugins { args, connection } => cli::plugins(connection, args).await,
            Command::Status { args, connection } => proxy_status::status(connection, args).await,
            Command::Plugin(PluginCommand::New(args)) => template::new(args),
        }
    })
}
