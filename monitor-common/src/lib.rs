//! Wire types shared by the mcpwatch eBPF programs (`monitor-ebpf`) and the daemon.
//!
//! Everything here is `#[repr(C)]` with fixed-width integers and explicit padding, so
//! the kernel and userspace agree on the layout byte for byte; the const asserts beside
//! each type pin the sizes. No `bool`, `usize`, pointers or enums cross the boundary: a
//! `kind: u32` is converted with `TryFrom` in userspace decode.
#![no_std]

mod consent;
pub mod envscan;
mod event;
mod host_script;
mod settings;
pub mod sip;

pub use consent::*;
pub use event::*;
pub use host_script::*;
pub use settings::*;

/// Map and global names, used by both sides so a rename cannot split them.
pub mod names {
    pub const TRACKED: &str = "TRACKED";
    pub const HOST_EXES: &str = "HOST_EXES";
    pub const HOST_PATHS: &str = "HOST_PATHS";
    pub const EVENTS: &str = "EVENTS";
    pub const STATS: &str = "STATS";
    pub const SCRATCH: &str = "SCRATCH";
    pub const CONFIG: &str = "CONFIG";
    pub const ALLOW: &str = "ALLOW";
    pub const DENY_EXES: &str = "DENY_EXES";
    pub const MODES: &str = "MODES";
    pub const SETTINGS: &str = "SETTINGS";
    pub const SECENV_NAMES: &str = "SECENV_NAMES";
    pub const CLASS_EXES: &str = "CLASS_EXES";
    pub const PROFILE_FLAGS: &str = "PROFILE_FLAGS";
    pub const SECENV_FILTER: &str = "SECENV_FILTER";
    pub const ENVSCAN: &str = "ENVSCAN";
    pub const HOLDS: &str = "HOLDS";
    pub const DOOMED: &str = "DOOMED";
    pub const SECENV_FAMILIES: &str = "SECENV_FAMILIES";
    pub const HOST_NAMES: &str = "HOST_NAMES";
    pub const HOST_ROOT_EXE: &str = "HOST_ROOT_EXE";
    pub const HOST_SELF: &str = "HOST_SELF";
    pub const HOST_SCRIPT_TAILS: &str = "HOST_SCRIPT_TAILS";
    /// Every pinned map, in the order the daemon re-opens them.
    pub const PINNED_MAPS: &[&str] = &[
        TRACKED,
        HOST_EXES,
        HOST_PATHS,
        EVENTS,
        STATS,
        ALLOW,
        DENY_EXES,
        MODES,
        SETTINGS,
        SECENV_NAMES,
        CLASS_EXES,
        PROFILE_FLAGS,
        SECENV_FILTER,
        HOLDS,
        DOOMED,
        SECENV_FAMILIES,
        HOST_NAMES,
        HOST_ROOT_EXE,
        HOST_SELF,
        HOST_SCRIPT_TAILS,
    ];
}

#[cfg(feature = "user")]
mod pod {
    // SAFETY: all of these are repr(C), made of integers and byte arrays, and have
    // no implicit padding (checked by the size asserts below).
    unsafe impl aya::Pod for super::TaskState {}
    unsafe impl aya::Pod for super::ExeKey {}
    unsafe impl aya::Pod for super::PathKey {}
    unsafe impl aya::Pod for super::NameKey {}
    unsafe impl aya::Pod for super::TailKey {}
    unsafe impl aya::Pod for super::KernelConfig {}
    unsafe impl aya::Pod for super::EventHeader {}
    unsafe impl aya::Pod for super::AllowKey {}
    unsafe impl aya::Pod for super::AllowValue {}
    unsafe impl aya::Pod for super::SecEnvName {}
    unsafe impl aya::Pod for super::EnvFilter {}
    unsafe impl aya::Pod for super::EnvScan {}
    unsafe impl aya::Pod for super::Settings {}
}

#[cfg(test)]
mod tests {
    use super::argv_names_host_script;
    use super::sip::{hash_bytes, Sip};

    #[test]
    fn argv_names_host_script_looks_at_arguments_one_to_three() {
        let script: &[u8] = b"/p/cli.js";
        let names = |argv: &[&[u8]]| argv_names_host_script(argv, |a| a == script);
        assert!(names(&[b"node", script]));
        assert!(names(&[b"node", b"--flag", script]));
        assert!(names(&[b"node", b"--a", b"--b", script]));
        assert!(!names(&[b"node", b"--a", b"--b", b"--c", script]));
        assert!(!names(&[script, b"x"]));
        assert!(!names(&[b"node", b"cli.js"]));
        assert!(!names(&[b"node", b"/p/cli.jsx"]));
        assert!(!names(&[b"node", b"/p/cli"]));
        assert!(!names(&[b"node"]));
        assert!(!names(&[]));
    }

    /// The reference vectors of the `SipHash` paper (key 00..0f, message 00..len-1).
    #[test]
    fn siphash_reference_vectors() {
        let k0 = u64::from_le_bytes([0, 1, 2, 3, 4, 5, 6, 7]);
        let k1 = u64::from_le_bytes([8, 9, 10, 11, 12, 13, 14, 15]);
        let msg: [u8; 15] = core::array::from_fn(|i| u8::try_from(i).expect("i < 15"));
        assert_eq!(hash_bytes(k0, k1, &[]), 0x726f_db47_dd0e_0e31);
        assert_eq!(hash_bytes(k0, k1, &msg[..1]), 0x74f8_39c5_93dc_67fd);
        assert_eq!(hash_bytes(k0, k1, &msg[..8]), 0x93f5_f579_9a93_2462);
        assert_eq!(hash_bytes(k0, k1, &msg), 0xa129_ca61_49be_45e5);
    }

    #[test]
    fn words_and_bytes_agree() {
        let data = b"node\0/srv/index.js\0--stdio\0";
        let mut s = Sip::new(7, 9);
        let words = data.len() / 8;
        for i in 0..words {
            let mut w = [0u8; 8];
            w.copy_from_slice(&data[i * 8..i * 8 + 8]);
            s.write_word(u64::from_le_bytes(w));
        }
        for &b in &data[words * 8..] {
            s.write_u8(b);
        }
        assert_eq!(s.finish(), hash_bytes(7, 9, data));
    }

    /// A deterministic byte source for the scan tests (no rand dependency here).
    fn bytes(seed: u64, n: usize, alphabet: &[u8]) -> [u8; 64] {
        let mut x = seed | 1;
        let mut out = [0u8; 64];
        for b in out.iter_mut().take(n) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            *b = alphabet[usize::try_from(x % alphabet.len() as u64).unwrap_or(0)];
        }
        out
    }

    fn le(b: &[u8]) -> u64 {
        let mut w = [0u8; 8];
        w[..b.len()].copy_from_slice(b);
        u64::from_le_bytes(w)
    }

    #[test]
    fn word_steps_agree_with_bytes() {
        use super::envscan::{below, fold, mark_byte, name_key, nonzero, starts, stops, window};
        let alphabet = b"\0\0\0\x01\x7f\x80\xff\xc1\xda=AZaz@[`{";
        for seed in 0..20_000u64 {
            let buf = bytes(seed, 24, alphabet);
            let w = le(&buf[8..16]);
            let next = le(&buf[16..24]);
            let prev_zero = buf[7] == 0;
            let mut nz = 0u64;
            let mut st = 0u64;
            for k in 0..8 {
                if buf[8 + k] != 0 {
                    nz |= 0x80 << (8 * k);
                    if buf[7 + k] == 0 {
                        st |= 0x80 << (8 * k);
                    }
                }
            }
            assert_eq!(nonzero(w), nz, "{buf:?}");
            assert_eq!(starts(w, prev_zero), st, "{buf:?}");
            assert!(st.count_ones() <= 4);
            for k in 0..8u32 {
                let mark = 0x80u64 << (8 * k);
                assert_eq!(mark_byte(mark), k);
                let win = window(w, next, k);
                assert_eq!(win, le(&buf[8 + k as usize..16 + k as usize]));
                let wb = &buf[8 + k as usize..16 + k as usize];
                let keep = wb
                    .iter()
                    .position(|&b| b == b'=' || b == 0)
                    .map_or(8, |i| i + 1);
                assert_eq!(
                    name_key(win),
                    below(win, u32::try_from(keep).unwrap_or(8)),
                    "{wb:?}"
                );
                assert_eq!(below(w, k), le(&buf[8..8 + k as usize]));
            }
            assert_eq!(below(w, 8), w);
            let mut stop = 0u64;
            for k in 0..8 {
                if buf[8 + k] == 0 || buf[8 + k] == b'=' {
                    stop |= 0x80 << (8 * k);
                }
            }
            assert_eq!(stops(w), stop, "{buf:?}");
            assert_eq!(fold(w), le(&buf[8..16].to_ascii_lowercase()), "{buf:?}");
        }
    }

    /// The kernel's word-by-word name hash (enforce.rs `env_name_step`) over an
    /// entry anywhere in a block equals the byte-level `secenv_name_hash`.
    #[test]
    #[allow(
        clippy::cast_possible_truncation,
        clippy::many_single_char_names,
        reason = "small test offsets"
    )]
    fn name_hash_word_by_word_matches_the_byte_reading() {
        use super::envscan::*;
        let alphabet = b"AB_=\0aZ";
        for seed in 0..20_000u64 {
            let body = bytes(seed, 64, alphabet);
            let off = (seed % 8) as usize;
            let mut block = [0u8; 88];
            block[..off].fill(0xee);
            block[off..off + body.len()].copy_from_slice(&body);
            let len = (off + body.len()) as u32;
            let word = |o: u32| le(&block[o as usize..o as usize + 8]);
            let at = |p: u32| window(word(p & !7), word((p & !7) + 8), p & 7);
            let p = off as u32;
            let rem = len - p;
            let mut h = 0u64;
            let mut j = 0u32;
            while j < (super::SECENV_NAME_CAP / 8) as u32 {
                let o = j * 8;
                if o >= rem {
                    break;
                }
                let w = below(at(p + o), rem - o);
                h = name_mix(h, name_key(w));
                if stops(w) != 0 {
                    break;
                }
                j += 1;
            }
            assert_eq!(h, super::secenv_name_hash(&body), "{body:?}");
        }
        assert_eq!(
            super::secenv_name_hash(b"LD_PRELOAD=/x.so"),
            super::secenv_name_hash(b"LD_PRELOAD=")
        );
        assert_ne!(
            super::secenv_name_hash(b"LD_PRELOAD=/x.so"),
            super::secenv_name_hash(b"LD_PRELOAF=")
        );
    }

    #[test]
    fn envfilter_bit_is_in_range_and_keyed() {
        let a = super::envfilter_bit(u32::from_le_bytes(*b"LD_\0"), 1);
        let b = super::envfilter_bit(u32::from_le_bytes(*b"LD_\0"), 2);
        assert!(a < super::ENV_FILTER_BITS && b < super::ENV_FILTER_BITS);
        assert_ne!(a, b);
        // Only the first three bytes count.
        assert_eq!(
            super::envfilter_bit(u32::from_le_bytes(*b"LD_P"), 1),
            super::envfilter_bit(u32::from_le_bytes(*b"LD_L"), 1)
        );
    }

    #[test]
    fn family_keys_fold_only_when_asked() {
        assert_eq!(
            super::secenv_family_key(b"LD_", false),
            u64::from_le_bytes(*b"LD_\0\0\0\0\0")
        );
        assert_eq!(
            super::secenv_family_key(b"NPM_CONF", true),
            u64::from_le_bytes(*b"npm_conf")
        );
    }
}
