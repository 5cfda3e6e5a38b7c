//! `bosun`: a microservice-governance control plane.

mod admin;
mod config;
mod resources;
mod serve;
mod source;
mod status;

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
    /// Run the control plane: the xDS server and the admin HTTP API.
    Serve(config::ServeArgs),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve(args) => {
            let config = config::ServeConfig::load(args)?;
            config::init_logging(&config)?;
            let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
            runtime.block_on(serve::run(config))
        }
    }
}
