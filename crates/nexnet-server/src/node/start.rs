//! Starting a node: its data directory opened (identity, key, secret,
//! store, catalog), the start-up sweep, the transport bound, the tasks
//! spawned.

use std::sync::{Arc, atomic::AtomicU64};

use nexnet_crypto::{DataKey, secret_file};
use nexnet_p2p::{NetworkSecret, TcpTransport, Transport, TransportConfig};
use nexnet_store::{CasPath, ObjectStore, StoreConfig};
use tokio::sync::{Notify, watch};
use tokio_util::{sync::CancellationToken, task::TaskTracker};
use tracing::{Instrument, info, info_span};

use super::{Node, events, membership, repair, sweep};
use crate::{
    Result, ServerConfig, ServerError,
    catalog::Catalog,
    data_dir::{KEY_FILE, NODE_ID_FILE, SECRET_FILE, load_or_create_node_id},
    members::Members,
    transfer::Rendezvous,
};

/// The object layout of a new data directory: two 5-character levels,
/// `ab12c/34de5/<cid>`. The store's default goes all 8 levels deep, which
/// costs every object eight directories to create (and fsync) and to prune
/// again: small-file stores and deletes ran at less than half the speed
/// (docs/DESIGN.md, "Object layout of a node").
const NODE_LAYOUT: CasPath = CasPath::new(5, 2);

impl Node {
    /// Opens the data directory, binds the transport and starts the tasks.
    pub(crate) async fn start(config: ServerConfig) -> Result<Arc<Self>> {
        config.check()?;
        let dir = config.data_dir.clone();
        tokio::fs::create_dir_all(&dir)
            .await
            .map_err(|e| ServerError::io("create data directory", &dir, e))?;
        let store = open_store(&config).await?;
        let (id, key, secret, catalog) = {
            let config = config.clone();
            tokio::task::spawn_blocking(move || open_files(&config))
                .await
                .map_err(|e| ServerError::io("open", &dir, std::io::Error::other(e)))??
        };
        let cache = super::cache::Cache::open(dir.join("cache"), config.cache_size).await?;
        // Before the transport binds, so no transfer is in flight.
        sweep::remove_deleted(&store, &catalog).await;
        let mut tc = TransportConfig::new(id, secret);
        tc.advertise = config.advertise;
        tc.heartbeat_interval = config.heartbeat_interval;
        let (transport, events) = TcpTransport::bind(config.listen, tc).await?;
        info!(node = ?id, addr = %transport.local_addr(), key = ?key.id(), files = catalog.len(), "node started");
        let node = Arc::new(Self {
            members: Members::new(id),
            config,
            id,
            key,
            store,
            catalog,
            transport,
            replicas: Rendezvous::new(),
            chunk_puts: Rendezvous::new(),
            fetches: Rendezvous::new(),
            next_transfer: AtomicU64::new(1),
            tasks: TaskTracker::new(),
            shutdown: CancellationToken::new(),
            repair_soon: Notify::new(),
            connected: watch::Sender::new(0),
            budget: Arc::default(),
            cache,
            chunk_fetches: AtomicU64::new(0),
            served_bytes: AtomicU64::new(0),
            clock: Default::default(),
            fetching: Default::default(),
            storing: Default::default(),
            referenced: Default::default(),
        });
        let span = info_span!("node", id = ?id);
        node.tasks
            .spawn(events::run(node.clone(), events).instrument(span.clone()));
        node.tasks
            .spawn(repair::run(node.clone()).instrument(span.clone()));
        for addr in node.config.bootstrap.clone() {
            node.tasks
                .spawn(membership::redial(node.clone(), None, addr).instrument(span.clone()));
        }
        Ok(node)
    }
}

/// The object store, which locks the directory: a second node on it stops
/// here. A store keeps the layout it was created with; a new one gets the
/// node's (see [`NODE_LAYOUT`]).
async fn open_store(config: &ServerConfig) -> Result<ObjectStore> {
    let store_dir = config.data_dir.join("store");
    let layout = CasPath::recorded_in(&store_dir)
        .await?
        .unwrap_or(NODE_LAYOUT);
    let settings = StoreConfig::default().fsync(config.fsync);
    Ok(ObjectStore::open_with(store_dir, settings, layout).await?)
}

/// The node's identity, data key, network secret and catalog (blocking).
fn open_files(
    config: &ServerConfig,
) -> Result<(nexnet_p2p::NodeId, DataKey, NetworkSecret, Catalog)> {
    let dir = &config.data_dir;
    let id = load_or_create_node_id(&dir.join(NODE_ID_FILE))?;
    let key_file = config
        .key_file
        .clone()
        .unwrap_or_else(|| dir.join(KEY_FILE));
    let key = DataKey::load_or_generate(key_file)?;
    let secret_path = config
        .secret_file
        .clone()
        .unwrap_or_else(|| dir.join(SECRET_FILE));
    let secret = secret_file::load_or_generate(&secret_path)?;
    let catalog = Catalog::open(&dir.join("catalog"), config.fsync)?;
    Ok((id, key, NetworkSecret::from_bytes(*secret), catalog))
}
