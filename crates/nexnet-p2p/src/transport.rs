//! The `Transport` trait and its TCP implementation.

use std::{
    collections::HashMap,
    future::Future,
    net::SocketAddr,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
};

use futures::Stream;
use parking_lot::Mutex;
use tokio::{
    net::{TcpListener, TcpStream},
    sync::{OwnedSemaphorePermit, Semaphore, mpsc},
};
use tokio_util::{sync::CancellationToken, task::TaskTracker};
use tracing::{Instrument, info, warn};

use crate::{
    Event, Message, NodeId, P2pError, Peer, Result, TransportConfig, connection,
    handshake::{Role, handshake},
};

/// What a node needs from a network: dial peers, know who is connected, and
/// shut down. Incoming peers and everything they send arrive as [`Event`]s
/// on the receiver the transport was created with.
pub trait Transport<M: Message>: Send + Sync + 'static {
    /// This node's id.
    fn local_id(&self) -> NodeId;

    /// The address this node accepts connections on.
    fn local_addr(&self) -> SocketAddr;

    /// Connects to the node at `addr` and runs the handshake.
    fn dial(&self, addr: SocketAddr) -> impl Future<Output = Result<Peer<M>>> + Send;

    /// The peers connected now.
    fn peers(&self) -> Vec<Peer<M>>;

    /// Stops accepting, closes every connection, and waits for their tasks.
    fn close(&self) -> impl Future<Output = ()> + Send;
}

/// The events of a transport: an async stream (or call [`Events::next`]).
#[derive(Debug)]
pub struct Events<M> {
    rx: mpsc::Receiver<Event<M>>,
}

impl<M> Events<M> {
    /// The next event; `None` once the transport is closed and drained.
    pub async fn next(&mut self) -> Option<Event<M>> {
        self.rx.recv().await
    }
}

impl<M> Stream for Events<M> {
    type Item = Event<M>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Event<M>>> {
        self.rx.poll_recv(cx)
    }
}

/// The TCP transport: one connection per peer, many streams per connection.
pub struct TcpTransport<M> {
    inner: Arc<Inner<M>>,
}

impl<M> Clone for TcpTransport<M> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
        }
    }
}

impl<M> std::fmt::Debug for TcpTransport<M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TcpTransport")
            .field("node_id", &self.inner.config.node_id)
            .field("local_addr", &self.inner.local_addr)
            .finish_non_exhaustive()
    }
}

struct Inner<M> {
    config: TransportConfig,
    local_addr: SocketAddr,
    advertised: SocketAddr,
    events: mpsc::Sender<Event<M>>,
    peers: Mutex<HashMap<u64, Peer<M>>>,
    next_conn: std::sync::atomic::AtomicU64,
    limit: Arc<Semaphore>,
    handshakes: Arc<Semaphore>,
    shutdown: CancellationToken,
    tasks: TaskTracker,
}

impl<M: Message> TcpTransport<M> {
    /// Listens on `addr` (port 0 for an ephemeral one) and returns the
    /// transport and its events.
    pub async fn bind(addr: SocketAddr, config: TransportConfig) -> Result<(Self, Events<M>)> {
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| P2pError::Io {
                op: "bind",
                addr,
                source,
            })?;
        let local_addr = listener.local_addr().map_err(|source| P2pError::Io {
            op: "read the address of",
            addr,
            source,
        })?;
        let (events, rx) = mpsc::channel(config.event_capacity.max(1));
        let inner = Arc::new(Inner {
            advertised: config.advertise.unwrap_or(local_addr),
            limit: Arc::new(Semaphore::new(config.max_connections)),
            handshakes: Arc::new(Semaphore::new(config.max_handshakes.max(1))),
            config,
            local_addr,
            events,
            peers: Mutex::default(),
            next_conn: Default::default(),
            shutdown: CancellationToken::new(),
            tasks: TaskTracker::new(),
        });
        let span = tracing::info_span!("transport", node = ?inner.config.node_id, %local_addr);
        inner
            .tasks
            .spawn(accept_loop(inner.clone(), listener).instrument(span));
        Ok((Self { inner }, Events { rx }))
    }
}

async fn accept_loop<M: Message>(inner: Arc<Inner<M>>, listener: TcpListener) {
    loop {
        let accepted = tokio::select! {
            () = inner.shutdown.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        let (socket, addr) = match accepted {
            Ok(pair) => pair,
            Err(e) => {
                // Out of file descriptors and the like: pause, do not spin.
                warn!(error = %e, "accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            }
        };
        // Strangers get a handshake slot, not a connection slot: only a
        // peer that proved the secret can occupy one of those.
        let Ok(handshaking) = inner.handshakes.clone().try_acquire_owned() else {
            warn!(%addr, "too many handshakes in progress; refusing");
            continue;
        };
        let inner2 = inner.clone();
        inner.tasks.spawn(async move {
            if let Err(e) = establish(&inner2, socket, addr, Role::Listener, None).await {
                warn!(%addr, reason = %e, "refused incoming connection");
            }
            drop(handshaking);
        });
    }
}

/// Runs the handshake with a time-out, then starts the connection.
async fn establish<M: Message>(
    inner: &Arc<Inner<M>>,
    socket: TcpStream,
    addr: SocketAddr,
    role: Role,
    permit: Option<OwnedSemaphorePermit>,
) -> Result<Peer<M>> {
    let _ = socket.set_nodelay(true);
    let after = inner.config.handshake_timeout;
    let (framed, remote) = tokio::time::timeout(
        after,
        handshake(socket, addr, &inner.config, Some(inner.advertised), role),
    )
    .await
    .map_err(|_| P2pError::HandshakeTimeout { addr, after })??;
    let permit =
        match permit {
            Some(permit) => permit,
            None => inner.limit.clone().try_acquire_owned().map_err(|_| {
                P2pError::TooManyConnections {
                    limit: inner.config.max_connections,
                }
            })?,
        };
    info!(peer = ?remote.node_id, %addr, ?role, "peer connected");

    let (peer, driver) = connection::start(
        framed,
        remote,
        role,
        &inner.config,
        inner.events.clone(),
        inner.shutdown.clone(),
    );
    let key = inner
        .next_conn
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    inner.peers.lock().insert(key, peer.clone());
    // Connected goes out before the connection runs, so it precedes every
    // event of the peer. A transport that is closing does not wait for an
    // application that no longer takes events.
    tokio::select! {
        _ = inner.events.send(Event::Connected(peer.clone())) => {}
        () = inner.shutdown.cancelled() => {}
    }
    let inner2 = inner.clone();
    inner.tasks.spawn(async move {
        driver.await;
        inner2.peers.lock().remove(&key);
        drop(permit);
    });
    Ok(peer)
}

impl<M: Message> Transport<M> for TcpTransport<M> {
    fn local_id(&self) -> NodeId {
        self.inner.config.node_id
    }

    fn local_addr(&self) -> SocketAddr {
        self.inner.local_addr
    }

    async fn dial(&self, addr: SocketAddr) -> Result<Peer<M>> {
        let inner = &self.inner;
        if inner.shutdown.is_cancelled() {
            return Err(P2pError::Shutdown);
        }
        let permit =
            inner
                .limit
                .clone()
                .try_acquire_owned()
                .map_err(|_| P2pError::TooManyConnections {
                    limit: inner.config.max_connections,
                })?;
        let after = inner.config.handshake_timeout;
        let socket = tokio::time::timeout(after, TcpStream::connect(addr))
            .await
            .map_err(|_| P2pError::HandshakeTimeout { addr, after })?
            .map_err(|source| P2pError::Io {
                op: "connect to",
                addr,
                source,
            })?;
        establish(inner, socket, addr, Role::Dialer, Some(permit)).await
    }

    fn peers(&self) -> Vec<Peer<M>> {
        self.inner
            .peers
            .lock()
            .values()
            .filter(|p| !p.is_closed())
            .cloned()
            .collect()
    }

    async fn close(&self) {
        self.inner.shutdown.cancel();
        self.inner.tasks.close();
        self.inner.tasks.wait().await;
    }
}
