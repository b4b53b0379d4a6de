//! Helpers shared by the fuzz targets.

#![allow(dead_code)]

/// Cuts `data` into the pieces a socket might deliver: one piece when
/// `seed` is 0, otherwise pieces of 1 to `[1, 2, 3, 7, 16, 64, 300,
/// 4096][seed % 8]` bytes, sizes drawn from a generator seeded by `seed`.
pub fn chunks(data: &[u8], seed: u8) -> Vec<&[u8]> {
    if seed == 0 {
        return vec![data];
    }
    let most = [1usize, 2, 3, 7, 16, 64, 300, 4096][usize::from(seed % 8)];
    let mut state = u32::from(seed).wrapping_mul(0x9e37_79b9) | 1;
    let mut rest = data;
    let mut out = Vec::new();
    while !rest.is_empty() {
        // xorshift32
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        let size = (1 + state as usize % most).min(rest.len());
        let (piece, tail) = rest.split_at(size);
        out.push(piece);
        rest = tail;
    }
    out
}

/// The first `N` bytes of `data` as control bytes, and the rest; zeros when
/// `data` is shorter.
pub fn split_control<const N: usize>(data: &[u8]) -> ([u8; N], &[u8]) {
    match data.split_first_chunk::<N>() {
        Some((control, rest)) => (*control, rest),
        None => ([0; N], &[]),
    }
}
