//! The handshake: hellos with fresh nonces, then a MAC over both, keyed by
//! the network secret, from each side (HMAC-SHA256, with a different label
//! per role so one side's proof can never be replayed as the other's).

use std::net::SocketAddr;

use futures::{SinkExt, StreamExt};
use hmac::{Hmac, KeyInit, Mac};
use nexnet_codec::{FrameCodec, Handshake, HandshakeCodec, Hello, MAX_DATA_PAYLOAD, Proof};
use sha2::Sha256;
use tokio::net::TcpStream;
use tokio_util::codec::Framed;

use crate::{NodeId, P2pError, Result, TransportConfig};

type HmacSha256 = Hmac<Sha256>;

/// What the handshake learned about the peer.
#[derive(Clone, Debug)]
pub(crate) struct Remote {
    pub node_id: NodeId,
    pub listen_addr: Option<SocketAddr>,
    pub addr: SocketAddr,
    pub stream_window: u32,
    /// The largest frame payload the peer accepts.
    pub max_payload: usize,
}

/// Which side of the connection we are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Role {
    Dialer,
    Listener,
}

impl Role {
    fn label(self) -> &'static [u8] {
        match self {
            Role::Dialer => b"nexnet/handshake/v1/dialer",
            Role::Listener => b"nexnet/handshake/v1/listener",
        }
    }

    fn other(self) -> Self {
        match self {
            Role::Dialer => Role::Listener,
            Role::Listener => Role::Dialer,
        }
    }
}

fn proof(config: &TransportConfig, role: Role, transcript: &[u8]) -> HmacSha256 {
    // HMAC accepts keys of any length, so this cannot fail.
    let mut mac = <HmacSha256 as KeyInit>::new_from_slice(config.secret.expose())
        .unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
    mac.update(role.label());
    mac.update(transcript);
    mac
}

/// The next handshake message and its wire bytes.
async fn receive(
    framed: &mut Framed<TcpStream, HandshakeCodec>,
    addr: SocketAddr,
) -> Result<(Handshake, Vec<u8>)> {
    match framed.next().await {
        Some(message) => Ok(message?),
        None => Err(unexpected(addr, "connection closed during the handshake")),
    }
}

fn unexpected(addr: SocketAddr, reason: &'static str) -> P2pError {
    P2pError::Handshake { addr, reason }
}

/// Runs the handshake on a fresh connection and returns it switched to frames.
pub(crate) async fn handshake(
    stream: TcpStream,
    addr: SocketAddr,
    config: &TransportConfig,
    listen_addr: Option<SocketAddr>,
    role: Role,
) -> Result<(Framed<TcpStream, FrameCodec>, Remote)> {
    let mut framed = Framed::new(stream, HandshakeCodec);
    let mut nonce = [0u8; 32];
    crate::identity::fill_random(&mut nonce)?;
    let hello = Handshake::Hello(Hello {
        node_id: *config.node_id.as_bytes(),
        listen_addr,
        nonce,
        // What our decoder really accepts (the codec clamps the setting).
        max_payload: u32::try_from(FrameCodec::new(config.max_payload).max_payload())
            .unwrap_or(u32::MAX),
        stream_window: config.stream_window,
    });
    let my_wire = hello.to_wire()?;
    framed.send(&hello).await?;

    let (their_hello, their_wire) = match receive(&mut framed, addr).await? {
        (Handshake::Hello(hello), wire) => (hello, wire),
        _ => return Err(unexpected(addr, "expected a hello")),
    };
    let remote = Remote {
        node_id: NodeId::from_bytes(their_hello.node_id),
        listen_addr: their_hello.listen_addr,
        addr,
        stream_window: their_hello.stream_window,
        max_payload: usize::try_from(their_hello.max_payload).unwrap_or(usize::MAX),
    };
    if remote.node_id == config.node_id {
        return Err(P2pError::SelfConnection { addr });
    }
    if remote.stream_window == 0 {
        // Our streams to it would never get credit.
        return Err(unexpected(addr, "peer offers a zero stream window"));
    }
    if remote.max_payload < MAX_DATA_PAYLOAD {
        return Err(unexpected(
            addr,
            "peer accepts frames smaller than a data frame",
        ));
    }

    let mut transcript = Vec::with_capacity(my_wire.len() + their_wire.len());
    match role {
        Role::Dialer => {
            transcript.extend_from_slice(&my_wire);
            transcript.extend_from_slice(&their_wire);
        }
        Role::Listener => {
            transcript.extend_from_slice(&their_wire);
            transcript.extend_from_slice(&my_wire);
        }
    }
    let mine = proof(config, role, &transcript).finalize().into_bytes();
    let mut mac = [0u8; 32];
    mac.copy_from_slice(&mine);
    framed.send(&Handshake::Proof(Proof { mac })).await?;

    let their_proof = match receive(&mut framed, addr).await? {
        (Handshake::Proof(proof), _) => proof,
        _ => return Err(unexpected(addr, "expected a proof")),
    };
    // Constant-time comparison.
    proof(config, role.other(), &transcript)
        .verify_slice(&their_proof.mac)
        .map_err(|_| P2pError::WrongSecret { addr })?;

    let max_payload = config.max_payload;
    Ok((framed.map_codec(|_| FrameCodec::new(max_payload)), remote))
}
