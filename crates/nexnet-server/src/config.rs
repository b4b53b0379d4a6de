//! How a node is set up.

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use crate::{Result, ServerError};

/// The longest time-out or interval a configuration may hold (365 days).
pub const MAX_DURATION: Duration = Duration::from_secs(365 * 24 * 60 * 60);

/// A node's settings. [`ServerConfig::new`] gives the defaults; the
/// builder methods change one thing each.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct ServerConfig {
    /// Holds the node id, data key, network secret, objects and catalog.
    pub data_dir: PathBuf,
    /// Where to accept peers (port 0 picks a free port).
    pub listen: SocketAddr,
    /// The address peers should dial, if not `listen` (behind NAT, or when
    /// listening on 0.0.0.0).
    pub advertise: Option<SocketAddr>,
    /// Nodes to join through; the rest of the mesh is learnt from them.
    pub bootstrap: Vec<SocketAddr>,
    /// How many nodes hold each object (R).
    pub replication: usize,
    /// How many of them must commit before a store succeeds (W). `None`:
    /// for chunks and roots, every holder reachable when the store starts
    /// (at least one); for the name's entry, a majority of the name's
    /// holders, so that every read quorum meets every write.
    pub write_quorum: Option<usize>,
    /// How many of a name's holders a read asks before it answers. `None`:
    /// the fewest that meet every write quorum (W + Q > R: two of three
    /// with the defaults, one of two); `Some(1)` reads
    /// this node's own entry when it has one (available first, possibly
    /// stale). Without that many answers a read fails with
    /// [`ServerError::NoReadQuorum`] (HTTP 503), never a 404.
    pub read_quorum: Option<usize>,
    /// How long a request to a peer may take.
    pub request_timeout: Duration,
    /// How long a transfer may go without progress before it is abandoned.
    pub stall_timeout: Duration,
    /// Whether objects and catalog entries are fsynced before they count
    /// as stored.
    pub fsync: bool,
    /// How often the repair pass runs (it also runs when a peer connects).
    /// `None` turns the periodic pass off.
    pub repair_interval: Option<Duration>,
    /// The data key file (default `DATA_DIR/data.key`). Nodes that share it
    /// read each other's files.
    pub key_file: Option<PathBuf>,
    /// The network secret file (default `DATA_DIR/network.secret`). Only
    /// nodes that share it can connect.
    pub secret_file: Option<PathBuf>,
    /// How often idle connections are pinged; three missed intervals drop
    /// the peer.
    pub heartbeat_interval: Duration,
    /// The longest wait between two attempts to reach a lost peer.
    pub max_redial_backoff: Duration,
    /// How long a member may stay unreachable before it is forgotten
    /// (default one day): no longer redialed, no longer a holder in
    /// placement (repair then gives its objects to other nodes). It joins
    /// again as soon as it connects. `None` keeps members forever.
    pub forget_after: Option<Duration>,
    /// Bytes per chunk of new files: a power of two from 64 KiB to 16 MiB
    /// (default 1 MiB). Each file records its own.
    pub chunk_size: u32,
    /// Bytes of chunks this node keeps after reading files it does not
    /// hold (default 256 MiB), evicted least recently used; 0 keeps none.
    pub cache_size: u64,
    /// How long a holder may take to deliver a chunk before a read asks
    /// the next holder for it too (default 1 s).
    pub hedge_delay: Duration,
    /// How old an object no file names must be before the collector
    /// removes it (default one day): longer than any store in flight.
    pub gc_grace: Duration,
    /// How long a tombstone is kept (default 30 days), after which a
    /// repair pass collects it. A node away for longer than this (and
    /// longer than `forget_after`) must be wiped before it rejoins: what it
    /// held that was deleted meanwhile could come back.
    pub tombstone_horizon: Duration,
    /// Ids per manifest node of new files. Tests lower it to build deep
    /// trees from small files; not a setting for users.
    #[doc(hidden)]
    pub manifest_fanout: u32,
}

impl ServerConfig {
    /// Defaults: listen on 127.0.0.1 on a free port, R = 3, W = every
    /// reachable holder, 5 s requests, 30 s stall limit, fsync on, repair
    /// every 10 minutes.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        Self {
            data_dir: data_dir.into(),
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            advertise: None,
            bootstrap: Vec::new(),
            replication: 3,
            write_quorum: None,
            read_quorum: None,
            request_timeout: Duration::from_secs(5),
            stall_timeout: Duration::from_secs(30),
            fsync: true,
            repair_interval: Some(Duration::from_secs(600)),
            key_file: None,
            secret_file: None,
            heartbeat_interval: Duration::from_secs(5),
            max_redial_backoff: Duration::from_secs(30),
            forget_after: Some(Duration::from_secs(24 * 60 * 60)),
            chunk_size: crate::manifest::DEFAULT_CHUNK_SIZE,
            cache_size: 256 << 20,
            hedge_delay: Duration::from_secs(1),
            gc_grace: Duration::from_secs(24 * 60 * 60),
            tombstone_horizon: Duration::from_secs(30 * 24 * 60 * 60),
            manifest_fanout: crate::manifest::FANOUT,
        }
    }

    /// Sets the chunk size of new files.
    pub fn chunk_size(mut self, bytes: u32) -> Self {
        self.chunk_size = bytes;
        self
    }

    /// Sets the read cache's budget.
    pub fn cache_size(mut self, bytes: u64) -> Self {
        self.cache_size = bytes;
        self
    }

    /// Sets the hedge delay of chunk reads.
    pub fn hedge_delay(mut self, after: Duration) -> Self {
        self.hedge_delay = after;
        self
    }

    /// Sets the collector's grace period.
    pub fn gc_grace(mut self, after: Duration) -> Self {
        self.gc_grace = after;
        self
    }

    /// Sets how long tombstones are kept.
    pub fn tombstone_horizon(mut self, after: Duration) -> Self {
        self.tombstone_horizon = after;
        self
    }

    /// Sets the manifest fan-out of new files (tests only).
    #[doc(hidden)]
    pub fn manifest_fanout(mut self, ids: u32) -> Self {
        self.manifest_fanout = ids;
        self
    }

    /// Sets the listen address.
    pub fn listen(mut self, addr: SocketAddr) -> Self {
        self.listen = addr;
        self
    }

    /// Sets the advertised address.
    pub fn advertise(mut self, addr: SocketAddr) -> Self {
        self.advertise = Some(addr);
        self
    }

    /// Adds a bootstrap peer.
    pub fn bootstrap(mut self, addr: SocketAddr) -> Self {
        self.bootstrap.push(addr);
        self
    }

    /// Sets the replication factor R.
    pub fn replication(mut self, r: usize) -> Self {
        self.replication = r;
        self
    }

    /// Sets the write quorum W.
    pub fn write_quorum(mut self, w: usize) -> Self {
        self.write_quorum = Some(w);
        self
    }

    /// Sets the read quorum.
    pub fn read_quorum(mut self, q: usize) -> Self {
        self.read_quorum = Some(q);
        self
    }

    /// How many of `holders` name holders must record a name's entry.
    pub(crate) fn name_write_quorum(&self, holders: usize) -> usize {
        self.write_quorum
            .unwrap_or(holders / 2 + 1)
            .clamp(1, holders.max(1))
    }

    /// How many of `holders` name holders a read needs answers from: by
    /// default the fewest that meet every write quorum (W + Q > R), so a
    /// majority of three with the default W.
    pub(crate) fn name_read_quorum(&self, holders: usize) -> usize {
        let meets_writes = holders + 1 - self.name_write_quorum(holders).min(holders);
        self.read_quorum
            .unwrap_or(meets_writes)
            .clamp(1, holders.max(1))
    }

    /// Sets the request time-out.
    pub fn request_timeout(mut self, after: Duration) -> Self {
        self.request_timeout = after;
        self
    }

    /// Sets the stall time-out of transfers.
    pub fn stall_timeout(mut self, after: Duration) -> Self {
        self.stall_timeout = after;
        self
    }

    /// Turns fsync on or off.
    pub fn fsync(mut self, on: bool) -> Self {
        self.fsync = on;
        self
    }

    /// Sets (or, with `None`, turns off) the periodic repair pass.
    pub fn repair_interval(mut self, every: Option<Duration>) -> Self {
        self.repair_interval = every;
        self
    }

    /// Uses this data key file.
    pub fn key_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.key_file = Some(path.into());
        self
    }

    /// Uses this network secret file.
    pub fn secret_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.secret_file = Some(path.into());
        self
    }

    /// Sets the heartbeat interval.
    pub fn heartbeat_interval(mut self, every: Duration) -> Self {
        self.heartbeat_interval = every;
        self
    }

    /// Sets the longest redial back-off.
    pub fn max_redial_backoff(mut self, most: Duration) -> Self {
        self.max_redial_backoff = most;
        self
    }

    /// Sets how long an unreachable member is kept (`None`: forever).
    pub fn forget_after(mut self, after: Option<Duration>) -> Self {
        self.forget_after = after;
        self
    }

    pub(crate) fn check(&self) -> Result<()> {
        let bad = |what: &str| Err(ServerError::Config(what.into()));
        if self.replication == 0 {
            return bad("replication must be at least 1");
        }
        if self.write_quorum == Some(0) {
            return bad("the write quorum must be at least 1");
        }
        if let Some(w) = self.write_quorum
            && w > self.replication
        {
            return bad("the write quorum cannot exceed the replication factor");
        }
        if self.read_quorum == Some(0) {
            return bad("the read quorum must be at least 1");
        }
        if let Some(q) = self.read_quorum
            && q > self.replication
        {
            return bad("the read quorum cannot exceed the replication factor");
        }
        if self.request_timeout.is_zero() || self.stall_timeout.is_zero() {
            return bad("time-outs must be positive");
        }
        if self.repair_interval.is_some_and(|d| d.is_zero()) {
            return bad("the repair interval must be positive");
        }
        if self.heartbeat_interval.is_zero() || self.max_redial_backoff.is_zero() {
            return bad("intervals must be positive");
        }
        let c = self.chunk_size;
        if !c.is_power_of_two()
            || !(crate::manifest::MIN_CHUNK_SIZE..=crate::manifest::MAX_CHUNK_SIZE).contains(&c)
        {
            return bad("the chunk size must be a power of two from 64 KiB to 16 MiB");
        }
        if !(2..=crate::manifest::FANOUT).contains(&self.manifest_fanout) {
            return bad("the manifest fan-out must be from 2 to 16384");
        }
        if self.hedge_delay.is_zero() {
            return bad("the hedge delay must be positive");
        }
        if self.forget_after.is_some_and(|d| d.is_zero()) {
            return bad("forget_after must be positive (None keeps members forever)");
        }
        // Deadlines are instants plus these; a year keeps that arithmetic
        // far from overflowing and is longer than any sensible setting.
        let longest = [
            Some(self.request_timeout),
            Some(self.stall_timeout),
            self.repair_interval,
            Some(self.heartbeat_interval),
            Some(self.max_redial_backoff),
            self.forget_after,
            Some(self.hedge_delay),
            Some(self.gc_grace),
        ];
        if longest.into_iter().flatten().any(|d| d > MAX_DURATION) {
            return bad("time-outs and intervals must be at most 365 days");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_must_be_positive_and_at_most_a_year() {
        let base = || ServerConfig::new("/nonexistent");
        assert!(base().check().is_ok());
        assert!(base().forget_after(None).check().is_ok());
        assert!(base().repair_interval(None).check().is_ok());
        assert!(base().forget_after(Some(MAX_DURATION)).check().is_ok());
        let too_long = MAX_DURATION + Duration::from_secs(1);
        for bad in [
            base().forget_after(Some(Duration::ZERO)),
            base().heartbeat_interval(Duration::ZERO),
            base().repair_interval(Some(Duration::ZERO)),
            base().forget_after(Some(too_long)),
            base().heartbeat_interval(too_long),
            base().repair_interval(Some(too_long)),
            base().request_timeout(Duration::MAX),
        ] {
            assert!(
                matches!(bad.check(), Err(ServerError::Config(_))),
                "{bad:?}"
            );
        }
    }
}
