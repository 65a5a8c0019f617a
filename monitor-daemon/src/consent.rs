//! Consent in the daemon: the user's store and the managed policy, compiled into
//! what the kernel decides from (`ALLOW`, `DENY_EXES`, `MODES`), and the launches
//! ask mode holds.
//!
//! Records bind content: a record is loaded into the kernel only after the daemon
//! hashed the file now at the record's path and found the approved SHA-256. The
//! kernel key carries the file's identity (device, inode, ctime), so a file
//! rewritten or replaced after that no longer matches until the daemon hashes it
//! again (on the next launch that misses, or the periodic re-check).
use std::{
    collections::{BTreeMap, VecDeque},
    fs, io,
    path::{Path, PathBuf},
    time::Instant,
};

use monitor_common::{
    allow_flags, sip, AllowKey, AllowValue, ANY, ARGV_CAP, ENVSET_CAP, ENVSET_WORDS, PATH_CAP,
    SECENV_MAX,
};

use crate::{
    event::{Bytes, Event, SECURITY_ENV},
    model::Mode,
    policy::{
        managed::{Managed, ManagedLoader},
        record::{FileBinding, Record, RecordId, Scope, Source, ANY_HOST, ANY_UID},
        store::Store,
    },
    resolve::{env_binding, script_ref},
    sys::{
        clock,
        fs::write_atomic,
        hash::{ident, HashCache, Ident},
        hex,
    },
};

/// Ids of records from managed policy (not in the store): this base plus the
/// index of the `[[approve]]` entry.
pub const MANAGED_ID_BASE: RecordId = 1 << 48;

/// The argv block exactly as the kernel lays it out: each argument NUL-terminated.
pub fn argv_block(argv: &[Bytes]) -> Vec<u8> {
    let mut out = Vec::new();
    for a in argv {
        out.extend_from_slice(&a.0);
        out.push(0);
    }
    out
}

/// A path in the kernel's dentry-walk encoding: components leaf first, each
/// NUL-terminated (`/srv/app` → `app\0srv\0`; `/` → empty).
pub fn leaf_first(path: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    for c in path.split(|&b| b == b'/').filter(|c| !c.is_empty()).rev() {
        out.extend_from_slice(c);
        out.push(0);
    }
    out
}

/// The ids the kernel knows security-relevant env names by (`SecEnvName::id`, the
/// bit of `AllowValue::env_mask`): [`SECURITY_ENV`] in its order, then the family
/// members (`LD_BIND_NOW`, `npm_config_registry`, …) active records approve, sorted,
/// while they fit in `SECENV_MAX`. A member no id is left for (or longer than the
/// kernel compares) is not known: the kernel finds no record for a launch that
/// sets it, and a record that requires it cannot be put in the kernel.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EnvIds {
    names: Vec<String>,
}

impl EnvIds {
    /// The fixed names only.
    pub fn fixed() -> Self {
        Self {
            names: SECURITY_ENV.iter().map(|n| (*n).to_owned()).collect(),
        }
    }

    /// The fixed names and the members `records` set.
    pub fn for_records<'a>(records: impl IntoIterator<Item = &'a Record>) -> Self {
        let mut ids = Self::fixed();
        let members: std::collections::BTreeSet<&String> = records
            .into_iter()
            .flat_map(|r| r.env.iter())
            .filter(|(n, v)| v.is_some() && !SECURITY_ENV.contains(&n.as_str()))
            .map(|(n, _)| n)
            .collect();
        for n in members {
            if ids.names.len() < SECENV_MAX && n.len() < monitor_common::SECENV_NAME_CAP {
                ids.names.push(n.clone());
            }
        }
        ids
    }

    pub fn id(&self, name: &str) -> Option<u32> {
        self.names
            .iter()
            .position(|n| n == name)
            .and_then(|i| u32::try_from(i).ok())
    }

    /// Names by id.
    pub fn names(&self) -> &[String] {
        &self.names
    }
}

/// A kernel value for record `record_id` that approves nothing yet.
pub fn empty_value(record_id: u64) -> Box<AllowValue> {
    Box::new(AllowValue {
        record_id,
        expires_boot_ns: 0,
        env_mask: 0,
        flags: 0,
        cwd_len: 0,
        env_words: 0,
        _pad: 0,
        env_slot: [0; SECENV_MAX],
        env_word_id: [0; ENVSET_WORDS],
        argv: [0; ARGV_CAP],
        cwd: [0; PATH_CAP],
        env: [0; ENVSET_CAP],
    })
}

/// Put the `NAME=value` entries a record requires into a kernel value: `env_mask`,
/// each entry NUL-terminated and padded to whole words in `env`, and the tables
/// that tell the kernel which entry a word belongs to. Names the record leaves
/// unset must be absent at exec, which `env_mask` says by its clear bits.
pub fn set_env(
    value: &mut AllowValue,
    env: &BTreeMap<String, Option<Bytes>>,
    ids: &EnvIds,
) -> Result<(), CompileError> {
    value.env_mask = 0;
    value.env_words = 0;
    value.env_slot = [0; SECENV_MAX];
    value.env_word_id = [0; ENVSET_WORDS];
    value.env = [0; ENVSET_CAP];
    let mut off = 0usize;
    for (name, v) in env {
        let Some(v) = v else { continue };
        let id = ids
            .id(name)
            .ok_or_else(|| CompileError::EnvUnknown { name: name.clone() })?;
        if v.0.contains(&0) {
            return Err(CompileError::EnvNul { name: name.clone() });
        }
        let len = name.len() + 1 + v.0.len() + 1;
        let padded = len.div_ceil(8) * 8;
        if off + padded > ENVSET_CAP {
            return Err(CompileError::EnvTooLong);
        }
        let entry = &mut value.env[off..off + len];
        entry[..name.len()].copy_from_slice(name.as_bytes());
        entry[name.len()] = b'=';
        entry[name.len() + 1..len - 1].copy_from_slice(&v.0);
        value.env_slot[id as usize] =
            u32::try_from(off).unwrap_or(0) | (u32::try_from(len).unwrap_or(0) << 16);
        for w in off / 8..(off + padded) / 8 {
            value.env_word_id[w] = u8::try_from(id).unwrap_or(0);
        }
        value.env_mask |= 1 << id;
        off += padded;
    }
    value.env_words = u32::try_from(off / 8).unwrap_or(0);
    Ok(())
}

/// Why a record is or is not in the kernel.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RecordState {
    Active,
    Stale(String),
    Expired,
}

impl RecordState {
    pub fn label(&self) -> (&'static str, Option<String>) {
        match self {
            Self::Active => ("active", None),
            Self::Stale(why) => ("stale", Some(why.clone())),
            Self::Expired => ("expired", None),
        }
    }
}

/// Why a record cannot be compiled for the kernel: the text is its `stale` reason.
#[derive(Debug, thiserror::Error)]
pub enum CompileError {
    #[error(
        "{name}: the kernel knows at most {SECENV_MAX} security-relevant names, of \
         at most {} bytes, and this is not one of them",
        monitor_common::SECENV_NAME_CAP - 1
    )]
    EnvUnknown { name: String },
    #[error("{name}: a value with a NUL byte cannot occur at exec")]
    EnvNul { name: String },
    #[error(
        "the security-relevant environment it requires is over {ENVSET_CAP} bytes, \
         more than the kernel compares"
    )]
    EnvTooLong,
    #[error("{what} {path}: {source}")]
    Hash {
        what: &'static str,
        path: String,
        source: io::Error,
    },
    #[error("{what} {path} changed since approval: sha256 was {approved}, is now {now}")]
    Changed {
        what: &'static str,
        path: String,
        approved: String,
        now: String,
    },
    #[error("argv is {bytes} bytes; the kernel compares at most {ARGV_CAP}")]
    ArgvTooLong { bytes: usize },
    #[error("cwd is longer than the kernel's {PATH_CAP} bytes")]
    CwdTooLong,
    #[error("scope until={until}: {source}")]
    Until {
        until: String,
        source: time::error::Parse,
    },
    #[error("expired")]
    Expired,
}

/// One record compiled for the kernel.
pub struct Compiled {
    pub key: AllowKey,
    pub value: Box<AllowValue>,
    /// Files whose identity the key (or the binding) depends on.
    pub files: Vec<(PathBuf, Ident)>,
}

/// Compile one record: verify its files' content, then build the kernel entry.
pub fn compile(
    r: &Record,
    profile: u32,
    hashes: &mut HashCache,
    ids: &EnvIds,
    (k0, k1): (u64, u64),
) -> Result<Compiled, CompileError> {
    // Every file the record binds, hashed now: the approved content or stale.
    let mut files = Vec::new();
    for (what, b) in [
        ("executable", Some(&r.exe)),
        ("script", r.script.as_ref()),
        ("program (what env runs)", r.resolved.as_ref()),
    ] {
        let Some(b) = b else { continue };
        let p = Path::new(&b.path);
        let (id, sha) = hashes.get(p).map_err(|source| CompileError::Hash {
            what,
            path: b.path.clone(),
            source,
        })?;
        if sha != b.sha256 {
            return Err(CompileError::Changed {
                what,
                path: b.path.clone(),
                approved: b.sha256.clone(),
                now: sha,
            });
        }
        files.push((p.to_path_buf(), id));
    }
    let exe_id = files[0].1;
    // Scripts and `env`'s program are opened by path after exec: verified while held.
    let verify = files.len() > 1;
    let block = argv_block(&r.argv);
    if block.is_empty() || block.len() > ARGV_CAP {
        return Err(CompileError::ArgvTooLong { bytes: block.len() });
    }
    let mut value = empty_value(r.id);
    if verify {
        // The interpreter opens the script by path after exec: the kernel holds the
        // launch until the daemon checked it as the launching process sees it.
        value.record_id |= monitor_common::RECORD_VERIFY;
    }
    set_env(&mut value, &r.normalized_env(), ids)?;
    value.argv[..block.len()].copy_from_slice(&block);
    if let Some(cwd) = &r.cwd {
        let enc = leaf_first(&cwd.0);
        if enc.len() > PATH_CAP {
            return Err(CompileError::CwdTooLong);
        }
        value.cwd[..enc.len()].copy_from_slice(&enc);
        value.cwd_len = u32::try_from(enc.len()).unwrap_or(0);
        value.flags |= allow_flags::CWD;
    }
    match &r.scope {
        Scope::Once => value.flags |= allow_flags::ONCE,
        Scope::Always => {}
        Scope::Until(t) => {
            let until =
                time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339)
                    .map_err(|source| CompileError::Until {
                        until: t.clone(),
                        source,
                    })?;
            let left = (until - time::OffsetDateTime::now_utc()).whole_nanoseconds();
            if left <= 0 {
                return Err(CompileError::Expired);
            }
            // Past what u64 nanoseconds hold from now (about 584 years) is as good
            // as never: saturate, never wrap to "expired".
            let left_ns = u64::try_from(left).unwrap_or(u64::MAX);
            value.expires_boot_ns = clock::boot_ns().saturating_add(left_ns);
        }
    }
    let key = AllowKey {
        dev: crate::hosts::user_dev_to_kernel(exe_id.dev),
        argv_len: u32::try_from(block.len()).unwrap_or(0),
        ino: exe_id.ino,
        ctime_sec: exe_id.ctime_sec,
        ctime_nsec: u32::try_from(exe_id.ctime_nsec).unwrap_or(0)
            & crate::event::raw::CTIME_NSEC_MASK,
        uid: if r.uid == ANY_UID { ANY } else { r.uid },
        profile,
        _pad: 0,
        argv_hash: sip::hash_bytes(k0, k1, &block),
    };
    Ok(Compiled { key, value, files })
}

/// A launch ask mode holds (SIGSTOP at exec) until the user answers.
pub struct Pending {
    /// The launch event's id: `mcpwatch allow ID`.
    pub id: u64,
    pub pid: u32,
    /// `/proc/PID/stat` start time, so a recycled pid is never signalled.
    pub start_time: u64,
    pub ppid: u32,
    pub ppid_start: u64,
    pub host: String,
    pub uid: u32,
    pub event: Event,
    pub since: Instant,
}

/// The consent state of the daemon.
pub struct Consent {
    pub store: Store,
    /// The store's main file is broken: the daemon runs on its last good copy.
    pub store_problem: Option<String>,
    loader: ManagedLoader,
    pub managed: Managed,
    pub managed_problems: Vec<String>,
    /// Records from managed `[[approve]]` entries (ids from `MANAGED_ID_BASE`).
    pub managed_records: Vec<Record>,
    pub states: BTreeMap<RecordId, RecordState>,
    pub hashes: HashCache,
    /// Files each active record depends on, re-checked periodically.
    pub watched: BTreeMap<RecordId, Vec<(PathBuf, Ident)>>,
    /// Keys in the kernel per record (for `once` bookkeeping and revocation).
    pub keys: BTreeMap<RecordId, AllowKey>,
    /// `once` records loaded into the kernel, with their key (persisted): a key
    /// gone from `ALLOW` means the kernel consumed it, even while no daemon ran.
    pub once_armed: BTreeMap<RecordId, AllowKey>,
    pub pending: BTreeMap<u64, Pending>,
    /// SHA-256 of every file the managed deny list names → its index in the list:
    /// a copy of a denied program is denied by its content.
    pub deny_sha: BTreeMap<String, usize>,
    /// Copies found by content (path, identity, list index): denied in the kernel
    /// by identity from then on, while the path still has that identity.
    pub deny_copies: Vec<(PathBuf, monitor_common::ExeKey, u32)>,
    /// What `DENY_EXES` holds now.
    pub deny_loaded: Vec<(monitor_common::ExeKey, u32)>,
    /// Recent launch events, for `approve <event-id>`.
    pub recent: VecDeque<Event>,
    pub policy_dir: PathBuf,
    store_stamp: Option<Ident>,
    policy_stamp: Vec<(PathBuf, Option<Ident>)>,
}

const RECENT_MAX: usize = 2048;

impl Consent {
    pub fn open(state_dir: &Path, policy_dir: &Path) -> io::Result<Self> {
        let opened = Store::open(state_dir)?;
        let mut loader = ManagedLoader::with_last_good(read_last_good_policy(state_dir));
        let (managed, problems) = loader.load(policy_dir, true);
        let mut c = Self {
            store: opened.store,
            store_problem: opened.problem.map(|p| p.to_string()),
            loader,
            managed,
            managed_problems: problems.iter().map(ToString::to_string).collect(),
            managed_records: Vec::new(),
            states: BTreeMap::new(),
            hashes: HashCache::default(),
            watched: BTreeMap::new(),
            keys: BTreeMap::new(),
            once_armed: read_once_armed(state_dir),
            pending: BTreeMap::new(),
            deny_sha: BTreeMap::new(),
            deny_copies: Vec::new(),
            deny_loaded: Vec::new(),
            recent: VecDeque::new(),
            policy_dir: policy_dir.to_path_buf(),
            store_stamp: None,
            policy_stamp: Vec::new(),
        };
        c.store_stamp = ident(&c.store_path()).ok();
        c.policy_stamp = policy_stamps(policy_dir);
        c.save_last_good_policy();
        Ok(c)
    }

    pub fn store_path(&self) -> PathBuf {
        self.store.dir().join(crate::policy::store::STORE_FILE)
    }

    fn save_last_good_policy(&self) {
        let path = self.store.dir().join("policy.last-good.json");
        if let Ok(text) = serde_json::to_string(self.loader.last_good()) {
            let _ = write_atomic(&path, text.as_bytes());
        }
    }

    /// Re-read the store and the policy directory if they changed on disk. Returns
    /// the problems found (each once, when it appears) and whether anything changed.
    pub fn reload_if_changed(&mut self) -> (bool, Vec<String>) {
        let mut changed = false;
        let mut problems = Vec::new();
        let stamp = ident(&self.store_path()).ok();
        if stamp != self.store_stamp {
            self.store_stamp = stamp;
            match self.store.reload() {
                Ok(c) => {
                    changed |= c;
                    self.store_problem = None;
                }
                Err(p) => {
                    let text = format!("{p}; the daemon keeps the records it had");
                    self.store_problem = Some(text.clone());
                    problems.push(text);
                }
            }
        }
        let pstamp = policy_stamps(&self.policy_dir);
        if pstamp != self.policy_stamp {
            self.policy_stamp = pstamp;
            let (managed, probs) = self.loader.load(&self.policy_dir, true);
            let texts: Vec<String> = probs.iter().map(ToString::to_string).collect();
            for t in &texts {
                if !self.managed_problems.contains(t) {
                    problems.push(t.clone());
                }
            }
            self.managed_problems = texts;
            if managed != self.managed {
                self.managed = managed;
                changed = true;
            }
            self.save_last_good_policy();
        }
        (changed, problems)
    }

    /// Every record that may be loaded: the store's, then managed ones.
    pub fn all_records(&self) -> impl Iterator<Item = &Record> {
        self.store
            .records()
            .iter()
            .chain(self.managed_records.iter())
    }

    /// Build the managed records (binding the current content where the policy
    /// pins no hash). Problems come back as text.
    pub fn build_managed_records(&mut self) -> Vec<String> {
        let mut problems = Vec::new();
        let created = clock::now_rfc3339();
        let mut out = Vec::new();
        for (i, a) in self.managed.approves.iter().enumerate() {
            let exe = self.hashes.get(Path::new(&a.exe)).map(|(_, s)| s);
            let script = a
                .script
                .as_ref()
                .map(|s| self.hashes.get(Path::new(s)).map(|(_, h)| h));
            let result = match (exe, script) {
                (Err(e), _) => Err(format!("exe {}: {e}", a.exe)),
                (_, Some(Err(e))) => Err(format!("script: {e}")),
                (Ok(exe), script) => a
                    .to_record(&exe, script.and_then(Result::ok).as_deref(), &created)
                    .map_err(|e| e.to_string()),
            };
            match result {
                Ok(mut r) => {
                    r.id = MANAGED_ID_BASE + i as u64;
                    out.push(r);
                }
                Err(e) => {
                    problems.push(format!("{}: [[approve]] #{}: {e}", a.file.display(), i + 1));
                }
            }
        }
        self.managed_records = out;
        problems
    }

    pub fn remember(&mut self, e: &Event) {
        if self.recent.len() >= RECENT_MAX {
            self.recent.pop_front();
        }
        self.recent.push_back(e.clone());
    }

    pub fn find_recent(&self, id: u64) -> Option<&Event> {
        self.recent.iter().rev().find(|e| e.id == id)
    }

    /// The mode of `host` and where it comes from.
    pub fn mode_of(&self, host: &str, default: Mode) -> (Mode, bool, String) {
        let user = self.store.modes().get(host).copied();
        let (mode, locked) = crate::policy::effective_mode(host, user, &self.managed, default);
        let source = if locked {
            self.managed.host_policy(host).map_or_else(
                || "managed".into(),
                |p| format!("managed:{}", p.file.display()),
            )
        } else if user.is_some() {
            "user".into()
        } else if self
            .managed
            .host_policy(host)
            .and_then(|p| p.mode)
            .is_some()
        {
            "managed".into()
        } else {
            "config".into()
        };
        (mode, locked, source)
    }
}

pub const ONCE_ARMED_FILE: &str = "once-armed.json";

fn key_hex(k: &AllowKey) -> String {
    // SAFETY: AllowKey is repr(C) plain data without padding (layout pinned in
    // monitor-common); its bytes are its value.
    let bytes = unsafe {
        std::slice::from_raw_parts(std::ptr::from_ref(k).cast::<u8>(), size_of::<AllowKey>())
    };
    hex::encode(bytes)
}

fn key_from_hex(h: &str) -> Option<AllowKey> {
    let n = size_of::<AllowKey>();
    if h.len() != 2 * n {
        return None;
    }
    let mut bytes = vec![0u8; n];
    for (i, b) in bytes.iter_mut().enumerate() {
        *b = u8::from_str_radix(h.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    // SAFETY: exactly size_of::<AllowKey>() bytes; any bit pattern is valid.
    Some(unsafe { std::ptr::read_unaligned(bytes.as_ptr().cast::<AllowKey>()) })
}

fn read_once_armed(state_dir: &Path) -> BTreeMap<RecordId, AllowKey> {
    let Ok(text) = fs::read_to_string(state_dir.join(ONCE_ARMED_FILE)) else {
        return BTreeMap::new();
    };
    let map: BTreeMap<RecordId, String> = serde_json::from_str(&text).unwrap_or_default();
    map.into_iter()
        .filter_map(|(id, h)| Some((id, key_from_hex(&h)?)))
        .collect()
}

impl Consent {
    pub fn save_once_armed(&self) {
        let map: BTreeMap<RecordId, String> = self
            .once_armed
            .iter()
            .map(|(id, k)| (*id, key_hex(k)))
            .collect();
        if let Ok(text) = serde_json::to_string(&map) {
            let _ = write_atomic(&self.store.dir().join(ONCE_ARMED_FILE), text.as_bytes());
        }
    }
}

fn policy_stamps(dir: &Path) -> Vec<(PathBuf, Option<Ident>)> {
    let mut v = vec![(dir.to_path_buf(), ident(dir).ok())];
    if let Ok(rd) = fs::read_dir(dir) {
        let mut files: Vec<PathBuf> = rd.filter_map(|e| Some(e.ok()?.path())).collect();
        files.sort();
        for f in files {
            let id = ident(&f).ok();
            v.push((f, id));
        }
    }
    v
}

fn read_last_good_policy(state_dir: &Path) -> BTreeMap<PathBuf, String> {
    fs::read_to_string(state_dir.join("policy.last-good.json"))
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or_default()
}

/// A record approving exactly what a launch event showed.
pub fn record_from_event(
    e: &Event,
    hashes: &mut HashCache,
    scope: Scope,
    note: String,
    source: Source,
    uid: u32,
) -> Result<Record, ApproveError> {
    if e.argv_truncated {
        return Err(ApproveError::ArgvTruncated);
    }
    let argv = e.argv.clone().ok_or(ApproveError::NoArgv)?;
    let exe = e.exe.as_ref().ok_or(ApproveError::NoExe)?;
    let exe_path = exe
        .path
        .as_ref()
        .ok_or(ApproveError::NoExePath)?
        .lossy()
        .into_owned();
    let (_, exe_sha) = hashes
        .get(Path::new(&exe_path))
        .map_err(|source| ApproveError::Hash {
            path: exe_path.clone(),
            source,
        })?;
    if let Some(seen) = &exe.sha256 {
        if *seen != exe_sha {
            return Err(ApproveError::ExeChanged {
                path: exe_path,
                seen: seen.clone(),
                now: exe_sha,
            });
        }
    }
    let cwd = e.cwd.as_ref().map(|c| {
        use std::os::unix::ffi::OsStrExt as _;
        PathBuf::from(std::ffi::OsStr::from_bytes(&c.0))
    });
    let script = match script_ref(Path::new(&exe_path), &argv, cwd.as_deref())
        .map_err(ApproveError::Resolve)?
    {
        Some(s) => {
            let (_, script_sha) = hashes
                .get(&s.path)
                .map_err(|source| ApproveError::hashing(&s.path, source))?;
            Some(FileBinding {
                path: s.path.display().to_string(),
                sha256: script_sha,
                arg: Some(s.arg),
            })
        }
        None => None,
    };
    let resolved = match env_binding(
        Path::new(&exe_path),
        &argv,
        e.path_var.as_ref().map(|p| p.0.as_slice()),
    )
    .map_err(ApproveError::Resolve)?
    {
        Some(s) => {
            let (_, sha) = hashes
                .get(&s.path)
                .map_err(|source| ApproveError::hashing(&s.path, source))?;
            Some(FileBinding {
                path: s.path.display().to_string(),
                sha256: sha,
                arg: Some(s.arg),
            })
        }
        None => None,
    };
    let mut env: BTreeMap<String, Option<Bytes>> = SECURITY_ENV
        .iter()
        .map(|n| ((*n).to_owned(), None))
        .collect();
    for (k, v) in &e.env {
        env.insert(k.clone(), Some(v.clone()));
    }
    let r = Record {
        id: 0,
        host: e
            .host
            .as_ref()
            .map_or_else(|| ANY_HOST.to_owned(), |h| h.name.clone()),
        exe: FileBinding {
            path: exe_path,
            sha256: exe_sha,
            arg: None,
        },
        script,
        resolved,
        argv,
        cwd: None,
        env,
        scope,
        source,
        created: clock::now_rfc3339(),
        note,
        uid,
    };
    r.validate()?;
    Ok(r)
}

/// Why a launch event cannot be made into a record; the text is the API's reply.
#[derive(Debug, thiserror::Error)]
pub enum ApproveError {
    #[error(
        "this launch's argv was longer than the kernel compares (4096 bytes): it cannot be approved exactly"
    )]
    ArgvTruncated,
    #[error("the event has no argv")]
    NoArgv,
    #[error("the event has no executable")]
    NoExe,
    #[error("the event has no executable path")]
    NoExePath,
    #[error("hashing {path}: {source}")]
    Hash { path: String, source: io::Error },
    #[error(
        "{path} changed since the launch (sha256 {seen} then, {now} now): not approving content nobody saw"
    )]
    ExeChanged {
        path: String,
        seen: String,
        now: String,
    },
    /// The script or `env`'s program is named but cannot be resolved.
    #[error(transparent)]
    Resolve(#[from] crate::resolve::ResolveError),
    #[error(transparent)]
    Invalid(#[from] crate::policy::record::RecordError),
}

impl ApproveError {
    fn hashing(path: &Path, source: io::Error) -> Self {
        Self::Hash {
            path: path.display().to_string(),
            source,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        interp::ScriptArg,
        resolve::{binding_risks, env_prog, script_of, ScriptRef},
    };

    #[test]
    fn compile_and_approve_errors_read_as_they_always_did() {
        let io = || io::Error::from(io::ErrorKind::NotFound);
        let e = CompileError::Hash {
            what: "script",
            path: "/srv/a.py".into(),
            source: io(),
        };
        assert_eq!(
            e.to_string(),
            format!("{} {}: {}", "script", "/srv/a.py", io())
        );
        let e = CompileError::Changed {
            what: "executable",
            path: "/bin/x".into(),
            approved: "aa".into(),
            now: "bb".into(),
        };
        assert_eq!(
            e.to_string(),
            format!(
                "{} {} changed since approval: sha256 was {}, is now {}",
                "executable", "/bin/x", "aa", "bb"
            )
        );
        assert_eq!(
            CompileError::EnvTooLong.to_string(),
            format!(
                "the security-relevant environment it requires is over {ENVSET_CAP} bytes, \
                 more than the kernel compares"
            )
        );
        let e = ApproveError::Hash {
            path: "/bin/x".into(),
            source: io(),
        };
        assert_eq!(e.to_string(), format!("hashing {}: {}", "/bin/x", io()));
        let e = ApproveError::ExeChanged {
            path: "/bin/x".into(),
            seen: "aa".into(),
            now: "bb".into(),
        };
        assert_eq!(
            e.to_string(),
            format!(
                "{} changed since the launch (sha256 {} then, {} now): not approving content nobody saw",
                "/bin/x", "aa", "bb"
            )
        );
    }

    #[test]
    fn allow_keys_round_trip_through_hex() {
        let k = AllowKey {
            dev: 0xfe0_0000,
            argv_len: 9,
            ino: 42,
            ctime_sec: -3,
            ctime_nsec: 7,
            uid: 1000,
            profile: 2,
            _pad: 0,
            argv_hash: 0xdead_beef_0123_4567,
        };
        assert_eq!(key_from_hex(&key_hex(&k)), Some(k));
        assert_eq!(key_from_hex("00"), None);
    }

    #[test]
    fn leaf_first_matches_the_kernel_walk() {
        assert_eq!(leaf_first(b"/srv/app"), b"app\0srv\0");
        assert_eq!(leaf_first(b"/"), b"");
        assert_eq!(leaf_first(b"/a//b/"), b"b\0a\0");
    }

    #[test]
    fn argv_block_terminates_every_argument() {
        let argv = vec![Bytes::from("node"), Bytes::from(""), Bytes::from("x")];
        assert_eq!(argv_block(&argv), b"node\0\0x\0");
    }

    /// What the kernel must decide, read byte by byte: the security-relevant entries
    /// of the block (names of `SECURITY_ENV` and family members) are exactly the
    /// record's, each name at most once.
    fn naive_matches(block: &[u8], want: &BTreeMap<String, Option<Bytes>>) -> bool {
        let mut seen = BTreeMap::new();
        for entry in block.split(|&b| b == 0).filter(|e| !e.is_empty()) {
            let Some(i) = entry.iter().position(|&b| b == b'=') else {
                // No `=`: nobody's getenv finds it; one that begins like a family
                // member cannot be told apart by the kernel and spoils the scan.
                if crate::event::env_family(&String::from_utf8_lossy(entry)).is_some() {
                    return false;
                }
                continue;
            };
            let (name, value) = (&entry[..i], Some(entry[i + 1..].to_vec()));
            let name = String::from_utf8_lossy(name).into_owned();
            if !crate::event::is_security_env(&name) {
                continue;
            }
            if seen.insert(name, value).is_some() {
                return false;
            }
        }
        let want: BTreeMap<String, Option<Vec<u8>>> = want
            .iter()
            .filter_map(|(n, v)| Some((n.clone(), Some(v.clone()?.0))))
            .collect();
        seen == want
    }

    /// The kernel's three passes (monitor-ebpf/src/enforce.rs), step for step, with
    /// the same word-level helpers and the daemon's tables, over a block of `cap`
    /// bytes of which `len` count (the rest stale, as in the per-CPU scratch).
    fn kernel_matches(
        buf: &[u8],
        len: usize,
        v: &AllowValue,
        ids: &EnvIds,
        key: u64,
    ) -> Option<bool> {
        use monitor_common::{envfilter_bit, envscan::*, ENV_CAND_MAX, SECENV_NAME_CAP};
        let word = |o: usize| -> u64 {
            let o = o & (buf.len() - 8);
            u64::from_le_bytes(buf[o..o + 8].try_into().unwrap())
        };
        let at = |p: usize| {
            window(
                word(p & !7),
                word((p & !7) + 8),
                u32::try_from(p & 7).unwrap_or(0),
            )
        };
        let filter = crate::sensor::ebpf::secenv_filter(key).bits;
        let names: BTreeMap<u64, monitor_common::SecEnvName> =
            crate::sensor::ebpf::secenv_names(ids.names())
                .into_iter()
                .collect();
        let families: BTreeMap<u64, u32> =
            crate::sensor::ebpf::secenv_families().into_iter().collect();
        let mut cand = Vec::new();
        let mut o = 0;
        while o < len {
            let w = below(word(o), u32::try_from(len - o).unwrap());
            let prev_zero = o == 0 || word(o - 8) >> 56 == 0;
            let mut st = starts(w, prev_zero);
            while st != 0 {
                let mark = st & st.wrapping_neg();
                st ^= mark;
                let k = mark_byte(mark);
                #[allow(clippy::cast_possible_truncation)]
                let bit = envfilter_bit(window(w, word(o + 8), k) as u32, key);
                if filter[(bit >> 6) as usize] >> (bit & 63) & 1 != 0 {
                    if cand.len() >= ENV_CAND_MAX {
                        return None;
                    }
                    cand.push(o + k as usize);
                }
            }
            o += 8;
        }
        let mut found = 0u64;
        let mut pos = [0usize; 64];
        for p in cand {
            let rem = len - p;
            let mut h = 0u64;
            let mut nl = 0;
            for j in 0..SECENV_NAME_CAP / 8 {
                let off = j * 8;
                if off >= rem {
                    break;
                }
                let w = below(at(p + off), u32::try_from(rem - off).unwrap());
                h = name_mix(h, name_key(w));
                let st = stops(w);
                if st != 0 {
                    nl = off + mark_byte(st & st.wrapping_neg()) as usize + 1;
                    break;
                }
            }
            let known = names.get(&h).filter(|n| {
                nl != 0 && n.len as usize == nl && p + nl <= len && buf[p..p + nl] == n.name[..nl]
            });
            let Some(name) = known else {
                let w = below(at(p), u32::try_from(rem).unwrap());
                if [below(w, 3), below(w, 4), fold(w)]
                    .iter()
                    .any(|k| families.contains_key(k))
                {
                    return None;
                }
                continue;
            };
            let id = name.id as usize;
            if found & (1 << id) != 0 {
                return None;
            }
            found |= 1 << id;
            pos[id] = p;
        }
        if found != v.env_mask {
            return Some(false);
        }
        for t in 0..v.env_words as usize {
            let id = v.env_word_id[t] as usize;
            let slot = v.env_slot[id];
            let rel = t * 8 - (slot & 0xffff) as usize;
            let left = (slot >> 16) as usize - rel;
            let got = below(at(pos[id] + rel), u32::try_from(left).unwrap());
            let want = u64::from_le_bytes(v.env[t * 8..t * 8 + 8].try_into().unwrap());
            if got != want {
                return Some(false);
            }
        }
        Some(true)
    }

    #[test]
    #[expect(clippy::too_many_lines, reason = "one randomized scenario")]
    fn kernel_env_check_agrees_with_the_byte_by_byte_rule() {
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let mut rnd = |n: u64| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x % n
        };
        let filler = [
            "PATH=/usr/bin:/bin",
            "HOME=/root",
            "LANG=C.UTF-8",
            "",
            "X=1",
            "LD_=a",
            "LD_PRELOADX=/a",
            "NODE_OPTIONSS=1",
            "ENV",
            "ENVX=1",
            "=",
            "PYTHONPATHS=/x",
            "LD_PRELOAD",
            "NODE_OPT=1",
            "BASH_EN=1",
            "LD_LIBRARY_PAT=/x",
            "npm_package_name=x",
            "npm_confi=1",
            "Npm_Config_registry=http://evil",
            "GIT_DIR=/tmp/x",
            "GITX=1",
            "GIT_",
            "LD_BIND_NOW=1",
        ];
        // Family members a record may approve (and the environment may set).
        let members = [
            "LD_BIND_NOW",
            "npm_config_registry",
            "NPM_CONFIG_CACHE",
            "GIT_CONFIG_COUNT",
            "GIT_CONFIG_KEY_0",
        ];
        let values = ["", "/a.so", "--max-old-space-size=512", "x y", "/p:/q:/r"];
        let mut agree = 0;
        for round in 0..6000 {
            let mut want: BTreeMap<String, Option<Bytes>> = SECURITY_ENV
                .iter()
                .map(|n| ((*n).to_owned(), None))
                .collect();
            for n in SECURITY_ENV.iter().chain(&members) {
                if rnd(4) == 0 {
                    let v = values[usize::try_from(rnd(values.len() as u64)).unwrap()];
                    want.insert((*n).to_owned(), Some(Bytes::from(v)));
                }
            }
            // The kernel knows the members some other record approves, too.
            let mut other = crate::policy::record::tests::sample();
            other.env.insert(
                members[usize::try_from(rnd(members.len() as u64)).unwrap()].to_owned(),
                Some(Bytes::from("1")),
            );
            let mine = Record {
                env: want.clone(),
                ..other.clone()
            };
            let ids = EnvIds::for_records([&mine, &other]);
            let mut v = empty_value(1);
            set_env(&mut v, &want, &ids).unwrap();
            // The environment: filler, the wanted entries (maybe altered), extras.
            let mut entries: Vec<String> = Vec::new();
            for _ in 0..rnd(12) {
                entries.push(filler[usize::try_from(rnd(filler.len() as u64)).unwrap()].to_owned());
            }
            for (n, val) in &want {
                let Some(val) = val else {
                    if rnd(12) == 0 {
                        entries.push(format!("{n}=/evil"));
                    }
                    continue;
                };
                let val = String::from_utf8(val.0.clone()).unwrap();
                match rnd(10) {
                    0 => {}
                    1 => entries.push(format!("{n}={val}x")),
                    2 => entries.push(format!("{n}={}", &val[..val.len().saturating_sub(1)])),
                    3 => {
                        entries.push(format!("{n}={val}"));
                        entries.push(format!("{n}={val}"));
                    }
                    _ => entries.push(format!("{n}={val}")),
                }
            }
            let len = entries.len();
            for i in (1..len).rev() {
                entries.swap(i, usize::try_from(rnd(i as u64 + 1)).unwrap());
            }
            let mut block = Vec::new();
            // Shift the block so entries land at every alignment.
            for _ in 0..rnd(8) {
                block.extend_from_slice(b"A\0");
            }
            for e in &entries {
                block.extend_from_slice(e.as_bytes());
                block.push(0);
            }
            let mut buf = vec![0xa5u8; 1024];
            if block.len() > buf.len() - 8 {
                continue;
            }
            buf[..block.len()].copy_from_slice(&block);
            let key = rnd(u64::MAX);
            let naive = naive_matches(&block, &want);
            match kernel_matches(&buf, block.len(), &v, &ids, key) {
                // Spoiled: never a match (a name twice, an unknown family member,
                // or too many candidates).
                None => assert!(
                    !naive || entries.len() > monitor_common::ENV_CAND_MAX,
                    "round {round}: {entries:?}"
                ),
                Some(k) => assert_eq!(k, naive, "round {round}: {entries:?} want {want:?}"),
            }
            agree += 1;
        }
        assert!(agree > 5000);
    }

    #[test]
    fn set_env_lays_entries_out_in_words_and_refuses_what_the_kernel_cannot_hold() {
        let mut want = BTreeMap::new();
        want.insert("LD_PRELOAD".to_owned(), None);
        want.insert("NODE_OPTIONS".to_owned(), Some(Bytes::from("--x")));
        let mut v = empty_value(1);
        let ids = EnvIds::fixed();
        set_env(&mut v, &want, &ids).unwrap();
        let id = ids.id("NODE_OPTIONS").unwrap();
        assert_eq!(v.env_mask, 1 << id);
        assert_eq!(&v.env[..17], b"NODE_OPTIONS=--x\0");
        assert_eq!(v.env_slot[id as usize], 17 << 16);
        assert_eq!(v.env_words, 3);
        assert!(v.env_word_id[..3].iter().all(|&w| u32::from(w) == id));
        want.insert(
            "PYTHONPATH".to_owned(),
            Some(Bytes::from("y".repeat(2000).as_str())),
        );
        assert!(set_env(&mut v, &want, &ids)
            .unwrap_err()
            .to_string()
            .contains("1024 bytes"));
        want.insert("PYTHONPATH".to_owned(), Some(Bytes(b"a\0b".to_vec())));
        assert!(set_env(&mut v, &want, &ids)
            .unwrap_err()
            .to_string()
            .contains("NUL"));
        // A family member no active record made known has no id.
        want.remove("PYTHONPATH");
        want.insert("LD_BIND_NOW".to_owned(), Some(Bytes::from("1")));
        assert!(set_env(&mut v, &want, &ids)
            .unwrap_err()
            .to_string()
            .contains("is not one of them"));
    }

    #[test]
    fn compile_refuses_changed_content_and_binds_identity() {
        let dir = tempfile::tempdir().unwrap();
        let exe = dir.path().join("bin");
        fs::write(&exe, b"one").unwrap();
        let sha = HashCache::default().get(&exe).unwrap().1;
        let r = Record {
            id: 7,
            host: "h".into(),
            exe: FileBinding {
                path: exe.display().to_string(),
                sha256: sha,
                arg: None,
            },
            script: None,
            resolved: None,
            argv: vec![Bytes::from("bin"), Bytes::from("--x")],
            cwd: Some(Bytes::from("/srv/app")),
            env: BTreeMap::new(),
            scope: Scope::Once,
            source: Source::User(0),
            created: "2026-01-01T00:00:00Z".into(),
            note: String::new(),
            uid: 1000,
        };
        let mut h = HashCache::default();
        let c = compile(&r, 3, &mut h, &EnvIds::fixed(), (1, 2)).unwrap();
        assert_eq!(c.key.argv_len, 8);
        assert_eq!(c.key.uid, 1000);
        assert_eq!(c.key.profile, 3);
        assert_eq!(c.key.argv_hash, sip::hash_bytes(1, 2, b"bin\0--x\0"));
        assert_eq!(&c.value.argv[..10], b"bin\0--x\0\0\0", "zero past the argv");
        assert_eq!(c.value.flags, allow_flags::ONCE | allow_flags::CWD);
        assert_eq!(&c.value.cwd[..c.value.cwd_len as usize], b"app\0srv\0");
        fs::write(&exe, b"two").unwrap();
        let err = compile(&r, 3, &mut h, &EnvIds::fixed(), (1, 2))
            .err()
            .unwrap();
        assert!(err.to_string().contains("changed since approval"), "{err}");
    }

    #[test]
    fn an_until_far_in_the_future_is_not_taken_as_expired() {
        let dir = tempfile::tempdir().unwrap();
        let exe = dir.path().join("bin");
        fs::write(&exe, b"one").unwrap();
        let sha = HashCache::default().get(&exe).unwrap().1;
        let mut r = crate::policy::record::tests::sample();
        r.exe = FileBinding {
            path: exe.display().to_string(),
            sha256: sha,
            arg: None,
        };
        r.script = None;
        r.resolved = None;
        let mut h = HashCache::default();
        for (until, far) in [
            ("2100-01-01T00:00:00Z", false),
            ("9999-12-31T23:59:59Z", true),
        ] {
            r.scope = Scope::Until(until.into());
            let c = compile(&r, 3, &mut h, &EnvIds::fixed(), (1, 2))
                .unwrap_or_else(|e| panic!("until={until}: {e}"));
            assert!(c.value.expires_boot_ns > clock::boot_ns(), "until={until}");
            assert_eq!(c.value.expires_boot_ns == u64::MAX, far, "until={until}");
        }
        r.scope = Scope::Until("2000-01-01T00:00:00Z".into());
        let err = compile(&r, 3, &mut h, &EnvIds::fixed(), (1, 2))
            .err()
            .unwrap();
        assert!(matches!(err, CompileError::Expired), "{err}");
    }

    #[test]
    fn approval_says_what_a_record_cannot_bind() {
        let b = |v: &[&str]| v.iter().map(|a| Bytes::from(*a)).collect::<Vec<_>>();
        let py = Path::new("/usr/bin/python3");
        let r = binding_risks(
            py,
            &b(&["python3", "-m", "mcp_server_time"]),
            None,
            Some(1000),
        );
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].code, "unbound-code");
        assert!(r[0].detail.contains("mcp_server_time"), "{r:?}");
        let r = binding_risks(py, &b(&["python3", "server.py"]), None, Some(1000));
        assert_eq!(r[0].code, "unbound-code", "relative, no directory: {r:?}");
        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join("server.py");
        fs::write(&script, "print(1)\n").unwrap();
        let argv = b(&["python3", "server.py"]);
        assert!(binding_risks(py, &argv, Some(dir.path()), Some(1000)).is_empty());
        std::os::unix::fs::chown(&script, Some(1000), None).unwrap();
        let r = binding_risks(py, &argv, Some(dir.path()), Some(1000));
        assert_eq!(r.len(), 1, "{r:?}");
        assert_eq!(r[0].code, "writable-script");
        assert!(binding_risks(py, &argv, Some(dir.path()), Some(1001)).is_empty());
        assert_eq!(
            script_ref(py, &argv, Some(dir.path())).unwrap(),
            Some(ScriptRef {
                arg: 1,
                path: fs::canonicalize(&script).unwrap()
            })
        );
        let env = Path::new("/usr/bin/env");
        assert_eq!(
            script_of(
                env,
                &b(&["/usr/bin/env", "node", "/usr/bin/npx", "-y", "x"])
            ),
            ScriptArg::At(2)
        );
        assert_eq!(
            script_of(
                env,
                &b(&["/usr/bin/env", "-S node --no-warnings", "/srv/s.js"])
            ),
            ScriptArg::At(2)
        );
        assert_eq!(
            script_of(
                env,
                &b(&["/usr/bin/env", "-u", "X", "A=1", "python3", "s.py"])
            ),
            ScriptArg::At(5)
        );
        let chdir = b(&["/usr/bin/env", "-C", "/srv", "python3", "s.py"]);
        assert!(matches!(script_of(env, &chdir), ScriptArg::Unbindable(_)));
        assert_eq!(env_prog(env, &chdir), Some((3, b"python3".to_vec())));
        assert_eq!(
            env_prog(env, &b(&["/usr/bin/env", "-S node --x", "/srv/s.js"])),
            Some((1, b"node".to_vec()))
        );
    }
}
