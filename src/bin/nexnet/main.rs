//! `nexnet`: run a node (`init`, `serve`) and use one (`put`, `get`, `rm`,
//! `ls`, `peers`, `status`) through its local HTTP API.
//!
//! Exit codes: 0 success, 1 operational failure (not found, quorum not
//! reached, node unreachable, I/O), 2 usage error (bad arguments or names).

mod api;
mod client;
mod init;
mod range;
mod serve;
mod settings;
mod wire;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// A peer-to-peer, encrypted, content-addressed file store.
#[derive(Debug, Parser)]
#[command(name = "nexnet", version, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create a node's data directory (node id, data key, network secret).
    Init(init::InitArgs),
    /// Run a node until SIGINT or SIGTERM, with its HTTP API.
    Serve(Box<serve::ServeArgs>),
    /// Store a file (PATH `-` reads standard input).
    Put(client::PutArgs),
    /// Fetch a file to PATH, or to standard output.
    Get(client::GetArgs),
    /// Delete a file on every node.
    Rm(client::RmArgs),
    /// List the files a node knows.
    Ls(client::LsArgs),
    /// List the nodes a node knows.
    Peers(client::PeersArgs),
    /// Show a node's id, addresses and counters.
    Status(client::StatusArgs),
}

/// An error in how the command was used (exit code 2), as opposed to one
/// met while carrying it out (exit code 1).
#[derive(Debug)]
pub struct UsageError(pub String);

impl std::fmt::Display for UsageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let result = runtime.block_on(async move {
        match cli.command {
            Command::Init(args) => init::run(args),
            Command::Serve(args) => serve::run(*args).await,
            Command::Put(args) => client::put(args).await,
            Command::Get(args) => client::get(args).await,
            Command::Rm(args) => client::rm(args).await,
            Command::Ls(args) => client::ls(args).await,
            Command::Peers(args) => client::peers(args).await,
            Command::Status(args) => client::status(args).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // One line, with the chain of causes, like cargo and git.
            eprintln!("error: {e:#}");
            if e.downcast_ref::<UsageError>().is_some() {
                ExitCode::from(2)
            } else {
                ExitCode::from(1)
            }
        }
    }
}
