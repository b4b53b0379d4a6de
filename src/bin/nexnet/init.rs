//! `nexnet init`.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;

/// Creates a node's data directory.
#[derive(Debug, Args)]
pub struct InitArgs {
    /// The node's data directory (created if missing; must not hold a node).
    #[arg(long, value_name = "DIR")]
    data: PathBuf,
    /// Adopt this data key file (copied to DIR/data.key) so that nodes share
    /// it and read each other's files.
    #[arg(long, value_name = "FILE")]
    key_file: Option<PathBuf>,
    /// Adopt this network secret file (copied to DIR/network.secret): only
    /// nodes that hold the same secret can connect.
    #[arg(long, value_name = "FILE")]
    secret_file: Option<PathBuf>,
}

pub fn run(args: InitArgs) -> Result<()> {
    let made = nexnet::server::init_data_dir(
        &args.data,
        args.key_file.as_deref(),
        args.secret_file.as_deref(),
    )
    .with_context(|| format!("cannot initialise a node in {}", args.data.display()))?;
    let dir = args.data.display();
    println!("initialised node {} in {dir}", made.node_id);
    println!("  data key        {} (mode 0600)", made.key_file.display());
    println!(
        "  network secret  {} (mode 0600)",
        made.secret_file.display()
    );
    println!();
    println!("Other nodes of this network need the same secret, and the same key to read");
    println!("these files. Copy both to each machine (scp keeps them private), then:");
    println!(
        "  nexnet init --data DIR --key-file {} --secret-file {}",
        made.key_file.display(),
        made.secret_file.display()
    );
    println!("Start this node with:  nexnet serve --data {dir}");
    Ok(())
}
