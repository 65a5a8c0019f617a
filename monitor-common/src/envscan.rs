//! Word-at-a-time steps of the kernel's environment scan, shared with userspace so
//! they are unit-tested against a byte-by-byte reading. A word is 8 bytes of the
//! block, little-endian (byte `k` in bits `8k..8k+8`); a *mark* is bit `8k + 7`.
#![allow(
    clippy::inline_always,
    reason = "the eBPF side needs every step inlined (no calls across the verifier's frames)"
)]

const LOW7: u64 = 0x7f7f_7f7f_7f7f_7f7f;
const HIGH: u64 = 0x8080_8080_8080_8080;

/// Marks of the non-zero bytes of `w`. Exact: no carry crosses a byte.
#[inline(always)]
#[must_use]
pub const fn nonzero(w: u64) -> u64 {
    (((w & LOW7).wrapping_add(LOW7)) | w) & HIGH
}

/// Marks of the bytes of `w` that start an entry: non-zero, and the byte before
/// is zero (for byte 0: `prev_zero`, the last byte of the previous word is zero,
/// or this is the start of the block). At most four per word.
#[inline(always)]
#[must_use]
pub const fn starts(w: u64, prev_zero: bool) -> u64 {
    let nz = nonzero(w);
    let z = !nz & HIGH;
    nz & ((z << 8) | if prev_zero { 0x80 } else { 0 })
}

/// Byte index (0..8) of the single mark in `mark`.
#[inline(always)]
#[must_use]
pub const fn mark_byte(mark: u64) -> u32 {
    ((mark >> 7).wrapping_mul(0x0001_0203_0405_0607) >> 56) as u32
}

/// The 8 bytes that start at byte `k` (0..8) of `w` and continue into `next`.
#[inline(always)]
#[must_use]
pub const fn window(w: u64, next: u64, k: u32) -> u64 {
    let k = k & 7;
    if k == 0 {
        w
    } else {
        (w >> (8 * k)) | (next << (64 - 8 * k))
    }
}

/// `w` with the bytes from `n` on zeroed (`n` >= 8: unchanged).
#[inline(always)]
#[must_use]
pub const fn below(w: u64, n: u32) -> u64 {
    if n >= 8 {
        w
    } else {
        w & ((1u64 << (8 * n)) - 1)
    }
}

/// One word of an entry's name: the bytes after the first `=` or NUL zeroed
/// (the stop byte itself kept).
#[inline(always)]
#[must_use]
pub const fn name_key(w: u64) -> u64 {
    let stop = !nonzero(w) & HIGH | !nonzero(w ^ 0x3d3d_3d3d_3d3d_3d3d) & HIGH;
    if stop == 0 {
        return w;
    }
    let low = stop & stop.wrapping_neg();
    // Keep bytes 0..=k where k is the first stop byte.
    let keep = (low << 1).wrapping_sub(1);
    w & keep
}

/// Marks of the bytes of `w` that end a name: `=` or NUL.
#[inline(always)]
#[must_use]
pub const fn stops(w: u64) -> u64 {
    (!nonzero(w) | !nonzero(w ^ 0x3d3d_3d3d_3d3d_3d3d)) & HIGH
}

/// One step of `secenv_name_hash`: fold the next word of a name into `h`.
#[inline(always)]
#[must_use]
pub const fn name_mix(h: u64, w: u64) -> u64 {
    (h ^ w).wrapping_mul(0x9e37_79b9_7f4a_7c15).rotate_left(29)
}

/// `w` with its ASCII capitals lowercased, every other byte unchanged. Exact:
/// no carry crosses a byte.
#[inline(always)]
#[must_use]
pub const fn fold(w: u64) -> u64 {
    let h = w & LOW7;
    // Bit 7 of a byte: its low 7 bits are >= 'A' (0x41), resp. > 'Z' (0x5a).
    let ge_a = h.wrapping_add(0x3f3f_3f3f_3f3f_3f3f);
    let gt_z = h.wrapping_add(0x2525_2525_2525_2525);
    let upper = ge_a & !gt_z & !w & HIGH;
    w | (upper >> 2)
}
