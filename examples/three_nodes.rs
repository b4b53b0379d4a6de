//! Three nodes on loopback, in one process: store a file on node 1, drop
//! node 1's copy and get it back from the mesh, read it on node 3, delete it
//! everywhere and show it gone.
//!
//! ```text
//! cargo run --release --example three_nodes                      # 64 MiB, ephemeral ports
//! cargo run --release --example three_nodes -- --size 1G
//! cargo run --release --example three_nodes -- --ports 3000,4000,5000 --size 1048576
//! cargo run --release --example three_nodes -- --help
//! ```
//!
//! The file is generated as it is read (`nexnet_testkit::Pattern`), so it is
//! never whole in memory, and what comes back is streamed through a digest
//! that is compared with the pattern's. The three data directories and the
//! shared key and network secret files live in a temp directory that is
//! removed at the end. Exits with 1 on any failure or mismatch, 2 on bad
//! arguments.

use std::{
    error::Error,
    net::SocketAddr,
    path::Path,
    process::ExitCode,
    time::{Duration, Instant},
};

use nexnet::server::{FileServer, ServerConfig, ServerError};
use nexnet_testkit::{Pattern, digest_async_reader, pattern_digest};

const DEFAULT_SIZE: u64 = 64 << 20;
const SEED: u64 = 0x6e65_786e_6574;
const NAME: &str = "demo/three-nodes.bin";

const USAGE: &str = "\
usage: three_nodes [--ports P1,P2,P3] [--size SIZE]

Starts three nexnet nodes on 127.0.0.1 in one process (node 2 and 3 join
through node 1), stores a generated file on node 1, evicts node 1's copy and
gets it back from the mesh, reads it on node 3, deletes it everywhere and
checks it is gone.

  --ports P1,P2,P3  listen ports of nodes 1, 2, 3 (default: ephemeral)
  --size SIZE       file size: bytes, or with a K, M, G suffix (powers of
                    1024; KiB/MiB/GiB also accepted); default 64M
  -h, --help        this text

Exit status: 0 when every step verified, 1 on a failure or mismatch, 2 on
bad arguments.";

struct Args {
    ports: [u16; 3],
    size: u64,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = match parse_args(std::env::args().skip(1)) {
        Ok(Some(args)) => args,
        Ok(None) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("error: {e}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match run(&args).await {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => {
            eprintln!("error: at least one step did not verify (see the table)");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprint!("error: {e}");
            let mut cause = e.source();
            while let Some(c) = cause {
                eprint!(": {c}");
                cause = c.source();
            }
            eprintln!();
            ExitCode::FAILURE
        }
    }
}

/// `Ok(None)`: help was asked for.
fn parse_args(mut args: impl Iterator<Item = String>) -> Result<Option<Args>, String> {
    let mut out = Args {
        ports: [0; 3],
        size: DEFAULT_SIZE,
    };
    while let Some(arg) = args.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f.to_string(), Some(v.to_string())),
            _ => (arg.clone(), None),
        };
        let mut value = |name: &str| {
            inline
                .clone()
                .or_else(|| args.next())
                .ok_or_else(|| format!("{name} needs a value"))
        };
        match flag.as_str() {
            "-h" | "--help" => return Ok(None),
            "--ports" => out.ports = parse_ports(&value("--ports")?)?,
            "--size" => out.size = parse_size(&value("--size")?)?,
            _ => return Err(format!("unknown argument {arg:?}")),
        }
    }
    Ok(Some(out))
}

fn parse_ports(text: &str) -> Result<[u16; 3], String> {
    let ports: Vec<u16> = text
        .split(',')
        .map(|p| {
            p.trim()
                .parse()
                .map_err(|_| format!("--ports: {p:?} is not a port number"))
        })
        .collect::<Result<_, _>>()?;
    let ports: [u16; 3] = ports
        .try_into()
        .map_err(|_| format!("--ports takes three comma-separated ports, not {text:?}"))?;
    for i in 0..3 {
        if ports[i] != 0 && ports[i + 1..].contains(&ports[i]) {
            return Err(format!("--ports: port {} given twice", ports[i]));
        }
    }
    Ok(ports)
}

/// `123`, `64K`, `64M`, `1G`, `1GiB`, `512mb`: binary units.
fn parse_size(text: &str) -> Result<u64, String> {
    nexnet::size::parse_size(text).map_err(|e| format!("--size: {e}"))
}

/// One line of the table.
struct Row {
    step: &'static str,
    node: usize,
    bytes: Option<u64>,
    secs: f64,
    ok: bool,
    note: String,
}

impl Row {
    fn print(&self) {
        let bytes = self.bytes.map_or("-".into(), |b| b.to_string());
        let rate = match self.bytes {
            Some(b) if b > 0 => format!("{:.0}", b as f64 / self.secs.max(1e-9) / 1e6),
            _ => "-".into(),
        };
        println!(
            "{:<12} {:>4} {:>12} {:>9.3} {:>8} {:>8}  {}",
            self.step,
            self.node,
            bytes,
            self.secs,
            rate,
            if self.ok { "yes" } else { "NO" },
            self.note
        );
    }
}

async fn run(args: &Args) -> Result<bool, Box<dyn Error>> {
    let work = tempfile::tempdir()?;
    println!(
        "file: {} bytes ({:.1} MiB), pattern seed {SEED:#x}",
        args.size,
        args.size as f64 / f64::from(1 << 20)
    );

    // What the file must read back as, computed once up front (untimed).
    let started = Instant::now();
    let size = args.size;
    let expected = tokio::task::spawn_blocking(move || pattern_digest(SEED, size)).await?;
    println!(
        "reference digest computed in {:.3} s",
        started.elapsed().as_secs_f64()
    );

    let nodes = start(work.path(), &args.ports).await?;
    let outcome = steps(&nodes, args.size, expected).await;
    for node in &nodes {
        node.shutdown().await;
    }
    drop(nodes);
    work.close()?;
    outcome
}

/// Starts the three nodes and waits until each sees the other two. Nodes
/// already started are shut down if a later one fails.
async fn start(dir: &Path, ports: &[u16; 3]) -> Result<Vec<FileServer>, Box<dyn Error>> {
    let key = dir.join("shared.key");
    let secret = dir.join("network.secret");
    let mut nodes: Vec<FileServer> = Vec::new();
    let result: Result<(), Box<dyn Error>> = async {
        for (i, port) in ports.iter().enumerate() {
            let mut config = ServerConfig::new(dir.join(format!("node{}", i + 1)))
                .key_file(&key)
                .secret_file(&secret)
                .listen(SocketAddr::from(([127, 0, 0, 1], *port)));
            if let Some(first) = nodes.first() {
                config = config.bootstrap(first.local_addr());
            }
            let node = FileServer::open(config)
                .await
                .map_err(|e| format!("starting node {} on 127.0.0.1:{port}: {e}", i + 1))?;
            println!(
                "node {}  {}  {:?}",
                i + 1,
                node.local_addr(),
                node.node_id()
            );
            nodes.push(node);
            if i == 0 {
                // The first node created the shared files.
                check_owner_only(&key)?;
                check_owner_only(&secret)?;
            }
        }
        for (i, node) in nodes.iter().enumerate() {
            if !node.wait_for_peers(2, Duration::from_secs(10)).await {
                return Err(format!(
                    "node {} sees {} peers after 10 s, not 2",
                    i + 1,
                    node.stats().peers
                )
                .into());
            }
        }
        println!("mesh up: every node sees 2 peers\n");
        Ok(())
    }
    .await;
    match result {
        Ok(()) => Ok(nodes),
        Err(e) => {
            for node in &nodes {
                node.shutdown().await;
            }
            Err(e)
        }
    }
}

/// The key and the network secret must be readable by their owner only.
fn check_owner_only(path: &Path) -> Result<(), Box<dyn Error>> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path)?.permissions().mode() & 0o777;
        if mode != 0o600 {
            return Err(format!("{} has mode {mode:o}, not 600", path.display()).into());
        }
        println!("        {} created, mode {mode:o}", path.display());
    }
    #[cfg(not(unix))]
    {
        let _ = std::fs::metadata(path)?;
    }
    Ok(())
}

async fn steps(
    nodes: &[FileServer],
    size: u64,
    expected: (u64, u64),
) -> Result<bool, Box<dyn Error>> {
    println!(
        "{:<12} {:>4} {:>12} {:>9} {:>8} {:>8}  note",
        "step", "node", "bytes", "time (s)", "MB/s", "verified"
    );
    let mut all_ok = true;
    let mut row = |r: Row| {
        all_ok &= r.ok;
        r.print();
    };

    // Store on node 1: encrypted once and cut into chunks, each written
    // here and sent to the other two as soon as it is read.
    let started = Instant::now();
    let receipt = nodes[0].store(NAME, Pattern::new(SEED, size)).await?;
    let secs = started.elapsed().as_secs_f64();
    let mut holding = 0;
    for n in nodes {
        holding += usize::from(n.has(NAME).await?);
    }
    row(Row {
        step: "store",
        node: 1,
        bytes: Some(receipt.plain_len),
        secs,
        ok: receipt.plain_len == size && receipt.committed.len() == 3 && holding == 3,
        note: format!(
            "{}/{} holders committed, {} nodes hold it, {} chunks, root {} bytes, cid {}",
            receipt.committed.len(),
            receipt.holders.len(),
            holding,
            receipt.chunks,
            receipt.object_len,
            &receipt.cid.to_string()[..12]
        ),
    });

    // Evict node 1's copy: the catalog keeps the name.
    let started = Instant::now();
    let had = nodes[0].evict(NAME).await?;
    let secs = started.elapsed().as_secs_f64();
    let still = nodes[0].has(NAME).await?;
    row(Row {
        step: "evict",
        node: 1,
        bytes: None,
        secs,
        ok: had && !still,
        note: format!("had a copy: {had}, has one now: {still}"),
    });

    // Get on node 1: its chunks fetched from nodes 2 and 3 at once, each
    // verified before its bytes are released (and kept: node 1 holds them).
    let r = get_and_check(&nodes[0], "get (remote)", 1, expected).await?;
    let fetched = nodes[0].has(NAME).await?;
    row(Row {
        ok: r.ok && fetched,
        note: format!("{}; copy kept on node 1: {fetched}", r.note),
        ..r
    });

    // Read on node 3, which holds a replica.
    row(get_and_check(&nodes[2], "get", 3, expected).await?);

    // Delete everywhere.
    let started = Instant::now();
    let report = nodes[0].delete(NAME).await?;
    let secs = started.elapsed().as_secs_f64();
    row(Row {
        step: "delete",
        node: 1,
        bytes: None,
        secs,
        ok: report.confirmed.len() == 3 && report.removed.len() == 3 && report.pending.is_empty(),
        note: format!(
            "{} confirmed, {} had a copy, {} pending",
            report.confirmed.len(),
            report.removed.len(),
            report.pending.len()
        ),
    });

    // Gone on every node: the name resolves nowhere, no object is left.
    for (i, node) in nodes.iter().enumerate() {
        let started = Instant::now();
        let got = node.get(NAME).await;
        let secs = started.elapsed().as_secs_f64();
        let stats = node.stats();
        let (not_found, what) = match got {
            Err(ServerError::NotFound { .. }) => (true, "get: NotFound".to_string()),
            Err(e) => (false, format!("get: unexpected error: {e}")),
            Ok(reader) => (
                false,
                format!("get: still readable ({} bytes)", reader.len()),
            ),
        };
        row(Row {
            step: "gone",
            node: i + 1,
            bytes: None,
            secs,
            ok: not_found && stats.objects == 0 && stats.files == 0,
            note: format!("{what}, objects {}, files {}", stats.objects, stats.files),
        });
    }
    Ok(all_ok)
}

/// Gets `NAME` on `node`, streams it through the digest and compares it
/// with the pattern's; the time runs from the call to the last byte, and
/// the first byte's time is noted.
async fn get_and_check(
    node: &FileServer,
    step: &'static str,
    index: usize,
    expected: (u64, u64),
) -> Result<Row, Box<dyn Error>> {
    let started = Instant::now();
    let mut reader = tokio::io::BufReader::new(node.get(NAME).await?);
    let announced = reader.get_ref().len();
    // Waits for the first bytes without consuming them.
    tokio::io::AsyncBufReadExt::fill_buf(&mut reader).await?;
    let opened = started.elapsed().as_secs_f64();
    let got = digest_async_reader(reader).await?;
    let secs = started.elapsed().as_secs_f64();
    let ok = got == expected && announced == expected.0;
    Ok(Row {
        step,
        node: index,
        bytes: Some(got.0),
        secs,
        ok,
        note: format!(
            "first byte after {opened:.3} s, digest {:016x} {} expected",
            got.1,
            if got == expected { "==" } else { "!=" }
        ),
    })
}
