//! SipHash-2-4, streamed byte by byte or word by word, identical on both sides.
#![allow(
    clippy::inline_always,
    reason = "the eBPF side needs every step inlined (no calls across the verifier's frames)"
)]

#[derive(Clone, Copy)]
pub struct Sip {
    v0: u64,
    v1: u64,
    v2: u64,
    v3: u64,
    tail: u64,
    ntail: u32,
    len: u64,
}

impl Sip {
    #[inline(always)]
    #[must_use]
    pub const fn new(k0: u64, k1: u64) -> Self {
        Self {
            v0: k0 ^ 0x736f_6d65_7073_6575,
            v1: k1 ^ 0x646f_7261_6e64_6f6d,
            v2: k0 ^ 0x6c79_6765_6e65_7261,
            v3: k1 ^ 0x7465_6462_7974_6573,
            tail: 0,
            ntail: 0,
            len: 0,
        }
    }

    #[inline(always)]
    fn round(&mut self) {
        self.v0 = self.v0.wrapping_add(self.v1);
        self.v1 = self.v1.rotate_left(13) ^ self.v0;
        self.v0 = self.v0.rotate_left(32);
        self.v2 = self.v2.wrapping_add(self.v3);
        self.v3 = self.v3.rotate_left(16) ^ self.v2;
        self.v0 = self.v0.wrapping_add(self.v3);
        self.v3 = self.v3.rotate_left(21) ^ self.v0;
        self.v2 = self.v2.wrapping_add(self.v1);
        self.v1 = self.v1.rotate_left(17) ^ self.v2;
        self.v2 = self.v2.rotate_left(32);
    }

    #[inline(always)]
    fn compress(&mut self, m: u64) {
        self.v3 ^= m;
        self.round();
        self.round();
        self.v0 ^= m;
    }

    /// Eight bytes at once (little-endian); only when no partial word is
    /// pending, which holds while whole words are written from the start.
    #[inline(always)]
    pub fn write_word(&mut self, w: u64) {
        self.compress(w);
        self.len += 8;
    }

    /// The last `n` (1..=7) bytes of the input as a little-endian word with the
    /// bytes past them zero; only when no partial word is pending.
    #[inline(always)]
    pub fn write_tail(&mut self, w: u64, n: u32) {
        self.tail = w;
        self.ntail = n;
        self.len += u64::from(n);
    }

    #[inline(always)]
    pub fn write_u8(&mut self, b: u8) {
        self.tail |= u64::from(b) << (8 * (self.ntail & 7));
        self.ntail += 1;
        self.len += 1;
        if self.ntail == 8 {
            let t = self.tail;
            self.compress(t);
            self.tail = 0;
            self.ntail = 0;
        }
    }

    #[inline(always)]
    #[must_use]
    pub fn finish(mut self) -> u64 {
        let b = (self.len << 56) | self.tail;
        self.compress(b);
        self.v2 ^= 0xff;
        self.round();
        self.round();
        self.round();
        self.round();
        self.v0 ^ self.v1 ^ self.v2 ^ self.v3
    }
}

/// SipHash-2-4 of `data` under (k0, k1).
#[must_use]
pub fn hash_bytes(k0: u64, k1: u64, data: &[u8]) -> u64 {
    let mut s = Sip::new(k0, k1);
    for &b in data {
        s.write_u8(b);
    }
    s.finish()
}
