//! Encrypts a file into a content-addressed store, reads it back verified,
//! decrypts it, and checks every byte.
//!
//! ```text
//! cargo run --release --example store_and_read               # a generated 64 MiB file
//! cargo run --release --example store_and_read -- PATH       # your own file
//! ```
//!
//! Everything lives in a temp directory that is removed at the end.

use std::{
    env,
    error::Error,
    io::{self, Write},
    path::PathBuf,
    process::ExitCode,
    time::Instant,
};

use nexnet::{
    crypto::{DataKey, DecryptReader, EncryptReader, HEADER_LEN},
    store::{Cid, HashingReader, HashingWriter, ObjectStore},
};

const GENERATED: u64 = 64 << 20;

#[tokio::main]
async fn main() -> ExitCode {
    match run().await {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => {
            eprintln!("error: the bytes read back differ from the source");
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

async fn run() -> Result<bool, Box<dyn Error>> {
    let work = tempfile::tempdir()?;
    let source = match env::args_os().nth(1) {
        Some(path) => PathBuf::from(path),
        None => generate(&work.path().join("source.bin"), GENERATED)?,
    };

    // A node's data directory: its key (owner-only) and its object store.
    let data = work.path().join("node");
    std::fs::create_dir_all(&data)?;
    let key = DataKey::load_or_generate(data.join("data.key"))?;
    let store = ObjectStore::open(data.join("store")).await?;
    println!("key        {}", key.id());

    // Store: read the file once, hashing the plaintext for the final check and
    // encrypting it on the way into the store, which hashes the ciphertext.
    let started = Instant::now();
    let file = tokio::fs::File::open(&source).await?;
    let mut plain = HashingReader::new(file);
    let written = store.write(EncryptReader::new(&key, &mut plain)?).await?;
    let (source_sha1, size, _) = plain.finish();
    report("stored", size, started);
    println!(
        "cid        {}  ({} bytes on disk: {HEADER_LEN}-byte header + ciphertext)",
        written.cid, written.len
    );

    // Read back: verify the object against its cid as it streams, decrypt,
    // write to a temp file, and keep it only if everything checked out.
    let started = Instant::now();
    let object = store.read_verified(&written.cid).await?;
    let mut plaintext = DecryptReader::new_async(&key, object)
        .await?
        .expect_len(size);
    let out_path = work.path().join("read-back.bin");
    let out = tempfile::NamedTempFile::new_in(work.path())?;
    let out_file = tokio::fs::File::from_std(out.as_file().try_clone()?);
    // Gather the 8 KiB writes of `copy` into large file writes.
    let mut hashing = HashingWriter::new(tokio::io::BufWriter::with_capacity(256 << 10, out_file));
    tokio::io::copy(&mut plaintext, &mut hashing).await?;
    tokio::io::AsyncWriteExt::flush(&mut hashing).await?;
    let (read_sha1, read_len, _) = hashing.finish();
    out.persist(&out_path)?;
    report("read back", read_len, started);

    let same = source_sha1 == read_sha1 && size == read_len;
    println!(
        "verified   {}  (plaintext sha1 {} vs {})",
        if same { "yes" } else { "NO" },
        short(&source_sha1),
        short(&read_sha1)
    );
    Ok(same)
}

fn report(step: &str, bytes: u64, started: Instant) {
    let secs = started.elapsed().as_secs_f64();
    println!(
        "{step:<10} {bytes} bytes in {:.3} s ({:.0} MB/s)",
        secs,
        bytes as f64 / secs.max(1e-9) / 1e6
    );
}

fn short(cid: &Cid) -> String {
    cid.to_string()[..12].to_string()
}

/// Writes `len` pseudo-random bytes to `path`, 1 MiB at a time.
fn generate(path: &std::path::Path, len: u64) -> io::Result<PathBuf> {
    let mut file = io::BufWriter::new(std::fs::File::create(path)?);
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut chunk = vec![0u8; 1 << 20];
    let mut left = len;
    while left > 0 {
        for word in chunk.chunks_exact_mut(8) {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            word.copy_from_slice(&state.to_le_bytes());
        }
        let n = left.min(chunk.len() as u64) as usize;
        file.write_all(&chunk[..n])?;
        left -= n as u64;
    }
    file.flush()?;
    Ok(path.to_path_buf())
}
