//! Helpers for the root integration tests: a private D-Bus, a real `mcpwatchd` on a
//! temporary state directory, and the log it writes. RAII guards clean up even when
//! a test panics. Tests panic with context rather than returning errors.
use std::{
    io::{BufRead as _, BufReader},
    os::unix::process::ExitStatusExt as _,
    path::{Path, PathBuf},
    process::{Child, Command, ExitStatus, Output, Stdio},
    time::{Duration, Instant},
};

use serde_json::Value;

/// Where `mcpwatchd`, `mcpwatch`, `storm` and `treegen` are: `MCPWATCH_BIN_DIR` (set
/// by `cargo xtask test`), else `target/debug` next to this crate.
pub fn bin_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("MCPWATCH_BIN_DIR") {
        return PathBuf::from(d);
    }
    let target = std::env::var_os("CARGO_TARGET_DIR").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"),
        PathBuf::from,
    );
    target.join("debug")
}

pub fn bin(name: &str) -> PathBuf {
    let p = bin_dir().join(name);
    assert!(
        p.exists(),
        "{} not built (run `cargo xtask test`, which builds it first)",
        p.display()
    );
    p
}

/// Root tests need root; say so instead of failing obscurely. Returns false (and
/// prints why) when the test must be skipped. Under CI a skip is a failure.
pub fn require_root() -> bool {
    if nix::unistd::geteuid().is_root() {
        return true;
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "root integration tests must run as root in CI"
    );
    eprintln!("SKIPPED: needs root (loads eBPF programs)");
    false
}

/// A private bus daemon, like the system bus but ours.
pub struct Bus {
    child: Child,
    pub address: String,
    _dir: tempfile::TempDir,
}

impl Bus {
    pub fn start() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let sock = dir.path().join("bus.sock");
        let mut child = Command::new("dbus-daemon")
            .arg("--config-file=/usr/share/dbus-1/session.conf")
            .arg(format!("--address=unix:path={}", sock.display()))
            .args(["--nofork", "--print-address=1"])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("starting dbus-daemon (is the dbus package installed? `cargo xtask setup`)");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("reading the bus address");
        let address = line.trim().to_string();
        assert!(
            address.starts_with("unix:"),
            "dbus-daemon printed {address:?}"
        );
        Self {
            child,
            address,
            _dir: dir,
        }
    }
}

impl Drop for Bus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A running `mcpwatchd` with its own state directory and config.
pub struct Daemon {
    child: Option<Child>,
    pub bus: Bus,
    pub dir: tempfile::TempDir,
    pub config: PathBuf,
    pub log: PathBuf,
    pub state: PathBuf,
    /// Managed policy directory of this daemon (empty unless a test writes to it).
    pub policy_dir: PathBuf,
    /// bpffs pin directory of this daemon (removed, with its link keeper, on drop).
    pub pin_dir: PathBuf,
    stderr: PathBuf,
}

impl Daemon {
    /// Start with `extra` appended to a minimal config (state in a temp dir).
    pub fn start(extra: &str) -> Self {
        let bus = Bus::start();
        let dir = tempfile::tempdir().expect("tempdir");
        let state = dir.path().join("state");
        let policy_dir = dir.path().join("policy.d");
        std::fs::create_dir_all(&policy_dir).expect("policy dir");
        let pin_dir = PathBuf::from(format!(
            "/sys/fs/bpf/mcpwatch-test-{}-{}",
            std::process::id(),
            // bpffs refuses names containing '.'.
            dir.path()
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or("x")
                .replace('.', "_")
        ));
        let config = dir.path().join("mcpwatch.toml");
        std::fs::write(
            &config,
            format!(
                "state_dir = {:?}\npin_dir = {:?}\npolicy_dir = {:?}\n{extra}\n",
                state.display().to_string(),
                pin_dir.display().to_string(),
                policy_dir.display().to_string()
            ),
        )
        .expect("writing config");
        let log = state.join("events.jsonl");
        let stderr = dir.path().join("mcpwatchd.stderr");
        let mut d = Self {
            child: None,
            bus,
            dir,
            config,
            log,
            state,
            policy_dir,
            pin_dir,
            stderr,
        };
        d.spawn();
        d
    }

    /// Start the daemon again on the same config, state and pins (after `stop` or
    /// `kill9`).
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "restart of a running daemon");
        self.spawn();
    }

    /// SIGKILL the daemon: no clean-up runs (pins and the link keeper stay).
    pub fn kill9(&mut self) {
        let mut child = self.child.take().expect("running");
        let _ = child.kill();
        let _ = child.wait();
    }

    fn spawn(&mut self) {
        let err = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.stderr)
            .expect("stderr file");
        let child = Command::new(bin("mcpwatchd"))
            .arg("--config")
            .arg(&self.config)
            .env("DBUS_SYSTEM_BUS_ADDRESS", &self.bus.address)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(err)
            .spawn()
            .expect("starting mcpwatchd");
        self.child = Some(child);
        #[expect(
            clippy::duration_suboptimal_units,
            reason = "Duration::from_mins needs Rust 1.91; the workspace rust-version is 1.87"
        )]
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!(
                    "mcpwatchd exited early with {status}:\n{}",
                    self.stderr_text()
                );
            }
            let out = self.cli(&["status"]);
            // 3: up, but events were lost (e.g. while a killed daemon was down).
            if matches!(out.status.code(), Some(0 | 3)) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "mcpwatchd not ready after 60 s:\n{}",
                self.stderr_text()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    pub fn stderr_text(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// A `mcpwatch` command on this daemon's bus.
    pub fn cli_cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(bin("mcpwatch"));
        c.args(args)
            .env("DBUS_SYSTEM_BUS_ADDRESS", &self.bus.address);
        c
    }

    pub fn cli(&self, args: &[&str]) -> Output {
        self.cli_cmd(args).output().expect("running mcpwatch")
    }

    /// `mcpwatch status --json`, parsed.
    pub fn status(&self) -> Value {
        let out = self.cli(&["status", "--json"]);
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "status --json: {e}: {}\n{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            )
        })
    }

    /// Every event in the log so far.
    pub fn events(&self) -> Vec<Value> {
        read_events(&self.log)
    }

    /// Wait until `pred` holds over the events, or panic with what was seen.
    pub fn wait_events(
        &self,
        what: &str,
        timeout: Duration,
        pred: impl Fn(&[Value]) -> bool,
    ) -> Vec<Value> {
        let deadline = Instant::now() + timeout;
        loop {
            let ev = self.events();
            if pred(&ev) {
                return ev;
            }
            if Instant::now() > deadline {
                let tail: Vec<String> = ev.iter().rev().take(30).map(Value::to_string).collect();
                panic!(
                    "timed out waiting for {what}; last events:\n{}\nstderr:\n{}",
                    tail.join("\n"),
                    self.stderr_text()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// SIGTERM and wait; returns the exit status.
    pub fn stop(&mut self) -> ExitStatus {
        let mut child = self.child.take().expect("running");
        let pid = nix::unistd::Pid::from_raw(i32::try_from(child.id()).expect("pid"));
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(st) = child.try_wait().expect("wait") {
                return st;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let st = child.wait().expect("wait");
                panic!(
                    "mcpwatchd did not stop on SIGTERM within 20 s ({st}):\n{}",
                    self.stderr_text()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        // Enforcement outlives the daemon by design: stop this test's link keeper
        // and remove its pins, or its programs would stay attached.
        if let Ok(text) = std::fs::read_to_string(self.state.join("keeper.json")) {
            if let Ok(v) = serde_json::from_str::<Value>(&text) {
                if let Some(pid) = v["pid"].as_i64().and_then(|p| i32::try_from(p).ok()) {
                    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
                    if cmdline.windows(12).any(|w| w == b"--hold-links") {
                        let _ = nix::sys::signal::kill(
                            nix::unistd::Pid::from_raw(pid),
                            nix::sys::signal::Signal::SIGKILL,
                        );
                    }
                }
            }
        }
        let _ = std::fs::remove_dir_all(&self.pin_dir);
    }
}

pub fn read_events(path: &Path) -> Vec<Value> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return Vec::new();
    };
    text.lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// argv of an event as strings (non-UTF-8 args come back as their base64 object).
pub fn argv(e: &Value) -> Vec<Value> {
    e["argv"].as_array().cloned().unwrap_or_default()
}

/// Whether `e` is a `kind` event whose `argv[index]` is `arg`.
pub fn is_event(e: &Value, kind: &str, index: usize, arg: &str) -> bool {
    e["kind"] == kind && argv(e).get(index).and_then(Value::as_str) == Some(arg)
}

/// Events whose argv contains `marker`.
pub fn with_marker<'a>(events: &'a [Value], marker: &str) -> Vec<&'a Value> {
    events
        .iter()
        .filter(|e| argv(e).iter().any(|a| a.as_str() == Some(marker)))
        .collect()
}

/// Run a command and describe how it ended.
pub fn exit_code(st: ExitStatus) -> i32 {
    st.code().unwrap_or_else(|| 128 + st.signal().unwrap_or(0))
}
