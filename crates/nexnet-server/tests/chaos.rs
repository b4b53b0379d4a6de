//! Chaos against a model: five nodes (R = 3, the default quorums), one
//! client doing random PUT, GET and DELETE on a few reused names through
//! random nodes while nodes are stopped and restarted on their data (at
//! most two down at once). Every answer is checked against a model of the
//! acknowledged operations. The client is sequential, so the model knows
//! the one right answer:
//!
//! - a GET returns exactly the last acknowledged version of the name, or
//!   says it cannot (503: `NoReadQuorum`, `Unavailable`, or a read that
//!   fails half-way because every holder of a chunk is down); never "not
//!   found" for a name whose last acknowledged operation was a PUT (a lost
//!   or falsely absent file), never an older version (stale), never a
//!   deleted one (resurrected);
//! - a PUT that fails (`NotStored`) changes nothing: the next GET returns
//!   the version before it;
//! - a DELETE of a name the model holds is not "not found".
//!
//! At the end every node is back, a repair pass runs on each, and every
//! name reads on every node as the model says.
//!
//! `NEXNET_CHAOS_OPS` (default 150) sets the number of steps, and
//! `NEXNET_CHAOS_SEED` replays a run (the seed is printed).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{collections::HashMap, net::SocketAddr, time::Duration};

use nexnet_server::{FileServer, ServerConfig, ServerError};
use nexnet_testkit::{
    Pattern, Rng, digest_async_reader,
    mesh::{Mesh, restart, stop},
    pattern_digest,
};

const NODES: usize = 5;
const NAMES: usize = 6;
const MAX_DOWN: usize = 2;

/// A node slot: running, or stopped with the settings to restart it.
enum Slot {
    Up(FileServer),
    Down(Box<ServerConfig>),
}

#[derive(Default, Debug)]
struct Counts {
    puts: usize,
    puts_refused: usize,
    gets: usize,
    gets_unavailable: usize,
    gets_cut: usize,
    deletes: usize,
    deletes_refused: usize,
    stops: usize,
    restarts: usize,
}

fn up(slots: &[Slot]) -> Vec<usize> {
    (0..slots.len())
        .filter(|i| matches!(slots[*i], Slot::Up(_)))
        .collect()
}

fn node(slots: &[Slot], i: usize) -> &FileServer {
    match &slots[i] {
        Slot::Up(n) => n,
        Slot::Down(_) => unreachable!("node {i} is down"),
    }
}

/// What a GET of `name` on `node` gave: the digest of what it read, or
/// the error that opened it, or (`Ok(None)`) a read cut in the middle (a
/// chunk whose holders are all down: the reader fails, it never makes up
/// bytes).
async fn get(node: &FileServer, name: &str) -> Result<Option<(u64, u64)>, ServerError> {
    let reader = node.get(name).await?;
    Ok(digest_async_reader(reader).await.ok())
}

/// Checks what `reader` reads of `name` against `want`; returns a
/// violation, if any.
async fn check_get(
    reader: &FileServer,
    name: &str,
    want: Option<(u64, u64)>,
    counts: &mut Counts,
) -> Option<String> {
    counts.gets += 1;
    match (get(reader, name).await, want) {
        (Ok(Some(got)), Some((seed, len))) if got == pattern_digest(seed, len) => None,
        (Ok(Some(_)), Some((seed, _))) => Some(format!(
            "{name}: not the last acknowledged version (seed {seed})"
        )),
        (Ok(Some(_)), None) => Some(format!("{name}: served after its acknowledged delete")),
        (Ok(None), Some(_)) => {
            counts.gets_cut += 1;
            None
        }
        (Ok(None), None) => Some(format!("{name}: opened after its acknowledged delete")),
        (Err(ServerError::NotFound { .. }), None) => None,
        (Err(ServerError::NotFound { .. }), Some(_)) => Some(format!(
            "{name}: not found, though its last acknowledged operation was a put"
        )),
        (Err(ServerError::NoReadQuorum { .. } | ServerError::Unavailable { .. }), _) => {
            counts.gets_unavailable += 1;
            None
        }
        (Err(e), _) => Some(format!("{name}: unexpected error {e}")),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_operations_under_stops_and_restarts_match_the_model() {
    let ops: usize = std::env::var("NEXNET_CHAOS_OPS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(150);
    let seed: u64 = std::env::var("NEXNET_CHAOS_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        });
    println!("chaos: NEXNET_CHAOS_SEED={seed} NEXNET_CHAOS_OPS={ops}");
    let mut rng = Rng(seed);
    let mut mesh = Mesh::start(NODES, 3).await;
    let mut slots: Vec<Slot> = Vec::new();
    while let Some(n) = mesh.pop() {
        slots.insert(0, Slot::Up(n));
    }
    let mut model: HashMap<String, Option<(u64, u64)>> = HashMap::new();
    let mut counts = Counts::default();
    let mut violations = Vec::new();

    for step in 0..ops {
        let live = up(&slots);
        if rng.below(10) == 0 {
            let down: Vec<usize> = (0..NODES).filter(|i| !live.contains(i)).collect();
            if down.len() < MAX_DOWN && rng.below(2) == 0 {
                let i = live[rng.below(live.len())];
                let Slot::Up(n) =
                    std::mem::replace(&mut slots[i], Slot::Down(Box::new(ServerConfig::new(""))))
                else {
                    unreachable!()
                };
                slots[i] = Slot::Down(Box::new(stop(n).await));
                counts.stops += 1;
            } else if let Some(&i) = down.first() {
                let via: SocketAddr = node(&slots, live[0]).local_addr();
                let Slot::Down(config) =
                    std::mem::replace(&mut slots[i], Slot::Down(Box::new(ServerConfig::new(""))))
                else {
                    unreachable!()
                };
                let back = restart(*config, via).await;
                back.wait_for_peers(up(&slots).len(), Duration::from_secs(10))
                    .await;
                slots[i] = Slot::Up(back);
                counts.restarts += 1;
            }
            continue;
        }
        let live = up(&slots);
        let at = node(&slots, live[rng.below(live.len())]);
        let name = format!("chaos/{}", rng.below(NAMES));
        let want = model.get(&name).copied().flatten();
        match rng.below(20) {
            0..=7 => {
                let (seed, len) = (step as u64 + 1, 500 + rng.below(3000) as u64);
                counts.puts += 1;
                match at.store(&name, Pattern::new(seed, len)).await {
                    Ok(_) | Err(ServerError::NotDurable { .. }) => {
                        model.insert(name.clone(), Some((seed, len)));
                    }
                    Err(ServerError::NotStored { .. }) => counts.puts_refused += 1,
                    Err(e) => violations.push(format!("step {step}: put {name}: {e}")),
                }
            }
            8..=16 => {
                if let Some(v) = check_get(at, &name, want, &mut counts).await {
                    violations.push(format!("step {step}: {v}"));
                }
            }
            _ => {
                counts.deletes += 1;
                match at.delete(&name).await {
                    Ok(_) => {
                        model.insert(name.clone(), None);
                    }
                    Err(ServerError::NotFound { .. }) if want.is_none() => {}
                    Err(ServerError::NoReadQuorum { .. }) => counts.deletes_refused += 1,
                    Err(e) => violations.push(format!("step {step}: delete {name}: {e}")),
                }
            }
        }
    }

    // Everyone back, a repair pass on each, and every name as the model
    // says on every node.
    let via = node(&slots, up(&slots)[0]).local_addr();
    for slot in &mut slots {
        if matches!(slot, Slot::Down(_)) {
            let Slot::Down(config) =
                std::mem::replace(slot, Slot::Down(Box::new(ServerConfig::new(""))))
            else {
                unreachable!()
            };
            *slot = Slot::Up(restart(*config, via).await);
            counts.restarts += 1;
        }
    }
    for n in slots.iter() {
        if let Slot::Up(n) = n {
            assert!(n.wait_for_peers(NODES - 1, Duration::from_secs(15)).await);
        }
    }
    for n in slots.iter() {
        if let Slot::Up(n) = n {
            n.repair().await;
        }
    }
    // Now nothing may be unavailable.
    let (unavailable, cut) = (counts.gets_unavailable, counts.gets_cut);
    for (name, want) in &model {
        for n in slots.iter() {
            if let Slot::Up(n) = n
                && let Some(v) = check_get(n, name, *want, &mut counts).await
            {
                violations.push(format!("at the end: {v}"));
            }
        }
    }
    assert_eq!(
        (counts.gets_unavailable, counts.gets_cut),
        (unavailable, cut),
        "a read failed with every node up"
    );
    println!("chaos: {counts:?}; {} violations", violations.len());
    assert!(violations.is_empty(), "{violations:#?}");
    for slot in slots {
        if let Slot::Up(n) = slot {
            n.shutdown().await;
        }
    }
}
