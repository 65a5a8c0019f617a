//! Resolution of host profiles into the keys the kernel matches: `(dev, ino)`
//! identities of executables and helpers, and the exec filenames of entry scripts.

use std::{
    collections::{BTreeSet, HashMap},
    fs,
    os::unix::{ffi::OsStrExt, fs::MetadataExt},
    path::{Path, PathBuf},
};

use glob::Pattern;
use monitor_common::{
    ExeKey, NameKey, PathKey, TailKey, HOST_NAME_KEY, HOST_PATH_KEY, NAME_INTERPRETER, SCRIPT_TAIL,
};

use super::{hostfs::HostFs, profile::HostProfile};

/// `st_dev` as `stat(2)` returns it → the kernel's `s_dev` encoding
/// (`major << 20 | minor`, `MKDEV`), which is what `HOST_EXES` keys carry. The
/// inverse of `event::raw::kernel_dev_to_user`. `/dev/vda` 254:0 is `0xfe00` from
/// stat and `0x0fe0_0000` in the kernel.
pub fn user_dev_to_kernel(st_dev: u64) -> u32 {
    let major = libc::major(st_dev);
    let minor = libc::minor(st_dev);
    // A dev_t that came from the kernel always fits (12-bit major, 20-bit minor).
    ((major & 0xfff) << 20) | (minor & 0xf_ffff)
}

/// The kernel's identity key (`HOST_EXES`, `DENY_EXES`, `CLASS_EXES`) of a file
/// `stat(2)` described.
pub fn exe_key(meta: &fs::Metadata) -> ExeKey {
    ExeKey {
        dev: user_dev_to_kernel(meta.dev()),
        _pad: 0,
        ino: meta.ino(),
    }
}

/// The `HOST_PATHS` key for an exec filename, or `None` if it is longer than the
/// kernel can match (`HOST_PATH_KEY - 1` bytes, the key is NUL-terminated).
pub fn path_key(path: &Path) -> Option<PathKey> {
    let bytes = path.as_os_str().as_bytes();
    if bytes.len() >= HOST_PATH_KEY || bytes.contains(&0) {
        return None;
    }
    let mut key = PathKey::default();
    key.path[..bytes.len()].copy_from_slice(bytes);
    Some(key)
}

/// Why a profile's `names` entry cannot be matched by the kernel.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum HostNameError {
    #[error("is empty")]
    Empty,
    #[error("contains '/': a name is the last component of the exec filename")]
    Slash,
    #[error("contains a NUL byte")]
    Nul,
    #[error("is {len} bytes; the kernel matches names of at most {} bytes", HOST_NAME_KEY - 1)]
    TooLong { len: usize },
    #[error("is `.` or `..`")]
    Dots,
}

/// Checks a `names` entry.
pub fn check_host_name(name: &str) -> Result<(), HostNameError> {
    if name.is_empty() {
        Err(HostNameError::Empty)
    } else if name.contains('/') {
        Err(HostNameError::Slash)
    } else if name.contains('\0') {
        Err(HostNameError::Nul)
    } else if name.len() >= HOST_NAME_KEY {
        Err(HostNameError::TooLong { len: name.len() })
    } else if name == "." || name == ".." {
        Err(HostNameError::Dots)
    } else {
        Ok(())
    }
}

/// The `HOST_NAMES` key for a name, or `None` when [`check_host_name`] refuses it.
pub fn name_key(name: &str) -> Option<NameKey> {
    check_host_name(name).ok()?;
    let mut key = NameKey::default();
    key.name[..name.len()].copy_from_slice(name.as_bytes());
    Some(key)
}

/// The name the kernel matches in an exec filename: its last component.
pub fn exec_name(filename: &[u8]) -> &[u8] {
    filename.rsplit(|&b| b == b'/').next().unwrap_or(filename)
}

/// Interpreters whose argv[1] may be a host's package script (`NAME_INTERPRETER`).
pub const INTERPRETER_NAMES: &[&str] = &["node", "nodejs", "bun"];

/// The `HOST_SCRIPT_TAILS` key of a package script (`@scope/pkg/bin/x.js`): the
/// last `SCRIPT_TAIL` bytes of `node_modules/<script>`, or `None` when that is
/// shorter or the script is not a relative path.
pub fn tail_key(script: &str) -> Option<TailKey> {
    if script.is_empty() || script.starts_with('/') || script.contains('\0') {
        return None;
    }
    let full = format!("node_modules/{script}");
    let bytes = full.as_bytes();
    if bytes.len() < SCRIPT_TAIL {
        return None;
    }
    let mut key = TailKey::default();
    key.tail
        .copy_from_slice(&bytes[bytes.len() - SCRIPT_TAIL..]);
    Some(key)
}

/// What [`resolve`] found: the map entries to load, in a stable order.
#[derive(Clone, Debug, Default)]
pub struct Resolved {
    /// `HOST_EXES` entries: key, profile index, canonical path of the executable.
    pub exes: Vec<(ExeKey, u32, PathBuf)>,
    /// The hosts' helper executables, keyed like `exes` (a helper claimed by two
    /// profiles goes to the first).
    pub helpers: Vec<(ExeKey, u32, PathBuf)>,
    /// `HOST_PATHS` entries: key, profile index, the path the key spells.
    pub paths: Vec<(PathKey, u32, PathBuf)>,
    /// `HOST_NAMES` entries: key, profile index (`NAME_INTERPRETER` for the
    /// interpreters of package scripts), the name.
    pub names: Vec<(NameKey, u32, String)>,
    /// `HOST_SCRIPT_TAILS` entries: key, profile index, the package script.
    pub tails: Vec<(TailKey, u32, String)>,
    /// Problems worth telling the operator (one line each, naming the host).
    pub warnings: Vec<String>,
    /// Entries that matched nothing (profile index, entry): a host that is not
    /// installed. Counted, never warned about.
    pub unmatched: Vec<(u32, String)>,
}

impl Resolved {
    /// See [`is_host_script`].
    pub fn is_host_script(&self, profile: u32, argv: &[Vec<u8>]) -> bool {
        is_host_script(profile, &self.paths, argv)
    }
}

/// A host entry that is neither absolute nor under `~/` (skipped, with a warning).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("`{entry}` is neither an absolute path nor one starting with ~/; skipped")]
pub struct NotAbsolute {
    pub entry: String,
}

/// Expands a leading `~/` to every home directory (escaped, so a home containing
/// glob characters matches literally).
fn expand_home(entry: &str, homes: &[PathBuf]) -> Result<Vec<String>, NotAbsolute> {
    if let Some(rest) = entry.strip_prefix("~/") {
        Ok(homes
            .iter()
            .filter_map(|home| home.to_str())
            .map(|home| format!("{}/{rest}", Pattern::escape(home.trim_end_matches('/'))))
            .collect())
    } else if entry.starts_with('/') {
        Ok(vec![entry.to_owned()])
    } else {
        Err(NotAbsolute {
            entry: entry.to_owned(),
        })
    }
}

/// Every path an entry matches, over all homes, without duplicates.
fn matches_of(
    entry: &str,
    host: &str,
    homes: &[PathBuf],
    fs: &dyn HostFs,
    warnings: &mut Vec<String>,
) -> Vec<PathBuf> {
    let patterns = match expand_home(entry, homes) {
        Ok(patterns) => patterns,
        Err(reason) => {
            warnings.push(format!("host {host}: {reason}"));
            return Vec::new();
        }
    };
    let mut found = BTreeSet::new();
    for pattern in patterns {
        match fs.glob(&pattern) {
            Ok(outcome) => {
                found.extend(outcome.matches);
                warnings.extend(
                    outcome
                        .errors
                        .into_iter()
                        .map(|e| format!("host {host}: `{entry}`: {e}")),
                );
            }
            Err(e) => {
                // Same pattern for every home: say it once.
                warnings.push(format!("host {host}: `{entry}` is not a valid glob: {e}"));
                break;
            }
        }
    }
    found.into_iter().collect()
}

/// Resolves profiles to map entries. The profile index in `profiles` is the id the
/// kernel records. Keys claimed by two profiles go to the first, with a warning.
pub fn resolve(profiles: &[HostProfile], fs: &dyn HostFs) -> Resolved {
    let mut resolver = Resolver {
        profiles,
        homes: fs.home_dirs(),
        fs,
        out: Resolved::default(),
        exe_owner: HashMap::new(),
        helper_owner: HashMap::new(),
        path_owner: HashMap::new(),
    };
    for (index, profile) in profiles.iter().enumerate() {
        let Ok(id) = u32::try_from(index) else {
            resolver.out.warnings.push(format!(
                "more than {} host profiles; ignoring the rest",
                u32::MAX
            ));
            break;
        };
        resolver.add_files(id, &profile.exe, FileKind::Exe);
        resolver.add_files(id, &profile.helpers, FileKind::Helper);
        resolver.add_scripts(id, &profile.scripts);
        resolver.add_names(id, &profile.names);
        resolver.add_tails(id, &profile.package_scripts);
    }
    if !resolver.out.tails.is_empty() {
        for name in INTERPRETER_NAMES {
            let Some(key) = name_key(name) else { continue };
            match resolver.out.names.iter().find(|(k, _, _)| *k == key) {
                Some((_, owner, _)) => resolver.out.warnings.push(format!(
                    "name {name:?} is a name of host {}: package scripts run by {name} are not recognised",
                    profiles[*owner as usize].name
                )),
                None => resolver
                    .out
                    .names
                    .push((key, NAME_INTERPRETER, (*name).to_owned())),
            }
        }
    }
    resolver.out
}

/// What an `(dev, ino)`-keyed entry of a profile is.
#[derive(Clone, Copy)]
enum FileKind {
    Exe,
    Helper,
}

impl FileKind {
    fn what(self) -> &'static str {
        match self {
            FileKind::Exe => "the executable",
            FileKind::Helper => "a helper",
        }
    }
}

/// The state of one [`resolve`]: who owns which key so far.
struct Resolver<'a> {
    profiles: &'a [HostProfile],
    homes: Vec<PathBuf>,
    fs: &'a dyn HostFs,
    out: Resolved,
    exe_owner: HashMap<ExeKey, u32>,
    helper_owner: HashMap<ExeKey, u32>,
    path_owner: HashMap<Vec<u8>, u32>,
}

impl Resolver<'_> {
    fn host(&self, id: u32) -> &str {
        &self.profiles[id as usize].name
    }

    /// Every file an entry matches (counted as unmatched when there is none).
    fn matches(&mut self, id: u32, entry: &str) -> Vec<PathBuf> {
        let host = &self.profiles[id as usize].name;
        let matches = matches_of(entry, host, &self.homes, self.fs, &mut self.out.warnings);
        if matches.is_empty() {
            self.out.unmatched.push((id, entry.to_owned()));
        }
        matches
    }

    /// `exe` and `helpers` entries: keyed by the `(dev, ino)` of the file.
    fn add_files(&mut self, id: u32, entries: &[String], kind: FileKind) {
        for entry in entries {
            for found in self.matches(id, entry) {
                let host = self.host(id).to_owned();
                let Some(canonical) =
                    canonical_file(self.fs, &found, &host, &mut self.out.warnings)
                else {
                    continue;
                };
                let file = match self.fs.stat(&canonical) {
                    Ok(file) if file.is_file => file,
                    Ok(_) => continue,
                    Err(e) => {
                        self.out.warnings.push(format!(
                            "host {host}: cannot stat {}: {e}",
                            canonical.display()
                        ));
                        continue;
                    }
                };
                let key = ExeKey {
                    dev: user_dev_to_kernel(file.dev),
                    _pad: 0,
                    ino: file.ino,
                };
                let (owners, keyed) = match kind {
                    FileKind::Exe => (&mut self.exe_owner, &mut self.out.exes),
                    FileKind::Helper => (&mut self.helper_owner, &mut self.out.helpers),
                };
                match owners.get(&key) {
                    Some(&owner) if owner == id => {}
                    Some(&owner) => self.out.warnings.push(format!(
                        "host {host}: {} is already {} of host {}; kept there",
                        canonical.display(),
                        kind.what(),
                        self.profiles[owner as usize].name
                    )),
                    None => {
                        owners.insert(key, id);
                        keyed.push((key, id, canonical));
                    }
                }
            }
        }
    }

    /// `scripts` entries: keyed by the exec filename, link and canonical path.
    fn add_scripts(&mut self, id: u32, entries: &[String]) {
        for entry in entries {
            for found in self.matches(id, entry) {
                let host = self.host(id).to_owned();
                let Some(canonical) =
                    canonical_file(self.fs, &found, &host, &mut self.out.warnings)
                else {
                    continue;
                };
                if !self.fs.stat(&canonical).is_ok_and(|file| file.is_file) {
                    continue;
                }
                // The exec filename is whichever of the two the caller used.
                for path in [found, canonical] {
                    self.add_path(id, path);
                }
            }
        }
    }

    /// `names` entries: keyed by the name; a name claimed by two profiles goes to
    /// the first.
    fn add_names(&mut self, id: u32, names: &[String]) {
        let host = self.profiles[id as usize].name.clone();
        for name in names {
            let Some(key) = name_key(name) else {
                let why = check_host_name(name).err().map(|e| e.to_string());
                self.out.warnings.push(format!(
                    "host {host}: name {name:?} {}; skipped",
                    why.unwrap_or_default()
                ));
                continue;
            };
            if let Some(owner) = claim(&mut self.out.names, key, id, name) {
                self.out.warnings.push(format!(
                    "host {host}: name {name:?} is already a name of host {}; kept there",
                    self.profiles[owner as usize].name
                ));
            }
        }
    }

    /// `package_scripts` entries: keyed by their tail; a tail claimed by two
    /// profiles goes to the first.
    fn add_tails(&mut self, id: u32, scripts: &[String]) {
        let host = self.profiles[id as usize].name.clone();
        for script in scripts {
            let Some(key) = tail_key(script) else {
                self.out.warnings.push(format!(
                    "host {host}: package script {script:?} must be a path inside node_modules \
                     of at least {SCRIPT_TAIL} bytes with it; skipped"
                ));
                continue;
            };
            if let Some(owner) = claim(&mut self.out.tails, key, id, script) {
                self.out.warnings.push(format!(
                    "host {host}: package script {script:?} ends like one of host {}; kept there",
                    self.profiles[owner as usize].name
                ));
            }
        }
    }

    fn add_path(&mut self, id: u32, path: PathBuf) {
        let host = &self.profiles[id as usize].name;
        let bytes = path.as_os_str().as_bytes().to_vec();
        match self.path_owner.get(&bytes) {
            Some(&o) if o == id => {}
            Some(&o) => self.out.warnings.push(format!(
                "host {host}: {} is already a script of host {}; kept there",
                path.display(),
                self.profiles[o as usize].name
            )),
            None => {
                let Some(key) = path_key(&path) else {
                    self.out.warnings.push(format!(
                        "host {host}: {} is {} bytes, longer than the {} the kernel matches; \
                         exec through this path is not recognised",
                        path.display(),
                        bytes.len(),
                        HOST_PATH_KEY - 1
                    ));
                    // Remember it so the same path is not warned about twice.
                    self.path_owner.insert(bytes, id);
                    return;
                };
                self.path_owner.insert(bytes, id);
                self.out.paths.push((key, id, path));
            }
        }
    }
}

/// Give `key` to profile `id` unless another profile has it: `Some(owner)` then.
fn claim<K: PartialEq>(
    keys: &mut Vec<(K, u32, String)>,
    key: K,
    id: u32,
    what: &str,
) -> Option<u32> {
    match keys.iter().find(|(k, _, _)| *k == key) {
        Some(&(_, owner, _)) if owner != id => Some(owner),
        Some(_) => None,
        None => {
            keys.push((key, id, what.to_owned()));
            None
        }
    }
}

/// Every file the path globs `entries` match (`~/` for every home), without
/// duplicates, and the problems worth telling (prefixed `what`): the expansion
/// host profiles use, for other lists of executables (`wrappers`).
pub fn glob_files(entries: &[String], what: &str, fs: &dyn HostFs) -> (Vec<PathBuf>, Vec<String>) {
    let homes = fs.home_dirs();
    let mut warnings = Vec::new();
    let mut found = BTreeSet::new();
    for entry in entries {
        found.extend(matches_of(entry, what, &homes, fs, &mut warnings));
    }
    (found.into_iter().collect(), warnings)
}

/// The canonical path of a glob match; `None` (with a warning) for a dangling link.
fn canonical_file(
    fs: &dyn HostFs,
    found: &Path,
    host: &str,
    warnings: &mut Vec<String>,
) -> Option<PathBuf> {
    match fs.canonicalize(found) {
        Ok(canonical) => Some(canonical),
        Err(e) => {
            warnings.push(format!(
                "host {host}: cannot resolve {}: {e}",
                found.display()
            ));
            None
        }
    }
}

/// True when argv names a resolved script path (link or canonical) of host
/// `profile` ([`monitor_common::argv_names_host_script`]: an argument at index 1 to 3):
/// the host relaunching itself through its interpreter, e.g. Gemini CLI's `node
/// --max-old-space-size=… /usr/lib/node_modules/@google/gemini-cli/bundle/gemini.js`.
/// Relative script arguments do not match. The kernel decides the same exec with its
/// copy of the rule (`monitor-ebpf/src/classify.rs`).
pub fn is_host_script(
    profile: u32,
    resolved_paths: &[(PathKey, u32, PathBuf)],
    argv: &[Vec<u8>],
) -> bool {
    monitor_common::argv_names_host_script(argv, |arg| {
        resolved_paths
            .iter()
            .any(|(_, id, path)| *id == profile && path.as_os_str().as_bytes() == arg)
    })
}

/// The host profile whose script argv names (the first in `resolved_paths` order,
/// which is profile order), for a process found running rather than seen at exec.
pub fn script_profile(resolved_paths: &[(PathKey, u32, PathBuf)], argv: &[Vec<u8>]) -> Option<u32> {
    resolved_paths
        .iter()
        .find(|(_, _, path)| {
            monitor_common::argv_names_host_script(argv, |arg| path.as_os_str().as_bytes() == arg)
        })
        .map(|&(_, id, _)| id)
}

#[cfg(test)]
mod name_tests {
    use super::{check_host_name, exec_name, name_key, resolve, HostNameError};
    use crate::hosts::{fake::FakeFs, HostProfile};

    fn profile(name: &str, names: &[&str]) -> HostProfile {
        HostProfile {
            name: name.to_owned(),
            names: names.iter().map(|n| (*n).to_owned()).collect(),
            ..HostProfile::default()
        }
    }

    #[test]
    fn names_become_kernel_keys_and_a_name_claimed_twice_stays_with_the_first() {
        let profiles = [
            profile("claude-code", &["claude", "claude.exe"]),
            profile("other", &["claude", "other"]),
        ];
        let r = resolve(&profiles, &FakeFs::new());
        let got: Vec<(u32, &str)> = r.names.iter().map(|(_, id, n)| (*id, n.as_str())).collect();
        assert_eq!(got, [(0, "claude"), (0, "claude.exe"), (1, "other")]);
        assert_eq!(r.names[0].0, name_key("claude").expect("key"));
        assert_eq!(&r.names[0].0.name[..7], b"claude\0");
        assert!(
            r.warnings
                .iter()
                .any(|w| w.contains("\"claude\" is already a name of host claude-code")),
            "{:?}",
            r.warnings
        );
    }

    #[test]
    fn a_name_the_kernel_cannot_match_is_refused_with_the_reason() {
        assert_eq!(check_host_name(""), Err(HostNameError::Empty));
        assert_eq!(check_host_name("bin/claude"), Err(HostNameError::Slash));
        assert_eq!(check_host_name(".."), Err(HostNameError::Dots));
        assert_eq!(check_host_name("a\0b"), Err(HostNameError::Nul));
        let long = "x".repeat(32);
        assert_eq!(
            check_host_name(&long),
            Err(HostNameError::TooLong { len: 32 })
        );
        assert!(check_host_name(&"x".repeat(31)).is_ok());
        let r = resolve(&[profile("h", &["ok", &long])], &FakeFs::new());
        assert_eq!(r.names.len(), 1);
        assert!(
            r.warnings.iter().any(|w| w.contains("at most 31 bytes")),
            "{:?}",
            r.warnings
        );
    }

    #[test]
    fn the_name_is_the_last_component_of_the_exec_filename() {
        assert_eq!(
            exec_name(b"/home/a/.nvm/versions/node/v22/bin/claude"),
            b"claude"
        );
        assert_eq!(exec_name(b"./node_modules/.bin/claude"), b"claude");
        assert_eq!(exec_name(b"claude"), b"claude");
        assert_eq!(exec_name(b"/usr/bin/"), b"");
    }

    #[test]
    fn the_built_in_names_are_valid_and_each_names_one_host() {
        let profiles = crate::hosts::builtin_profiles();
        let r = resolve(&profiles, &FakeFs::new());
        let named: usize = profiles.iter().map(|p| p.names.len()).sum();
        // And the interpreters of the package scripts.
        assert_eq!(
            r.names.len(),
            named + super::INTERPRETER_NAMES.len(),
            "{:?}",
            r.warnings
        );
        let scripts: usize = profiles.iter().map(|p| p.package_scripts.len()).sum();
        assert_eq!(r.tails.len(), scripts, "{:?}", r.warnings);
        assert!(
            r.warnings.iter().all(|w| !w.contains("name")),
            "{:?}",
            r.warnings
        );
        for p in &profiles {
            assert!(
                !p.names.is_empty(),
                "{} has a name to be recognised by",
                p.name
            );
        }
    }

    #[test]
    fn a_package_script_is_keyed_by_the_tail_of_its_node_modules_path() {
        let k = super::tail_key("@google/gemini-cli/bundle/gemini.js").expect("key");
        assert_eq!(
            &k.tail,
            b"oogle/gemini-cli/bundle/gemini.js"[1..]
                .try_into()
                .unwrap_or(&[0u8; 32])
        );
        // Short scripts take `node_modules/` into the tail.
        let k = super::tail_key("@openai/codex/bin/codex.js").expect("key");
        assert_eq!(
            &k.tail[..],
            &b"node_modules/@openai/codex/bin/codex.js"[7..]
        );
        assert!(super::tail_key("/abs/cli.js").is_none());
        assert!(
            super::tail_key("x.js").is_none(),
            "too short even with node_modules/"
        );
        // A pnpm store path ends like the npm one.
        let pnpm = "/home/a/.local/share/pnpm/global/5/node_modules/.pnpm/@google+gemini-cli@0.61.0/node_modules/@google/gemini-cli/bundle/gemini.js";
        let k = super::tail_key("@google/gemini-cli/bundle/gemini.js").expect("key");
        assert!(pnpm.as_bytes().ends_with(&k.tail));
    }
}
