//! Guards of the bench: a temporary directory, a child process and the
//! `bpf_stats_enabled` sysctl, each undone on drop.

use std::fs;
use std::path::PathBuf;
use std::process::Child;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use super::BPF_STATS;
use crate::util::say;

/// A temporary directory removed on drop.
pub(super) struct TempDir(pub(super) PathBuf);

impl TempDir {
    pub(super) fn new() -> Result<TempDir> {
        let p = std::env::temp_dir().join(format!("mcpwatch-bench.{}", std::process::id()));
        let _ = fs::remove_dir_all(&p);
        fs::create_dir(&p).with_context(|| format!("cannot create {}", p.display()))?;
        Ok(TempDir(p))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// A child process killed (SIGTERM, then SIGKILL) on drop.
pub(super) struct Proc {
    pub(super) what: &'static str,
    pub(super) child: Child,
}

impl Proc {
    pub(super) fn pid(&self) -> i32 {
        i32::try_from(self.child.id()).expect("pid fits in i32")
    }

    /// SIGTERM, wait up to `grace`, then SIGKILL. Returns whether it exited by itself.
    pub(super) fn stop(&mut self, grace: Duration) -> bool {
        if matches!(self.child.try_wait(), Ok(Some(_))) {
            return true;
        }
        // SAFETY: kill(2) on our own child's pid, which we have not reaped yet.
        unsafe { libc::kill(self.pid(), libc::SIGTERM) };
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        say!(
            "bench: {} (pid {}) ignored SIGTERM for {grace:?}: SIGKILL",
            self.what,
            self.pid()
        );
        let _ = self.child.kill();
        let _ = self.child.wait();
        false
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.stop(Duration::from_secs(5));
    }
}

/// Turns on `kernel.bpf_stats_enabled` and restores the old value on drop.
pub(super) struct BpfStats(Option<String>);

impl BpfStats {
    pub(super) fn enable() -> BpfStats {
        let old = fs::read_to_string(BPF_STATS)
            .ok()
            .map(|s| s.trim().to_owned());
        match fs::write(BPF_STATS, "1") {
            Ok(()) => say!(
                "bench: sysctl kernel.bpf_stats_enabled=1 (was {})",
                old.as_deref().unwrap_or("?")
            ),
            Err(e) => {
                say!("bench: cannot enable kernel.bpf_stats_enabled ({e}): no per-program stats");
            }
        }
        BpfStats(old)
    }
}

impl Drop for BpfStats {
    fn drop(&mut self) {
        if let Some(old) = &self.0 {
            if fs::write(BPF_STATS, old).is_ok() {
                say!("bench: sysctl kernel.bpf_stats_enabled={old} (restored)");
            }
        }
    }
}
