//! Host profiles: which executables and `#!` entry scripts belong to an MCP host.
//!
//! A [`HostProfile`] names path globs. [`resolve`] turns them into the keys the kernel
//! matches at every exec (see `monitor-ebpf`):
//!
//! - `HOST_EXES`, keyed by [`ExeKey`] — the identity `(dev, ino)` of the new image's
//!   executable, `dev` in the kernel's `s_dev` encoding. This recognises native hosts
//!   (Claude Code, Codex's binary, the Electron editors) whatever path or argv[0]
//!   they were started with, including through symlinks and hard links.
//! - `HOST_PATHS`, keyed by [`PathKey`] — the filename exactly as passed to execve.
//!   For a `#!` script the kernel's `mm->exe_file` is the *interpreter* (node), so
//!   the script can only be recognised by the name it was executed under. A bin link
//!   (`/usr/bin/gemini`) and its target are different strings: both are keyed.
//!
//! - `helpers`, keyed like `exe` — the host's own helper executables (Electron's
//!   `chrome-sandbox` and `chrome_crashpad_handler` next to the main binary): the
//!   host runs them itself, they are not MCP servers.
//!
//! - `HOST_NAMES`, keyed by [`NameKey`](monitor_common::NameKey) — the last
//!   component of the exec filename (`claude`). This recognises a host wherever and
//!   whenever it was installed; the kernel applies it only to processes that are not
//!   tracked yet (see `monitor-ebpf/src/names.rs`).
//! - `HOST_SCRIPT_TAILS`, keyed by [`TailKey`](monitor_common::TailKey) — the last
//!   32 bytes of `node_modules/<package script>`: an interpreter (`node`, in
//!   `HOST_NAMES` as `NAME_INTERPRETER`) on such a script is the host (pnpm's shims).
//!
//! Resolution is pure over [`HostFs`], so it is unit-tested with a fake filesystem;
//! [`RealFs`] is the thin layer over the real one. Resolution of paths is a
//! snapshot: a host installed, upgraded (npm replaces the file: new inode) or
//! mounted (an `AppImage`) later is not in `HOST_EXES` until the next [`resolve`],
//! and is recognised by its name meanwhile.
//!
//! A profile also says where the host keeps its MCP server configs
//! ([`ConfigLocation`]); [`import`] finds and parses them.

mod builtin;
mod hostfs;
pub mod import;
mod keys;
mod profile;
mod version;

pub use builtin::builtin_profiles;
pub use hostfs::{passwd_homes, FileId, GlobOutcome, HostFs, RealFs, CONFIG_MAX_BYTES};
pub use keys::{
    check_host_name, exe_key, exec_name, glob_files, is_host_script, name_key, path_key, resolve,
    script_profile, tail_key, user_dev_to_kernel, HostNameError, NotAbsolute, Resolved,
    INTERPRETER_NAMES,
};
pub use profile::{ConfigLocation, HostProfile, Level, Schema};
pub use version::version_of;

/// A fake filesystem for unit tests of resolution and config validation.
#[cfg(test)]
pub(crate) mod fake {
    use std::{
        collections::{BTreeMap, BTreeSet},
        io,
        path::{Component, Path, PathBuf},
    };

    use glob::{MatchOptions, Pattern, PatternError};

    use super::{FileId, GlobOutcome, HostFs};

    #[derive(Clone, Debug, Default)]
    pub(crate) struct FakeFs {
        files: BTreeMap<PathBuf, FileId>,
        dirs: BTreeSet<PathBuf>,
        /// Link path → target (absolute, or relative to the link's directory).
        links: BTreeMap<PathBuf, PathBuf>,
        homes: Vec<PathBuf>,
        /// Glob pattern → read errors it reports.
        glob_errors: BTreeMap<String, Vec<String>>,
        /// File contents for [`HostFs::read`] (other files read as empty).
        contents: BTreeMap<PathBuf, Vec<u8>>,
    }

    impl FakeFs {
        pub(crate) fn new() -> Self {
            Self::default()
        }

        pub(crate) fn home(mut self, path: &str) -> Self {
            self.homes.push(PathBuf::from(path));
            self.dirs.insert(PathBuf::from(path));
            self
        }

        /// A regular file with `st_dev` = makedev(major, minor).
        pub(crate) fn file(mut self, path: &str, (major, minor): (u32, u32), ino: u64) -> Self {
            let id = FileId {
                dev: libc::makedev(major, minor),
                ino,
                is_file: true,
            };
            self.files.insert(PathBuf::from(path), id);
            self
        }

        /// A regular file with content (a distinct inode per path).
        pub(crate) fn text(mut self, path: &str, content: impl Into<Vec<u8>>) -> Self {
            let ino = 1_000_000 + self.files.len() as u64;
            self = self.file(path, (0, 1), ino);
            self.contents.insert(PathBuf::from(path), content.into());
            self
        }

        pub(crate) fn dir(mut self, path: &str) -> Self {
            self.dirs.insert(PathBuf::from(path));
            self
        }

        pub(crate) fn link(mut self, path: &str, target: &str) -> Self {
            self.links
                .insert(PathBuf::from(path), PathBuf::from(target));
            self
        }

        pub(crate) fn glob_error(mut self, pattern: &str, error: &str) -> Self {
            self.glob_errors
                .entry(pattern.to_owned())
                .or_default()
                .push(error.to_owned());
            self
        }

        fn resolve_links(&self, path: &Path) -> io::Result<PathBuf> {
            let mut pending: Vec<Component> = path.components().rev().collect();
            let mut resolved = PathBuf::from("/");
            let mut hops = 0;
            while let Some(component) = pending.pop() {
                match component {
                    Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
                    Component::ParentDir => {
                        resolved.pop();
                    }
                    Component::Normal(name) => {
                        let next = resolved.join(name);
                        if let Some(target) = self.links.get(&next) {
                            hops += 1;
                            if hops > 40 {
                                return Err(io::Error::from_raw_os_error(libc::ELOOP));
                            }
                            if target.is_absolute() {
                                resolved = PathBuf::from("/");
                            }
                            pending.extend(target.components().rev());
                        } else {
                            resolved = next;
                        }
                    }
                }
            }
            Ok(resolved)
        }
    }

    impl HostFs for FakeFs {
        fn glob(&self, pattern: &str) -> Result<GlobOutcome, PatternError> {
            let compiled = Pattern::new(pattern)?;
            let options = MatchOptions {
                case_sensitive: true,
                require_literal_separator: true,
                require_literal_leading_dot: false,
            };
            let matches: BTreeSet<PathBuf> = self
                .files
                .keys()
                .chain(self.dirs.iter())
                .chain(self.links.keys())
                .filter(|p| compiled.matches_path_with(p, options))
                .cloned()
                .collect();
            Ok(GlobOutcome {
                matches: matches.into_iter().collect(),
                errors: self.glob_errors.get(pattern).cloned().unwrap_or_default(),
            })
        }

        fn stat(&self, path: &Path) -> io::Result<FileId> {
            let real = self.resolve_links(path)?;
            if let Some(id) = self.files.get(&real) {
                Ok(*id)
            } else if self.dirs.contains(&real) {
                Ok(FileId {
                    dev: 1,
                    ino: 1,
                    is_file: false,
                })
            } else {
                Err(io::Error::from(io::ErrorKind::NotFound))
            }
        }

        fn canonicalize(&self, path: &Path) -> io::Result<PathBuf> {
            let real = self.resolve_links(path)?;
            if self.files.contains_key(&real) || self.dirs.contains(&real) {
                Ok(real)
            } else {
                Err(io::Error::from(io::ErrorKind::NotFound))
            }
        }

        fn home_dirs(&self) -> Vec<PathBuf> {
            self.homes.clone()
        }

        fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
            let real = self.resolve_links(path)?;
            match (self.contents.get(&real), self.files.contains_key(&real)) {
                (Some(content), _) => Ok(content.clone()),
                (None, true) => Ok(Vec::new()),
                (None, false) if self.dirs.contains(&real) => {
                    Err(io::Error::from_raw_os_error(libc::EISDIR))
                }
                (None, false) => Err(io::Error::from(io::ErrorKind::NotFound)),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::{
        collections::BTreeSet,
        fs,
        os::unix::{ffi::OsStrExt, fs::MetadataExt},
        path::{Path, PathBuf},
    };

    use glob::Pattern;
    use monitor_common::{ExeKey, PathKey, HOST_PATH_KEY};

    use super::{
        builtin::{profile, strings},
        fake::FakeFs,
        *,
    };

    #[test]
    fn real_reads_refuse_fifos_devices_and_huge_files_without_blocking() {
        let dir = tempfile::tempdir().unwrap();
        // A FIFO where a config should be: opening it must not wait for a writer.
        let fifo = dir.path().join("mcp.json");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o644)).unwrap();
        let err = RealFs.read(&fifo).unwrap_err();
        assert!(err.to_string().contains("not a regular file"), "{err}");
        let err = RealFs.read(Path::new("/dev/zero")).unwrap_err();
        assert!(err.to_string().contains("not a regular file"), "{err}");
        let big = dir.path().join("big.json");
        let f = fs::File::create(&big).unwrap();
        f.set_len(CONFIG_MAX_BYTES + 1).unwrap();
        let err = RealFs.read(&big).unwrap_err();
        assert!(err.to_string().contains("larger than"), "{err}");
        let ok = dir.path().join("ok.json");
        fs::write(&ok, "{}").unwrap();
        assert_eq!(RealFs.read(&ok).unwrap(), b"{}");
    }

    const CLAUDE_EXE: &str = "/usr/lib/node_modules/@anthropic-ai/claude-code/bin/claude.exe";
    const GEMINI_JS: &str = "/usr/lib/node_modules/@google/gemini-cli/bundle/gemini.js";

    fn index_of(profiles: &[HostProfile], name: &str) -> u32 {
        u32::try_from(profiles.iter().position(|p| p.name == name).unwrap()).unwrap()
    }

    fn custom(name: &str, exe: &[&str], scripts: &[&str]) -> HostProfile {
        profile(name, "", strings(exe), strings(scripts))
    }

    fn key_paths(resolved: &Resolved) -> Vec<(&str, u32)> {
        resolved
            .paths
            .iter()
            .map(|(key, id, path)| {
                let len = key.path.iter().position(|&b| b == 0).unwrap();
                assert_eq!(&key.path[..len], path.as_os_str().as_bytes());
                (path.to_str().unwrap(), *id)
            })
            .collect()
    }

    #[test]
    fn user_dev_to_kernel_encodes_major_shifted_by_20() {
        assert_eq!(user_dev_to_kernel(libc::makedev(254, 0)), 0x0fe0_0000);
        assert_eq!(user_dev_to_kernel(0xfe00), 0x0fe0_0000);
        assert_eq!(user_dev_to_kernel(libc::makedev(8, 1)), (8 << 20) | 1);
        // Large minors use the high bits of dev_t in userspace.
        assert_eq!(
            user_dev_to_kernel(libc::makedev(259, 70_000)),
            (259 << 20) | 0x1_1170
        );
    }

    #[test]
    fn exe_glob_match_becomes_exe_key_with_kernel_dev() {
        let fs = FakeFs::new().file(CLAUDE_EXE, (254, 0), 4242);
        let profiles = builtin_profiles();
        let resolved = resolve(&profiles, &fs);
        assert_eq!(
            resolved.exes,
            vec![(
                ExeKey {
                    dev: 0x0fe0_0000,
                    _pad: 0,
                    ino: 4242
                },
                index_of(&profiles, "claude-code"),
                PathBuf::from(CLAUDE_EXE)
            )]
        );
        assert!(resolved.warnings.is_empty(), "{:?}", resolved.warnings);
    }

    #[test]
    fn exe_reached_through_symlink_is_keyed_by_its_target() {
        // The native installer: ~/.local/bin/claude -> ../share/claude/versions/X.
        let fs = FakeFs::new()
            .home("/home/ada")
            .file(
                "/home/ada/.local/share/claude/versions/2.1.197",
                (254, 1),
                7,
            )
            .link(
                "/home/ada/.local/bin/claude",
                "../share/claude/versions/2.1.197",
            );
        let profiles = builtin_profiles();
        let resolved = resolve(&profiles, &fs);
        assert_eq!(resolved.exes.len(), 1);
        assert_eq!(resolved.exes[0].0.ino, 7);
        assert_eq!(
            resolved.exes[0].2,
            PathBuf::from("/home/ada/.local/share/claude/versions/2.1.197")
        );
    }

    #[test]
    fn script_symlink_and_canonical_path_are_both_keyed() {
        let fs = FakeFs::new().file(GEMINI_JS, (254, 0), 10).link(
            "/usr/bin/gemini",
            "../lib/node_modules/@google/gemini-cli/bundle/gemini.js",
        );
        let profiles = builtin_profiles();
        let gemini = index_of(&profiles, "gemini-cli");
        let resolved = resolve(&profiles, &fs);
        let mut got = key_paths(&resolved);
        got.sort_unstable();
        assert_eq!(got, vec![("/usr/bin/gemini", gemini), (GEMINI_JS, gemini)]);
        assert!(resolved.exes.is_empty());
        assert!(resolved.warnings.is_empty(), "{:?}", resolved.warnings);
    }

    #[test]
    fn tilde_expands_to_every_home() {
        let fs = FakeFs::new()
            .home("/root")
            .home("/home/ada")
            .home("/home/bob")
            .file("/root/.local/share/claude/versions/2.1.197", (254, 0), 1)
            .file(
                "/home/ada/.local/share/claude/versions/2.1.190",
                (254, 0),
                2,
            )
            .file(
                "/home/bob/.local/share/claude/versions/2.1.197",
                (254, 0),
                3,
            )
            // Not a home: not searched.
            .file("/srv/x/.local/share/claude/versions/2.1.197", (254, 0), 4);
        let resolved = resolve(&builtin_profiles(), &fs);
        let mut inos: Vec<u64> = resolved.exes.iter().map(|(k, _, _)| k.ino).collect();
        inos.sort_unstable();
        assert_eq!(inos, vec![1, 2, 3]);
    }

    #[test]
    fn home_with_glob_characters_matches_literally() {
        let fs = FakeFs::new()
            .home("/home/[ab]")
            .file("/home/[ab]/.local/zed.app/libexec/zed-editor", (8, 1), 5)
            .file("/home/a/.local/zed.app/libexec/zed-editor", (8, 1), 6);
        let resolved = resolve(&builtin_profiles(), &fs);
        let inos: Vec<u64> = resolved.exes.iter().map(|(k, _, _)| k.ino).collect();
        assert_eq!(inos, vec![5]);
    }

    #[test]
    fn script_path_too_long_for_the_kernel_is_skipped_with_a_warning() {
        let long_dir = "d".repeat(HOST_PATH_KEY);
        let long_link = format!("/opt/{long_dir}/agent");
        let fs = FakeFs::new()
            .file("/opt/agent/cli.js", (8, 1), 1)
            .link(&long_link, "/opt/agent/cli.js");
        let profiles = vec![custom("agent", &[], &["/opt/*/agent", "/opt/agent/cli.js"])];
        let resolved = resolve(&profiles, &fs);
        assert_eq!(key_paths(&resolved), vec![("/opt/agent/cli.js", 0)]);
        assert_eq!(resolved.warnings.len(), 1, "{:?}", resolved.warnings);
        assert!(resolved.warnings[0].contains("host agent"));
        assert!(resolved.warnings[0].contains("longer than the 255"));
    }

    #[test]
    fn path_key_limit_is_host_path_key_minus_one() {
        let ok = format!("/{}", "a".repeat(HOST_PATH_KEY - 2));
        let too_long = format!("/{}", "a".repeat(HOST_PATH_KEY - 1));
        let key = path_key(Path::new(&ok)).unwrap();
        assert_eq!(key.path[HOST_PATH_KEY - 1], 0);
        assert_eq!(&key.path[..ok.len()], ok.as_bytes());
        assert!(path_key(Path::new(&too_long)).is_none());
    }

    #[test]
    fn duplicates_are_keyed_once() {
        // Two entries matching the same file, a hard link (same inode) under another
        // name, and a link whose canonical path is also matched directly.
        let fs = FakeFs::new()
            .file("/opt/agent/bin/agent", (8, 1), 9)
            .file("/opt/agent/bin/agent-hardlink", (8, 1), 9)
            .file("/opt/agent/cli.js", (8, 1), 10)
            .link("/usr/bin/agent", "/opt/agent/cli.js");
        let profiles = vec![custom(
            "agent",
            &["/opt/agent/bin/*", "/opt/agent/bin/agent"],
            &["/usr/bin/agent", "/opt/agent/cli.js", "/opt/agent/*.js"],
        )];
        let resolved = resolve(&profiles, &fs);
        assert_eq!(resolved.exes.len(), 1);
        assert_eq!(
            key_paths(&resolved),
            vec![("/usr/bin/agent", 0), ("/opt/agent/cli.js", 0)]
        );
        assert!(resolved.warnings.is_empty(), "{:?}", resolved.warnings);
    }

    #[test]
    fn key_claimed_by_two_profiles_goes_to_the_first_with_a_warning() {
        let fs = FakeFs::new().file("/opt/shared/electron", (8, 1), 3);
        let profiles = vec![
            custom("first", &["/opt/shared/electron"], &[]),
            custom("second", &["/opt/shared/*"], &[]),
        ];
        let resolved = resolve(&profiles, &fs);
        assert_eq!(resolved.exes.len(), 1);
        assert_eq!(resolved.exes[0].1, 0);
        assert_eq!(resolved.warnings.len(), 1);
        assert!(resolved.warnings[0].contains("host second"));
        assert!(resolved.warnings[0].contains("host first"));
    }

    #[test]
    fn directories_and_dangling_links_are_not_keyed() {
        let fs = FakeFs::new()
            .home("/home/ada")
            .dir("/home/ada/.local/share/claude/versions/partial")
            .link("/usr/bin/gemini", "/nowhere/gemini.js");
        let resolved = resolve(&builtin_profiles(), &fs);
        assert!(resolved.exes.is_empty());
        assert!(resolved.paths.is_empty());
        assert_eq!(resolved.warnings.len(), 1, "{:?}", resolved.warnings);
        assert!(resolved.warnings[0].contains("/usr/bin/gemini"));
    }

    #[test]
    fn hosts_that_are_not_installed_are_counted_not_warned() {
        let fs = FakeFs::new().home("/root").home("/home/ada");
        let profiles = builtin_profiles();
        let resolved = resolve(&profiles, &fs);
        let entries: usize = profiles
            .iter()
            .map(|p| p.exe.len() + p.helpers.len() + p.scripts.len())
            .sum();
        assert!(resolved.exes.is_empty() && resolved.paths.is_empty());
        assert!(resolved.helpers.is_empty());
        assert!(resolved.warnings.is_empty(), "{:?}", resolved.warnings);
        assert_eq!(resolved.unmatched.len(), entries);
    }

    #[test]
    fn unreadable_directories_are_warned() {
        let pattern = "/tmp/.mount_[Cc]ursor*/usr/share/cursor/cursor";
        let fs = FakeFs::new().glob_error(pattern, "/tmp/.mount_Cursor1: permission denied");
        let resolved = resolve(&builtin_profiles(), &fs);
        assert_eq!(resolved.warnings.len(), 1, "{:?}", resolved.warnings);
        assert!(resolved.warnings[0].starts_with("host cursor: "));
    }

    #[test]
    fn relative_and_invalid_entries_are_warned_and_skipped() {
        let profiles = vec![custom("agent", &["bin/agent", "/opt/[agent"], &["~user/x"])];
        let resolved = resolve(&profiles, &FakeFs::new().home("/root").home("/home/ada"));
        assert_eq!(resolved.warnings.len(), 3, "{:?}", resolved.warnings);
    }

    /// A model of the kernel's copy of "argv names the host script"
    /// (`monitor-ebpf/src/classify.rs` `argv_names_host_script`), step for step:
    /// argv is the captured block (NUL-separated, at most `ARGV_CAP` bytes); each
    /// argument is read with `bpf_probe_read_kernel_str` into a `HOST_PATH_KEY - 1`
    /// byte buffer (so at most 254 bytes and a NUL), arguments 1 to 3 are looked up
    /// in `HOST_PATHS` (the NUL-padded keys `path_key` makes) for `profile`, and the
    /// walk goes on by the bytes that read returned.
    fn kernel_argv_names_host_script(
        profile: u32,
        resolved_paths: &[(PathKey, u32, PathBuf)],
        argv: &[Vec<u8>],
    ) -> bool {
        use monitor_common::{ARGV_CAP, HOST_SCRIPT_ARG_FIRST, HOST_SCRIPT_ARG_LAST};
        let mut block: Vec<u8> = argv
            .iter()
            .flat_map(|a| a.iter().copied().chain([0]))
            .collect();
        block.truncate(ARGV_CAP);
        let len = block.len();
        // The scratch buffer past the capture: zero here (the kernel's holds stale bytes).
        block.resize(ARGV_CAP + HOST_PATH_KEY, 0);
        let mut off = 0;
        for n in 0..=HOST_SCRIPT_ARG_LAST {
            if off >= len {
                return false;
            }
            let src = &block[off..];
            // bpf_probe_read_kernel_str of HOST_PATH_KEY bytes: at most 255 and a NUL;
            // a read that fills the key ends the walk.
            let cap = HOST_PATH_KEY - 1;
            let end = src.iter().position(|&b| b == 0).unwrap_or(cap).min(cap);
            if end >= cap {
                return false;
            }
            let s = &src[..end];
            let mut key = PathKey::default();
            key.path[..s.len()].copy_from_slice(s);
            if n >= HOST_SCRIPT_ARG_FIRST
                && resolved_paths
                    .iter()
                    .any(|(k, id, _)| *k == key && *id == profile)
            {
                return true;
            }
            off += s.len() + 1;
        }
        false
    }

    fn script_entry(path: &str, profile: u32) -> (PathKey, u32, PathBuf) {
        (
            path_key(Path::new(path)).unwrap(),
            profile,
            PathBuf::from(path),
        )
    }

    #[test]
    fn argv_names_host_script_in_userspace_and_in_the_kernel_model_agree() {
        let script = "/usr/lib/node_modules/@google/gemini-cli/bundle/gemini.js";
        let other = "/usr/lib/node_modules/@openai/codex/bin/codex.js";
        let paths = vec![
            script_entry(script, 3),
            script_entry("/usr/bin/gemini", 3),
            script_entry(other, 5),
        ];
        let argv = |args: &[&str]| -> Vec<Vec<u8>> {
            args.iter().map(|a| a.as_bytes().to_vec()).collect()
        };
        let long = format!("--{}", "x".repeat(300));
        let cases: &[(&str, Vec<Vec<u8>>, bool)] = &[
            ("node SCRIPT", argv(&["node", script]), true),
            (
                "node --flag SCRIPT",
                argv(&["node", "--max-old-space-size=8192", script, "mcp"]),
                true,
            ),
            (
                "node --a --b SCRIPT",
                argv(&["node", "--a", "--b", script]),
                true,
            ),
            (
                "the link path",
                argv(&["/usr/bin/node", "/usr/bin/gemini"]),
                true,
            ),
            ("an empty argument first", argv(&["node", "", script]), true),
            (
                "one long argument first (it ends the walk)",
                argv(&["node", &long, script]),
                false,
            ),
            (
                "the script at argv[4]",
                argv(&["node", "--a", "--b", "--c", script]),
                false,
            ),
            ("the script as argv[0] only", argv(&[script, "x"]), false),
            (
                "a relative path",
                argv(&["node", "bundle/gemini.js"]),
                false,
            ),
            (
                "a prefix of the script",
                argv(&["node", &script[..script.len() - 3]]),
                false,
            ),
            (
                "the script as a prefix",
                argv(&["node", &format!("{script}x")]),
                false,
            ),
            ("another host's script", argv(&["node", other]), false),
            ("a server", argv(&["node", "/srv/server.js"]), false),
            ("argv[0] only", argv(&["node"]), false),
            ("no argv", Vec::new(), false),
        ];
        for (what, args, expected) in cases {
            assert_eq!(
                is_host_script(3, &paths, args),
                *expected,
                "userspace: {what}"
            );
            assert_eq!(
                kernel_argv_names_host_script(3, &paths, args),
                *expected,
                "kernel model: {what}"
            );
            assert_eq!(
                script_profile(&paths, args) == Some(3),
                *expected,
                "running process: {what}"
            );
        }
        assert_eq!(script_profile(&paths, &argv(&["node", other])), Some(5));
    }

    /// Where the kernel's bounded reads make its copy differ from the rule, each on
    /// a path no installed host has: it misses a script of 255 bytes, or one after
    /// two arguments over 254 bytes (so the exec is checked as a launch), and it
    /// takes an argument whose first 254 bytes are a 254-byte script for the script.
    #[test]
    fn argv_names_host_script_kernel_model_limits() {
        let argv = |args: &[&str]| -> Vec<Vec<u8>> {
            args.iter().map(|a| a.as_bytes().to_vec()).collect()
        };
        // A 255-byte script fills the kernel's key: never a relaunch, on either side.
        let long255 = format!("/{}", "s".repeat(254));
        let paths = vec![script_entry(&long255, 1)];
        let relaunch = argv(&["node", &long255]);
        assert!(!is_host_script(1, &paths, &relaunch));
        assert!(!kernel_argv_names_host_script(1, &paths, &relaunch));
        // The longest script that counts: 254 bytes.
        let long254 = format!("/{}", "s".repeat(253));
        let paths = vec![script_entry(&long254, 1)];
        let relaunch = argv(&["node", &long254]);
        assert!(is_host_script(1, &paths, &relaunch));
        assert!(kernel_argv_names_host_script(1, &paths, &relaunch));
        // An argument that begins with the 254-byte script is another string.
        let longer = argv(&["node", &format!("{long254}.js")]);
        assert!(!is_host_script(1, &paths, &longer));
        assert!(!kernel_argv_names_host_script(1, &paths, &longer));

        // A long argument ends the walk: a script after it does not count, and one
        // whose path is the long argument's tail (where a next read would start) does
        // not either.
        let script = "/opt/host/cli.js";
        let paths = vec![script_entry(script, 1)];
        let long = format!("--{}", "x".repeat(300));
        let after_two_long = argv(&["node", &long, &long, script]);
        assert!(!is_host_script(1, &paths, &after_two_long));
        assert!(!kernel_argv_names_host_script(1, &paths, &after_two_long));
        for pad in [254, 255, 256] {
            let tail = argv(&["node", &format!("{}{script}", "d".repeat(pad))]);
            assert!(!is_host_script(1, &paths, &tail), "pad {pad}");
            assert!(
                !kernel_argv_names_host_script(1, &paths, &tail),
                "pad {pad}"
            );
        }
    }

    #[test]
    fn is_host_script_matches_the_relaunch_argv() {
        let fs = FakeFs::new().file(GEMINI_JS, (254, 0), 10).link(
            "/usr/bin/gemini",
            "../lib/node_modules/@google/gemini-cli/bundle/gemini.js",
        );
        let profiles = builtin_profiles();
        let gemini = index_of(&profiles, "gemini-cli");
        let codex = index_of(&profiles, "codex");
        let resolved = resolve(&profiles, &fs);
        let argv = |args: &[&str]| -> Vec<Vec<u8>> {
            args.iter().map(|a| a.as_bytes().to_vec()).collect()
        };

        let relaunch = argv(&[
            "node",
            "--max-old-space-size=8192",
            GEMINI_JS,
            "mcp",
            "list",
        ]);
        assert!(is_host_script(gemini, &resolved.paths, &relaunch));
        assert!(resolved.is_host_script(gemini, &relaunch));
        assert!(resolved.is_host_script(gemini, &argv(&["/usr/bin/node", "/usr/bin/gemini"])));
        // Another host's scripts, argv[0] only, a server script, a relative path.
        assert!(!resolved.is_host_script(codex, &relaunch));
        assert!(!resolved.is_host_script(gemini, &argv(&[GEMINI_JS, "x"])));
        assert!(!resolved.is_host_script(gemini, &argv(&["node", "/srv/server.js"])));
        assert!(!resolved.is_host_script(gemini, &argv(&["node", "bundle/gemini.js"])));
        assert!(!resolved.is_host_script(gemini, &[]));
    }

    #[test]
    fn builtin_profiles_are_well_formed() {
        let profiles = builtin_profiles();
        let names: BTreeSet<&str> = profiles.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names.len(), profiles.len(), "duplicate names");
        for expected in [
            "claude-code",
            "claude-desktop",
            "cursor",
            "vscode",
            "windsurf",
            "zed",
            "gemini-cli",
            "codex",
            "goose",
            "lm-studio",
            "continue",
        ] {
            assert!(names.contains(expected), "{expected}");
        }
        for p in &profiles {
            assert!(!p.exe.is_empty() || !p.scripts.is_empty(), "{}", p.name);
            for entry in p.exe.iter().chain(&p.scripts).chain(&p.helpers) {
                assert!(entry.starts_with('/') || entry.starts_with("~/"), "{entry}");
                Pattern::new(entry).unwrap();
            }
        }
    }

    #[test]
    fn existing_builtin_indices_are_stable_and_new_hosts_are_appended() {
        // The index is the profile id the kernel records: never reorder.
        let names: Vec<String> = builtin_profiles().into_iter().map(|p| p.name).collect();
        assert_eq!(
            names,
            [
                "claude-code",
                "claude-desktop",
                "cursor",
                "vscode",
                "vscodium",
                "windsurf",
                "zed",
                "gemini-cli",
                "codex",
                "goose",
                "lm-studio",
                "continue",
            ]
        );
    }

    #[test]
    fn builtin_profiles_say_where_their_configs_are() {
        let profiles = builtin_profiles();
        for p in &profiles {
            assert!(!p.configs.is_empty(), "{} has no config location", p.name);
            for location in &p.configs {
                location
                    .check()
                    .unwrap_or_else(|e| panic!("{}: {e}", p.name));
            }
        }
        let probing: Vec<&str> = profiles
            .iter()
            .filter(|p| p.env_probe)
            .map(|p| p.name.as_str())
            .collect();
        assert_eq!(
            probing,
            ["claude-desktop", "cursor", "vscode", "vscodium", "windsurf"]
        );
        // Cline and Roo Code run inside each editor of the VS Code family.
        for editor in ["cursor", "vscode", "vscodium", "windsurf"] {
            let p = profiles.iter().find(|p| p.name == editor).unwrap();
            for schema in [Schema::Cline, Schema::RooCode, Schema::Continue] {
                assert!(
                    p.configs.iter().any(|c| c.schema == schema),
                    "{editor} lacks {schema}"
                );
            }
        }
        // Electron apps have helpers next to their binary; Zed and the CLIs none.
        let vscode = profiles.iter().find(|p| p.name == "vscode").unwrap();
        assert!(vscode
            .helpers
            .contains(&"/usr/share/code/chrome-sandbox".to_owned()));
        for name in ["zed", "claude-code", "gemini-cli", "codex", "continue"] {
            let p = profiles.iter().find(|p| p.name == name).unwrap();
            assert!(p.helpers.is_empty(), "{name}");
        }
    }

    #[test]
    fn helpers_resolve_like_exes_into_their_own_list() {
        let fs = FakeFs::new()
            .file("/usr/share/code/code", (8, 1), 20)
            .file("/usr/share/code/chrome-sandbox", (8, 1), 21)
            .file("/usr/share/code/chrome_crashpad_handler", (8, 1), 22);
        let profiles = builtin_profiles();
        let vscode = index_of(&profiles, "vscode");
        let resolved = resolve(&profiles, &fs);
        assert!(resolved.warnings.is_empty(), "{:?}", resolved.warnings);
        let exes: Vec<(u64, u32)> = resolved
            .exes
            .iter()
            .map(|(k, id, _)| (k.ino, *id))
            .collect();
        assert_eq!(exes, [(20, vscode)]);
        let helpers: Vec<(u64, u32, &str)> = resolved
            .helpers
            .iter()
            .map(|(k, id, p)| {
                assert_eq!(k.dev, (8 << 20) | 1);
                (k.ino, *id, p.to_str().unwrap())
            })
            .collect();
        assert_eq!(
            helpers,
            [
                (21, vscode, "/usr/share/code/chrome-sandbox"),
                (22, vscode, "/usr/share/code/chrome_crashpad_handler"),
            ]
        );
    }

    #[test]
    fn helper_claimed_by_two_profiles_goes_to_the_first_with_a_warning() {
        let fs = FakeFs::new()
            .file("/opt/shared/chrome-sandbox", (8, 1), 3)
            .link("/opt/b/chrome-sandbox", "/opt/shared/chrome-sandbox");
        let mut first = custom("first", &["/opt/a/app"], &[]);
        first.helpers = strings(&["/opt/shared/chrome-sandbox", "/opt/shared/*"]);
        let mut second = custom("second", &["/opt/b/app"], &[]);
        second.helpers = strings(&["/opt/b/chrome-sandbox"]);
        let resolved = resolve(&[first, second], &fs);
        assert_eq!(resolved.helpers.len(), 1);
        assert_eq!(resolved.helpers[0].1, 0);
        assert!(resolved.exes.is_empty());
        assert_eq!(resolved.warnings.len(), 1, "{:?}", resolved.warnings);
        assert!(resolved.warnings[0].starts_with("host second: "));
        assert!(resolved.warnings[0].contains("already a helper of host first"));
    }

    #[test]
    fn profiles_without_the_new_fields_still_parse() {
        let old: HostProfile =
            toml::from_str("name = \"agent\"\nexe = [\"/opt/agent\"]\n").unwrap();
        assert!(old.helpers.is_empty() && old.configs.is_empty() && !old.env_probe);
        let new: HostProfile = toml::from_str(
            "name = \"agent\"\nexe = [\"/opt/agent/agent\"]\n\
             helpers = [\"/opt/agent/chrome-sandbox\"]\nenv_probe = true\n\
             configs = [{ path = \"~/.agent/mcp.json\", level = \"user\", schema = \"cursor\" }]\n",
        )
        .unwrap();
        assert_eq!(new.helpers, ["/opt/agent/chrome-sandbox"]);
        assert!(new.env_probe);
        assert_eq!(
            new.configs,
            [ConfigLocation::new(
                "~/.agent/mcp.json",
                Level::User,
                Schema::Cursor
            )]
        );
        assert!(toml::from_str::<HostProfile>("name = \"a\"\nconfig = []\n").is_err());
    }

    #[test]
    fn passwd_homes_keeps_regular_users_only() {
        let passwd = "root:x:0:0:root:/root:/bin/bash\n\
                      daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n\
                      nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n\
                      ada:x:1000:1000:Ada,,,:/home/ada:/bin/bash\n\
                      svc:x:1001:1001::/srv/svc:/bin/sh\n\
                      odd:x:1002:1002::/:/bin/sh\n\
                      broken line\n";
        assert_eq!(
            passwd_homes(passwd),
            vec![PathBuf::from("/home/ada"), PathBuf::from("/srv/svc")]
        );
    }

    #[test]
    fn real_fs_resolves_a_script_and_its_link() {
        let dir = std::env::temp_dir().join(format!("mcpwatch-hosts-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(dir.join("lib")).unwrap();
        fs::write(dir.join("lib/entry.js"), "#!/usr/bin/env node\n").unwrap();
        std::os::unix::fs::symlink("lib/entry.js", dir.join("agent")).unwrap();
        let dir_str = dir.to_str().unwrap();
        let profiles = vec![custom(
            "agent",
            &[&format!("{dir_str}/lib/*.js")],
            &[&format!("{dir_str}/agent")],
        )];
        let resolved = resolve(&profiles, &RealFs);
        let meta = fs::metadata(dir.join("lib/entry.js")).unwrap();
        assert_eq!(resolved.exes.len(), 1);
        assert_eq!(resolved.exes[0].0.ino, meta.ino());
        assert_eq!(resolved.exes[0].0.dev, user_dev_to_kernel(meta.dev()));
        let canonical = fs::canonicalize(dir.join("lib/entry.js")).unwrap();
        let got: Vec<&Path> = resolved.paths.iter().map(|(_, _, p)| p.as_path()).collect();
        assert_eq!(got, vec![dir.join("agent").as_path(), canonical.as_path()]);
        fs::remove_dir_all(&dir).unwrap();
    }
}
