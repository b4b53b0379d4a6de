//! Writes the hand-made seed inputs of every fuzz target into
//! `fuzz/seeds/TARGET/`, built with the real encoders so that the fuzzers
//! start from valid input:
//!
//! ```text
//! cargo run --manifest-path fuzz/Cargo.toml --example seeds
//! ```
//!
//! Each file starts with the control bytes its target reads first (see the
//! target's doc comment).

use std::{fs, io, path::Path};

use bytes::{Bytes, BytesMut};
use nexnet::url_names::url_path_for_name;
use nexnet_codec::{
    Control, Frame, Handshake, Hello, MAX_DATA_PAYLOAD, Proof, ResetCode, StreamId, encode_message,
};
use nexnet_crypto::{DataKey, EncryptReader, name_id};
use nexnet_server::{
    CatalogEntry, Tombstone,
    protocol::{MemberAddr, Message, Refusal},
};
use nexnet_store::Cid;

fn write(dir: &Path, name: &str, bytes: &[u8]) -> io::Result<()> {
    fs::create_dir_all(dir)?;
    fs::write(dir.join(name), bytes)
}

fn with(control: &[u8], body: &[u8]) -> Vec<u8> {
    [control, body].concat()
}

fn frames() -> Vec<Frame> {
    vec![
        Frame::control(Bytes::from_static(b"\x00\x01\x02")),
        Frame::open(StreamId(1), Bytes::from_static(b"\x01\x07")),
        Frame::data(StreamId(1), Bytes::from(vec![0xab; 300])),
        Frame::data(StreamId(3), Bytes::new()),
        Frame::end(StreamId(1)),
        Frame::reset(StreamId(5), ResetCode::Refused),
        Frame::reset(StreamId(5), ResetCode::Other(77)),
        Frame::credit(StreamId(1), 1 << 20),
        Frame::ping(0x0102_0304_0506_0708),
        Frame::pong(42),
    ]
}

fn encoded(frames: &[Frame]) -> Vec<u8> {
    let mut out = BytesMut::new();
    for f in frames {
        f.encode(&mut out);
    }
    out.to_vec()
}

fn hello(listen: Option<&str>) -> Handshake {
    Handshake::Hello(Hello {
        node_id: [0x11; 32],
        listen_addr: listen.map(|a| a.parse().expect("an address")),
        nonce: [0x22; 32],
        max_payload: 1 << 20,
        stream_window: 256 * 1024,
    })
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("seeds");

    // frame: [limit, split, stream...]
    let dir = root.join("frame");
    let all = encoded(&frames());
    for (i, f) in frames().iter().enumerate() {
        write(
            &dir,
            &format!("kind-{i}"),
            &with(&[5, 0], &encoded(std::slice::from_ref(f))),
        )?;
    }
    write(&dir, "all-whole", &with(&[5, 0], &all))?;
    write(&dir, "all-bytewise", &with(&[6, 1], &all))?;
    write(&dir, "all-pieces", &with(&[4, 7], &all))?;
    let mut cut = all.clone();
    cut.truncate(all.len() - 3);
    write(&dir, "truncated", &with(&[5, 3], &cut))?;
    write(
        &dir,
        "oversize",
        &with(&[2, 0], &[0xff, 0xff, 0xff, 0xff, 2, 0, 0, 0, 1]),
    )?;
    write(&dir, "too-short", &with(&[5, 0], &[0, 0, 0, 2, 2, 0]))?;
    write(
        &dir,
        "unknown-kind",
        &with(&[5, 0], &[0, 0, 0, 5, 99, 0, 0, 0, 1]),
    )?;
    let big = encoded(&[Frame::data(
        StreamId(1),
        Bytes::from(vec![7; MAX_DATA_PAYLOAD]),
    )]);
    write(&dir, "max-data-prefix", &with(&[5, 6], &big[..64]))?;

    // handshake: [split, stream...]
    let dir = root.join("handshake");
    let proof = Handshake::Proof(Proof { mac: [0x33; 32] });
    let v4 = hello(Some("127.0.0.1:3000")).to_wire()?;
    let v6 = hello(Some("[::1]:3001")).to_wire()?;
    let none = hello(None).to_wire()?;
    let proof = proof.to_wire()?;
    let tail = encoded(&frames());
    write(&dir, "hello-v4", &with(&[0], &v4))?;
    write(
        &dir,
        "hello-v6-proof",
        &with(&[0], &[&v6[..], &proof].concat()),
    )?;
    write(
        &dir,
        "hello-proof-frames",
        &with(&[3], &[&none[..], &proof, &tail].concat()),
    )?;
    write(&dir, "http", &with(&[0], b"GET / HTTP/1.1\r\n\r\n"))?;
    write(&dir, "version-2", &with(&[0], b"NXNT\x00\x02\x00\x00"))?;
    write(&dir, "too-long", &with(&[0], b"NXNT\x00\x01\xff\xff"))?;

    // control: [which, payload...]
    let dir = root.join("control");
    let addr = "10.0.0.1:3000".parse()?;
    let name = name_id("hello");
    let entry = CatalogEntry::new(
        &DataKey::from_bytes([0x5a; 32]),
        "hello",
        name,
        Cid::from_bytes([2; 20]),
        32 + 5,
        5,
    )?;
    let tombstone = Tombstone::new(name, entry.created_ms);
    let messages = [
        Message::Members(vec![
            MemberAddr {
                node: [1; 32],
                addr,
            },
            MemberAddr {
                node: [2; 32],
                addr: "[::1]:9".parse()?,
            },
        ]),
        Message::Replicate { transfer: 300 },
        Message::Commit {
            transfer: 7,
            entry: entry.clone(),
        },
        Message::Committed,
        Message::Refused(Refusal::Other {
            code: None,
            text: "no room".into(),
        }),
        Message::Refused(Refusal::WrongLength {
            received: 1,
            expected: 2,
        }),
        Message::Refused(Refusal::DiskFull),
        Message::Lookup { name: [3; 16] },
        Message::Entry(None),
        Message::Entry(Some(entry.clone())),
        Message::Fetch {
            cid: [4; 20],
            transfer: 1 << 40,
        },
        Message::Sending { len: 123_456 },
        Message::Missing,
        Message::Object { transfer: 9 },
        Message::Has { cid: [5; 20] },
        Message::Have(true),
        Message::Delete {
            cid: [6; 20],
            tombstone,
        },
        Message::Deleted { had: false },
        Message::Tombstones(vec![([8; 20], tombstone)]),
        Message::Corrupt { cid: [9; 20] },
        Message::Superseded(entry),
    ];
    for (i, m) in messages.iter().enumerate() {
        let request = Control::Request {
            id: i as u64,
            body: m,
        }
        .encode()?;
        write(&dir, &format!("request-{i}"), &with(&[0], &request))?;
        write(&dir, &format!("open-{i}"), &with(&[1], &encode_message(m)?))?;
    }
    let notify = Control::Notify(Message::Have(false)).encode()?;
    write(&dir, "notify", &with(&[2], &notify))?;
    let response = Control::Response {
        id: 1,
        body: Message::Missing,
    }
    .encode()?;
    write(&dir, "response", &with(&[4], &response))?;

    // object_header: [flags, split, len0, len1, object...]
    let dir = root.join("object_header");
    let key = DataKey::from_bytes([0x5a; 32]);
    for (name, plain) in [
        ("empty", &b""[..]),
        ("short", b"hello"),
        ("long", &[0x42; 1000]),
    ] {
        let mut object = Vec::new();
        io::Read::read_to_end(&mut EncryptReader::new(&key, plain)?, &mut object)?;
        let len = (plain.len() as u16).to_be_bytes();
        write(
            &dir,
            &format!("{name}-exact"),
            &with(&[0, 0, len[0], len[1]], &object),
        )?;
        write(
            &dir,
            &format!("{name}-pieces"),
            &with(&[0, 3, 0, 1], &object),
        )?;
    }
    let other = DataKey::from_bytes([1; 32]);
    let mut object = Vec::new();
    io::Read::read_to_end(
        &mut EncryptReader::new(&other, &b"other key"[..])?,
        &mut object,
    )?;
    write(&dir, "other-key", &with(&[0, 0, 0, 9], &object))?;
    write(
        &dir,
        "truncated-header",
        &with(&[0, 0, 0, 0], &object[..20]),
    )?;

    // cid: [width, depth, text or bytes...]
    let dir = root.join("cid");
    write(
        &dir,
        "sha1-abc",
        &with(&[5, 8], b"a9993e364706816aba3e25717850c26c9cd0d89d"),
    )?;
    write(
        &dir,
        "upper",
        &with(&[2, 3], b"A9993E364706816ABA3E25717850C26C9CD0D89D"),
    )?;
    write(&dir, "short", &with(&[0, 0], b"a9993e"))?;
    write(&dir, "bytes", &with(&[7, 1], &[0xfe; 20]))?;
    write(
        &dir,
        "traversal",
        &with(&[5, 2], b"../../../../../../../../etc/passwd/xxxxx"),
    )?;

    // http_name: the text as a raw path and as a name.
    let dir = root.join("http_name");
    for (i, name) in [
        "plain.txt",
        "dir/sub dir/a file.bin",
        "100% sure?#frag",
        "üñíçødé/日本語/🦀",
        "a+b=c&d;e",
        "...",
    ]
    .iter()
    .enumerate()
    {
        write(&dir, &format!("name-{i}"), name.as_bytes())?;
        write(
            &dir,
            &format!("encoded-{i}"),
            url_path_for_name(name).as_bytes(),
        )?;
    }
    for (i, raw) in [
        "dir/sub%20dir/x",
        "%",
        "%zz",
        "%c3%28",
        "%2E%2e",
        "%00",
        "a%0Ab",
    ]
    .iter()
    .enumerate()
    {
        write(&dir, &format!("raw-{i}"), raw.as_bytes())?;
    }
    println!("seeds written to {}", root.display());
    Ok(())
}
