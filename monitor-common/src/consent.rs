//! Consent as the kernel checks it: the `ALLOW` key and value, host modes, and
//! the security-relevant environment (`SECENV_*` names, filter and scan).

use crate::{envscan, ARGV_CAP, PATH_CAP};

/// Host profile ids the mode table (`MODES`) covers; ids past it run in monitor mode.
pub const MODES_MAX: u32 = 256;
/// Longest security-relevant env name the kernel matches, `=` included.
pub const SECENV_NAME_CAP: usize = 32;
/// Security-relevant env names the kernel knows (`SecEnvName::id` is below it).
pub const SECENV_MAX: usize = 64;
/// Bytes of approved `NAME=value` entries an `ALLOW` value carries (each entry
/// NUL-terminated and padded to whole words).
pub const ENVSET_CAP: usize = 1024;
/// Words of `ENVSET_CAP`.
pub const ENVSET_WORDS: usize = ENVSET_CAP / 8;
/// Entries of one exec's environment whose first bytes pass `SECENV_FILTER` that
/// the kernel examines; more and the exec cannot be approved (fail closed).
pub const ENV_CAND_MAX: usize = 64;
/// Families of security-relevant names (`LD_…`) the kernel knows (`SECENV_FAMILIES`).
pub const SECENV_FAMILIES_MAX: u32 = 16;
/// Bits of `SECENV_FILTER` (a power of two): `envfilter_bit` picks one.
pub const ENV_FILTER_BITS: u32 = 4096;

/// Per-host modes (`MODES` values).
pub mod mode {
    pub const MONITOR: u32 = 0;
    pub const ASK: u32 = 1;
    pub const ENFORCE: u32 = 2;
}

/// `AllowKey::uid` / `AllowKey::profile` wildcard: the record applies to any.
pub const ANY: u32 = u32::MAX;

/// `ALLOW` key: one approved command as the kernel recomputes it at exec. The hash
/// only finds the entry; the kernel then compares the full argv (and cwd) bytes.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct AllowKey {
    /// Executable identity (`mm->exe_file`), kernel `s_dev` encoding.
    pub dev: u32,
    /// Bytes of argv (NUL-separated, the last NUL included).
    pub argv_len: u32,
    pub ino: u64,
    pub ctime_sec: i64,
    /// ctime nanoseconds without the kernel's flag bits (`CTIME_NSEC_MASK`).
    pub ctime_nsec: u32,
    /// Whose launches: a uid, or `ANY`.
    pub uid: u32,
    /// Host profile id, or `ANY`.
    pub profile: u32,
    #[expect(
        clippy::pub_underscore_fields,
        reason = "explicit padding of a repr(C) wire type: public so both sides can build it, `_` because it carries nothing"
    )]
    pub _pad: u32,
    /// `sip::hash_bytes(SETTINGS key, argv)`.
    pub argv_hash: u64,
}

/// `AllowValue::flags`.
pub mod allow_flags {
    /// Consumed by its first match (scope `once`).
    pub const ONCE: u32 = 1;
    /// `cwd` must match too.
    pub const CWD: u32 = 2;
}

/// Set in `AllowValue::record_id` (ids stay below 2^49): the command runs a script
/// (a `#!` file or an interpreter's script argument) the interpreter opens by path
/// after exec, so the kernel holds the launch until the daemon verified that
/// script's content as the launching process sees it. In the id, not the flags, so
/// the kernel's match loop carries no extra state.
pub const RECORD_VERIFY: u64 = 1 << 62;

/// `ALLOW` value: the exact bytes the kernel compares before allowing.
///
/// The security-relevant environment is compared exactly too: `env_mask` names
/// (by `SecEnvName::id`) the entries that must be present, `env` holds them as
/// `NAME=value\0`, each padded with zeros to whole words, and every other
/// security-relevant name must be absent. `env_slot[id]` is the entry's byte offset
/// in `env` (low 16 bits) and its length with the NUL (high 16 bits);
/// `env_word_id[w]` is the id of the entry word `w` belongs to.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct AllowValue {
    pub record_id: u64,
    /// `bpf_ktime_get_boot_ns` after which the entry no longer applies; 0: never.
    pub expires_boot_ns: u64,
    /// Bit `id` set: the entry named by `SecEnvName::id` must be present, as in `env`.
    pub env_mask: u64,
    pub flags: u32,
    /// Bytes of `cwd` (leaf-first encoding, as the kernel's dentry walk writes it).
    pub cwd_len: u32,
    /// Words of `env` in use.
    pub env_words: u32,
    #[expect(
        clippy::pub_underscore_fields,
        reason = "explicit padding of a repr(C) wire type: public so both sides can build it, `_` because it carries nothing"
    )]
    pub _pad: u32,
    pub env_slot: [u32; SECENV_MAX],
    pub env_word_id: [u8; ENVSET_WORDS],
    pub argv: [u8; ARGV_CAP],
    pub cwd: [u8; PATH_CAP],
    pub env: [u8; ENVSET_CAP],
}

/// `SECENV_NAMES` value, keyed by `secenv_name_hash` of the name (`=` included):
/// one security-relevant env name, `=` included, compared in full after the lookup.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SecEnvName {
    pub len: u32,
    /// Index below `SECENV_MAX`: the bit of `AllowValue::env_mask`.
    pub id: u32,
    pub name: [u8; SECENV_NAME_CAP],
}

/// `SECENV_FILTER[0]`: bit `envfilter_bit(first 3 bytes of NAME=, key)` is set for
/// every security-relevant name, so the kernel's scan of an environment looks up
/// only the few entries whose first bytes pass (a keyed filter: who does not know
/// the key cannot aim entries at it; a false positive only costs a lookup).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EnvFilter {
    pub bits: [u64; (ENV_FILTER_BITS / 64) as usize],
}

impl Default for EnvFilter {
    fn default() -> Self {
        Self {
            bits: [0; (ENV_FILTER_BITS / 64) as usize],
        }
    }
}

/// Per-CPU scratch of the kernel's environment check (`ENVSCAN`): what the scan of
/// one exec's environment found.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct EnvScan {
    /// Candidates in `cand` (entries whose first bytes pass the filter).
    pub ncand: u32,
    /// Non-zero: more than `ENV_CAND_MAX` candidates, or a security-relevant name
    /// present twice: nothing can match.
    pub spoiled: u32,
    /// Bit `id` set: that security-relevant entry is present, at `pos[id]`.
    pub found: u64,
    pub cand: [u32; ENV_CAND_MAX],
    pub pos: [u32; SECENV_MAX],
    /// Lookup keys of the entry being examined (map memory, not stack).
    pub keys: [u64; 4],
}

/// Bit of `SECENV_FILTER` for an env entry whose first three bytes, little-endian,
/// are `first3` (bytes past the entry's end read as 0), under the filter key.
#[inline(always)]
#[must_use]
#[allow(clippy::inline_always, reason = "the eBPF side needs it inlined")]
pub const fn envfilter_bit(first3: u32, key: u64) -> u32 {
    ((((first3 & 0x00ff_ffff) as u64) ^ key).wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 52) as u32
}

/// Lookup key of `SECENV_NAMES` for an env entry (or a name with its `=`): the
/// words of its name, `=` included (bytes after it zeroed; at most
/// `SECENV_NAME_CAP` bytes), folded by `envscan::name_mix`. The kernel computes the
/// same word by word (`envscan::name_key` of each); a byte-level reading.
#[must_use]
pub fn secenv_name_hash(entry: &[u8]) -> u64 {
    let end = entry
        .iter()
        .take(SECENV_NAME_CAP)
        .position(|&b| b == b'=' || b == 0)
        .map_or(entry.len().min(SECENV_NAME_CAP), |i| i + 1);
    let mut h = 0u64;
    for chunk in entry[..end].chunks(8) {
        let mut w = [0u8; 8];
        w[..chunk.len()].copy_from_slice(chunk);
        h = envscan::name_mix(h, u64::from_le_bytes(w));
    }
    h
}

/// Key of `SECENV_FAMILIES` for a family of names (`LD_`): its prefix (3, 4 or 8
/// bytes), little-endian, lowercased when the family ignores case (then it must be
/// 8 bytes long: the kernel folds only its 8-byte lookup).
#[must_use]
pub fn secenv_family_key(prefix: &[u8], fold: bool) -> u64 {
    let mut w = [0u8; 8];
    let n = prefix.len().min(8);
    w[..n].copy_from_slice(&prefix[..n]);
    let w = u64::from_le_bytes(w);
    if fold {
        envscan::fold(w)
    } else {
        w
    }
}

// Layout pins: a change here is a wire-format change on both sides.
const _: () = assert!(core::mem::size_of::<AllowKey>() == 48);
const _: () = assert!(
    core::mem::size_of::<AllowValue>()
        == 40 + 4 * SECENV_MAX + ENVSET_WORDS + ARGV_CAP + PATH_CAP + ENVSET_CAP
);
const _: () = assert!(core::mem::size_of::<SecEnvName>() == 8 + SECENV_NAME_CAP);
const _: () = assert!(core::mem::size_of::<EnvFilter>() == 512);
const _: () =
    assert!(core::mem::size_of::<EnvScan>() == 16 + 4 * ENV_CAND_MAX + 4 * SECENV_MAX + 32);
const _: () = assert!(ENV_CAND_MAX.is_power_of_two() && SECENV_MAX == 64);
const _: () = assert!(SECENV_NAME_CAP.is_multiple_of(8));
const _: () = assert!(ENVSET_CAP <= 0xffff && ENVSET_WORDS <= 256);
