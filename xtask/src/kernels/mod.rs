//! `cargo xtask kernels [FILTER]`: the host build of `mcpwatchd` and `mcpwatch` on
//! a matrix of Debian kernels, each booted in a QEMU (TCG) guest (`guest.rs`).
//!
//! Kernels come from Debian's own packages (`linux-image-amd64` of each suite,
//! resolved to its concrete `linux-image-<release>` dependency), fetched with a
//! private apt configuration (its own sources list, lists and cache; the machine's
//! apt sources are not touched) and cached as `vmlinuz-<release>` under
//! `$CARGO_HOME/mcpwatch-guest/<suite>/`, so a warm run downloads nothing.
//!
//! On a supported kernel the guest checks that every program loads (the daemon
//! runs) within the verifier budget, that a launch carries its exact argv, the three
//! modes (enforce kills an unapproved launch and one with `LD_PRELOAD` added before
//! their first instruction and lets the approved one run; ask holds a launch
//! stopped until `mcpwatch allow`), and EPERM from the BPF LSM for a managed deny.
//! On a kernel that is too old the daemon must refuse to start: exit status 2, one
//! line on stderr naming what is missing, nothing left pinned.
use std::{
    fmt::Write as _,
    fs,
    path::{Path, PathBuf},
    process::Command,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Mutex,
    },
    time::Instant,
};

use anyhow::{bail, Context as _, Result};
use serde_json::Value;

use crate::guest::{self, tail, Bins, Report};
use crate::util::{cargo_home, output, say};

/// Every program must verify within this many instructions (DESIGN principle 11:
/// 20 % of the verifier's 1M limit), on every kernel of the matrix.
pub const VERIFIED_INSNS_BUDGET: u64 = 200_000;

/// What the daemon must do on a suite's kernel.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Expect {
    /// Load everything and enforce.
    Runs,
    /// Refuse to start: exit 2, one line naming the missing feature.
    Refuses,
}

struct Suite {
    name: &'static str,
    /// Also use `<name>-security` (newer kernels of a stable release).
    security: bool,
    expect: Expect,
}

/// The matrix, oldest first.
const SUITES: [Suite; 4] = [
    Suite {
        name: "bullseye",
        security: true,
        expect: Expect::Refuses,
    },
    Suite {
        name: "bookworm",
        security: true,
        expect: Expect::Runs,
    },
    Suite {
        name: "trixie",
        security: true,
        expect: Expect::Runs,
    },
    Suite {
        name: "sid",
        security: false,
        expect: Expect::Runs,
    },
];

/// Kernel options the guest relies on being built in (there are no modules in
/// the initramfs). Reported when the guest fails, to say why.
const NEEDED_CONFIG: [&str; 8] = [
    "CONFIG_BPF_SYSCALL",
    "CONFIG_DEBUG_INFO_BTF",
    "CONFIG_BPF_LSM",
    "CONFIG_FTRACE",
    "CONFIG_DEVTMPFS",
    "CONFIG_BLK_DEV_INITRD",
    "CONFIG_SERIAL_8250_CONSOLE",
    "CONFIG_UNIX",
];

fn cache_root() -> PathBuf {
    cargo_home().join("mcpwatch-guest")
}

/// A kernel of the matrix, before or after download.
struct Planned {
    suite: &'static Suite,
    release: String,
    /// The packages to download: the one with the kernel image (`linux-image-…`,
    /// or `linux-binary-…` where Debian split the image from its modules), then
    /// `linux-base-…` of a split kernel (its config).
    packages: Vec<String>,
    size: Option<u64>,
    vmlinuz: Option<PathBuf>,
    /// The private apt configuration that resolved it (reused to download).
    apt: Option<PrivateApt>,
}

/// One kernel's result: `kernel <release>: ok (…)` or `… FAILED: …`.
pub struct Outcome {
    pub release: String,
    pub result: std::result::Result<String, String>,
}

impl Outcome {
    pub fn line(&self) -> String {
        match &self.result {
            Ok(facts) => format!("kernel {}: ok ({facts})", self.release),
            Err(why) => format!("kernel {}: FAILED: {why}", self.release),
        }
    }
}

/// Runs the matrix (the kernels matching `filter`: a suite name, or a prefix of
/// the kernel release), `jobs` guests at a time; prints one line per kernel on
/// stdout as it finishes and returns the outcomes in matrix order.
pub fn run_matrix(bins: &Bins, filter: Option<&str>, jobs: usize) -> Result<Vec<Outcome>> {
    let start = Instant::now();
    guest::ensure_packages()?;
    // The single-kernel cache of earlier versions (`mcpwatch-guest/root/boot/…`).
    let _ = fs::remove_dir_all(cache_root().join("root"));
    let planned = plan(filter)?;
    say!(
        "kernels: {} to run: {}",
        planned.len(),
        planned
            .iter()
            .map(|p| format!("{} ({})", p.release, p.suite.name))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let work = std::env::temp_dir().join(format!("mcpwatch-kernels.{}", std::process::id()));
    let _ = fs::remove_dir_all(&work);
    fs::create_dir_all(&work)?;
    let initrd = work.join("initrd.img");
    guest::build_initramfs(bins, &initrd)?;
    say!(
        "kernels: initramfs {} MB (busybox, mcpwatchd, mcpwatch, dbus-daemon and their libraries)",
        fs::metadata(&initrd)?.len() / 1_000_000
    );

    // Newest kernel first: the newest verifier is the one most likely to take long
    // (a program it rejects runs it to its 1M-instruction limit, minutes under
    // TCG), and starting the longest guest first keeps the other job busy with
    // the rest meanwhile.
    let order: Vec<usize> = (0..planned.len()).rev().collect();
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<Outcome>>> =
        Mutex::new((0..planned.len()).map(|_| None).collect());
    let jobs = jobs.clamp(1, planned.len().max(1));
    std::thread::scope(|s| {
        for _ in 0..jobs {
            s.spawn(|| {
                while let Some(&i) = order.get(next.fetch_add(1, Ordering::SeqCst)) {
                    let p = &planned[i];
                    let outcome = run_one(p, &initrd, &work.join(format!("{i}-{}", p.suite.name)));
                    println!("{}", outcome.line());
                    results.lock().expect("results lock")[i] = Some(outcome);
                }
            });
        }
    });
    let outcomes: Vec<Outcome> = results
        .into_inner()
        .expect("results lock")
        .into_iter()
        .map(|o| o.expect("every kernel ran"))
        .collect();
    let failed = outcomes.iter().filter(|o| o.result.is_err()).count();
    let _ = fs::remove_file(&initrd);
    if failed == 0 {
        let _ = fs::remove_dir_all(&work);
    } else {
        say!(
            "kernels: consoles and reports of the failed guests are in {}",
            work.display()
        );
    }
    say!(
        "kernels: {} ok, {failed} failed, in {:.0} s",
        outcomes.len() - failed,
        start.elapsed().as_secs_f64()
    );
    Ok(outcomes)
}

/// The kernels to run: cached ones as they are; the others resolved through a
/// private apt configuration (cheap: the lists of one suite), downloaded later.
fn plan(filter: Option<&str>) -> Result<Vec<Planned>> {
    let mut out = Vec::new();
    let mut seen = Vec::new();
    // A suite's name selects that suite alone.
    let suite_named = filter.filter(|f| SUITES.iter().any(|s| s.name == *f));
    for suite in &SUITES {
        if suite_named.is_some_and(|f| f != suite.name) {
            continue;
        }
        let planned = if let Some(c) = cached(suite) {
            c
        } else {
            if filter.is_some_and(|f| !f.is_empty() && !could_match(suite, f)) {
                continue;
            }
            resolve(suite)?
        };
        seen.push(format!("{} ({})", planned.release, suite.name));
        let wanted = filter.is_none_or(|f| f == suite.name || release_matches(&planned.release, f));
        if wanted {
            out.push(planned);
        }
    }
    if out.is_empty() {
        bail!(
            "no kernel of the matrix matches {:?}; the matrix: {}",
            filter.unwrap_or(""),
            seen.join(", ")
        );
    }
    Ok(out)
}

/// Whether `release` is the version `f` names: `f` itself, or `f` followed by the
/// next component (`6.1` is 6.1.0-57-amd64, not 6.12.118).
fn release_matches(release: &str, f: &str) -> bool {
    release.strip_prefix(f).is_some_and(|rest| {
        rest.is_empty() || rest.starts_with(['.', '-', '+']) || f.ends_with(['.', '-', '+'])
    })
}

/// Whether a not yet resolved suite could have a release starting with `f`: its
/// major version is known well enough to skip resolving it for an obvious miss.
fn could_match(suite: &Suite, f: &str) -> bool {
    let major = match suite.name {
        "bullseye" => "5.",
        "bookworm" | "trixie" => "6.",
        _ => return true,
    };
    major.starts_with(f) || f.starts_with(major)
}

fn cached(suite: &'static Suite) -> Option<Planned> {
    let dir = cache_root().join(suite.name);
    let (release, vmlinuz) = fs::read_dir(&dir)
        .ok()?
        .filter_map(|e| {
            let p = e.ok()?.path();
            let release = p
                .file_name()?
                .to_str()?
                .strip_prefix("vmlinuz-")?
                .to_owned();
            Some((release, p))
        })
        .max()?;
    Some(Planned {
        suite,
        release,
        packages: Vec::new(),
        size: None,
        vmlinuz: Some(vmlinuz),
        apt: None,
    })
}

/// A private apt configuration for one suite: its own sources list, lists, cache
/// and (empty) dpkg status, in a directory removed on drop.
struct PrivateApt {
    dir: PathBuf,
}

impl PrivateApt {
    fn new(suite: &Suite) -> Result<Self> {
        let dir = cache_root().join(suite.name).join("apt");
        let _ = fs::remove_dir_all(&dir);
        for d in ["lists/partial", "cache/archives/partial", "download"] {
            fs::create_dir_all(dir.join(d))?;
        }
        let (main, security) = debian_uris();
        let mut list = format!("deb {main} {} main\n", suite.name);
        if suite.security {
            let _ = writeln!(list, "deb {security} {}-security main", suite.name);
        }
        fs::write(dir.join("sources.list"), list)?;
        fs::write(dir.join("status"), "")?;
        Ok(Self { dir })
    }

    fn cmd(&self, program: &str) -> Command {
        let mut c = Command::new(program);
        let d = self.dir.display();
        for o in [
            format!("Dir::Etc::SourceList={d}/sources.list"),
            "Dir::Etc::SourceParts=/dev/null".to_owned(),
            format!("Dir::State::Lists={d}/lists"),
            format!("Dir::State::status={d}/status"),
            format!("Dir::Cache={d}/cache"),
            "Acquire::Languages=none".to_owned(),
            // The cache lives under $CARGO_HOME, which apt's `_apt` user may not
            // be able to enter.
            "APT::Sandbox::User=root".to_owned(),
        ] {
            c.arg("-o").arg(o);
        }
        c.env("LC_ALL", "C");
        c
    }
}

impl Drop for PrivateApt {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// The Debian archive and security URIs the machine's own apt sources use
/// (deb822 `*.sources` or one-line `sources.list`), or deb.debian.org's.
fn debian_uris() -> (String, String) {
    let mut main = None;
    let mut security = None;
    let mut texts = Vec::new();
    if let Ok(rd) = fs::read_dir("/etc/apt/sources.list.d") {
        let mut paths: Vec<PathBuf> = rd.filter_map(|e| Some(e.ok()?.path())).collect();
        paths.sort();
        for p in paths {
            if p.extension().is_some_and(|e| e == "sources") {
                texts.push(fs::read_to_string(&p).unwrap_or_default());
            }
        }
    }
    for text in &texts {
        for stanza in text.split("\n\n") {
            let field = |name: &str| {
                stanza
                    .lines()
                    .find_map(|l| l.strip_prefix(name))
                    .map(|v| v.trim().to_owned())
            };
            let (Some(uris), Some(suites)) = (field("URIs:"), field("Suites:")) else {
                continue;
            };
            let Some(uri) = uris.split_whitespace().next().map(str::to_owned) else {
                continue;
            };
            if suites.split_whitespace().any(|s| s.ends_with("-security")) {
                security.get_or_insert(uri);
            } else {
                main.get_or_insert(uri);
            }
        }
    }
    for line in fs::read_to_string("/etc/apt/sources.list")
        .unwrap_or_default()
        .lines()
    {
        let words: Vec<&str> = line
            .split_whitespace()
            .filter(|w| !w.starts_with('['))
            .collect();
        if let ["deb", uri, suite, ..] = words.as_slice() {
            if suite.ends_with("-security") {
                security.get_or_insert_with(|| (*uri).to_owned());
            } else {
                main.get_or_insert_with(|| (*uri).to_owned());
            }
        }
    }
    (
        main.unwrap_or_else(|| "http://deb.debian.org/debian".to_owned()),
        security.unwrap_or_else(|| "http://deb.debian.org/debian-security".to_owned()),
    )
}

/// The kernel package of a suite: `linux-image-amd64`'s concrete dependency (the
/// unsigned `linux-image-<release>`, not `-unsigned`, `-dbg`, cloud or rt), and the
/// package that holds its image (`linux-binary-<release>` on suites that split it).
fn resolve(suite: &'static Suite) -> Result<Planned> {
    let t = Instant::now();
    say!(
        "kernels: {}: resolving linux-image-amd64 (private apt configuration)",
        suite.name
    );
    let apt = PrivateApt::new(suite)?;
    output(apt.cmd("apt-get").args(["update", "-q"]))
        .with_context(|| format!("apt-get update for {}", suite.name))?;
    let deps = output(apt.cmd("apt-cache").args(["depends", "linux-image-amd64"]))?;
    let image = deps
        .lines()
        .filter_map(|l| l.trim().trim_start_matches('|').strip_prefix("Depends: "))
        .map(str::trim)
        .find(|p| is_plain_image(p))
        .map(str::to_owned)
        .with_context(|| {
            format!(
                "{}: linux-image-amd64 depends on no plain linux-image-*-amd64:\n{deps}",
                suite.name
            )
        })?;
    let release = image
        .strip_prefix("linux-image-")
        .expect("checked prefix")
        .to_owned();
    let show = output(apt.cmd("apt-cache").args(["show", &image]))?;
    let depends_on = |name: &str| {
        field(&show, "Depends").is_some_and(|d| {
            d.split([',', '|'])
                .any(|dep| dep.split_whitespace().next() == Some(name))
        })
    };
    // Newer kernels (sid's 7.x) split the image: `linux-image-<release>` is empty
    // and depends on `linux-binary-<release>` (the image) and `linux-base-…`.
    let binary = format!("linux-binary-{release}");
    let base = format!("linux-base-{release}");
    let packages = if depends_on(&binary) {
        let mut p = vec![binary];
        if depends_on(&base) {
            p.push(base);
        }
        p
    } else {
        vec![image]
    };
    let mut size = Some(0);
    for p in &packages {
        let one = field(&output(apt.cmd("apt-cache").args(["show", p]))?, "Size")
            .and_then(|s| s.parse::<u64>().ok());
        size = size.zip(one).map(|(a, b)| a + b);
    }
    say!(
        "kernels: {}: {release} (package {}) in {:.1} s",
        suite.name,
        packages.join(" + "),
        t.elapsed().as_secs_f64()
    );
    Ok(Planned {
        suite,
        release,
        packages,
        size,
        vmlinuz: None,
        apt: Some(apt),
    })
}

fn is_plain_image(p: &str) -> bool {
    p.starts_with("linux-image-")
        && p.ends_with("-amd64")
        && p != "linux-image-amd64"
        && !["-unsigned", "-dbg", "cloud", "-rt-"]
            .iter()
            .any(|bad| p.contains(bad))
}

/// The first value of `name:` in an apt-cache stanza.
fn field<'a>(stanza: &'a str, name: &str) -> Option<&'a str> {
    stanza
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
        .map(str::trim)
}

/// Downloads the packages and keeps `vmlinuz-<release>` (and `config-<release>`)
/// in the suite's cache directory; the rest of the packages is dropped. The image
/// is at `/boot/vmlinuz-<release>` or, in newer packages,
/// `/usr/lib/modules/<release>/vmlinuz` (and the config beside it).
fn download(p: &Planned) -> Result<PathBuf> {
    let t = Instant::now();
    let shown = p.packages.join(" + ");
    say!(
        "kernels: {}: downloading {shown}{}",
        p.suite.name,
        p.size
            .map(|s| format!(" ({} MB)", s / 1_000_000))
            .unwrap_or_default()
    );
    let apt = p.apt.as_ref().context("the kernel was not resolved")?;
    let dl = apt.dir.join("download");
    output(
        apt.cmd("apt-get")
            .current_dir(&dl)
            .args(["download", "-q"])
            .args(&p.packages),
    )
    .with_context(|| format!("apt-get download {shown}"))?;
    let root = apt.dir.join("root");
    for e in fs::read_dir(&dl)? {
        let deb = e?.path();
        if deb.extension().is_some_and(|e| e == "deb") {
            output(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&root))?;
            let _ = fs::remove_file(&deb);
        }
    }
    let r = &p.release;
    let modules = root.join("usr/lib/modules").join(r);
    let find = |candidates: [PathBuf; 2]| candidates.into_iter().find(|c| c.is_file());
    let vmlinuz = find([
        root.join(format!("boot/vmlinuz-{r}")),
        modules.join("vmlinuz"),
    ])
    .with_context(|| {
        format!("{shown} has neither /boot/vmlinuz-{r} nor /usr/lib/modules/{r}/vmlinuz")
    })?;
    let dir = cache_root().join(p.suite.name);
    if let Some(config) = find([
        root.join(format!("boot/config-{r}")),
        modules.join("config"),
    ]) {
        fs::copy(&config, dir.join(format!("config-{r}")))?;
    }
    // The image last, under a temporary name first: its presence means "cached".
    let dest = dir.join(format!("vmlinuz-{r}"));
    let part = dir.join(format!(".vmlinuz-{r}.part"));
    fs::copy(&vmlinuz, &part)?;
    fs::rename(&part, &dest)?;
    let _ = fs::remove_dir_all(&root);
    say!(
        "kernels: {}: {r} cached in {:.0} s ({})",
        p.suite.name,
        t.elapsed().as_secs_f64(),
        dest.display()
    );
    Ok(dest)
}

/// Options of [`NEEDED_CONFIG`] that the kernel's config (when the package had
/// one) does not build in.
fn config_gaps(suite: &Suite, release: &str) -> Vec<&'static str> {
    let Ok(text) = fs::read_to_string(
        cache_root()
            .join(suite.name)
            .join(format!("config-{release}")),
    ) else {
        return Vec::new();
    };
    NEEDED_CONFIG
        .iter()
        .copied()
        .filter(|opt| !text.lines().any(|l| l == format!("{opt}=y")))
        .collect()
}

fn run_one(p: &Planned, initrd: &Path, work: &Path) -> Outcome {
    let label = format!("{} ({})", p.release, p.suite.name);
    let result = (|| -> std::result::Result<String, String> {
        let vmlinuz = match &p.vmlinuz {
            Some(v) => v.clone(),
            None => download(p).map_err(|e| format!("download: {e:#}"))?,
        };
        say!("kernels: {label}: booting under QEMU (TCG, 1 vCPU)");
        let report = guest::boot(&label, &vmlinuz, initrd, work).map_err(|e| format!("{e:#}"))?;
        say!(
            "kernels: {label}: guest finished after {:.0} s",
            report.elapsed.as_secs_f64()
        );
        let verdict = match p.suite.expect {
            Expect::Runs => judge_runs(&report),
            Expect::Refuses => judge_refuses(&report),
        };
        verdict.map_err(|why| {
            let gaps = config_gaps(p.suite, &p.release);
            let mut why = why;
            if !gaps.is_empty() {
                let _ = write!(why, " (kernel config lacks {})", gaps.join(", "));
            }
            eprintln!(
                "--- {label}: console (tail)\n{}\n--- {label}: daemon stderr (tail)\n{}\n---",
                tail(&report.console, 40),
                tail(report.section("daemon_err"), 20)
            );
            why
        })
    })();
    Outcome {
        release: p.release.clone(),
        result,
    }
}

fn daemon_failure(r: &Report) -> String {
    let err = r.section("daemon_err");
    let line = err
        .lines()
        .find(|l| l.contains("error"))
        .or_else(|| err.lines().rev().find(|l| !l.trim().is_empty()))
        .unwrap_or("(no output)");
    // The verifier's verdict, when it refused a program: its last lines say why.
    let verifier = err
        .lines()
        .filter(|l| l.starts_with("BPF program is too large") || l.starts_with("processed "))
        .map(str::trim)
        .collect::<Vec<_>>()
        .join("; ");
    let verifier = if verifier.is_empty() {
        String::new()
    } else {
        format!(" [verifier: {verifier}]")
    };
    match r.get("daemon") {
        "exited" => format!(
            "mcpwatchd did not start (exit status {}): {}{verifier}",
            r.get("daemon_rc"),
            line.trim()
        ),
        "timeout" => format!(
            "mcpwatchd did not say it was running within 300 s: {}",
            line.trim()
        ),
        other => format!("mcpwatchd: unexpected state {other:?}"),
    }
}

/// Where a value the guest saw is: a `KV` line, or a `key=value` line the host
/// shells echoed (the `checks` section).
#[derive(Clone, Copy)]
enum From {
    Kv,
    Checks,
}

/// What each value must be on a kernel the daemon runs on.
const EXPECTED: [(&str, From, &str, &str); 21] = [
    ("monitored launch exit status", From::Checks, "argv_rc", "0"),
    (
        "unapproved launch (enforce) exit status",
        From::Checks,
        "unapproved_rc",
        "137",
    ),
    ("unapproved launch ran", From::Kv, "unapproved_ran", "no"),
    (
        "approved launch with LD_PRELOAD added: exit status",
        From::Checks,
        "preload_rc",
        "137",
    ),
    (
        "approved launch with LD_PRELOAD added ran",
        From::Checks,
        "preload_ran",
        "no",
    ),
    (
        "approved launch exit status",
        From::Checks,
        "approved_rc",
        "0",
    ),
    ("approved launch ran", From::Kv, "approved_ran", "yes"),
    ("held launch state", From::Kv, "ask_state", "T"),
    (
        "held launch state 1 s later",
        From::Kv,
        "ask_state_later",
        "T",
    ),
    (
        "held launch ran before allow",
        From::Kv,
        "ask_ran_early",
        "no",
    ),
    ("`mcpwatch allow` exit status", From::Kv, "allow_rc", "0"),
    ("allowed launch exit status", From::Kv, "ask_rc", "0"),
    ("allowed launch ran", From::Kv, "ask_ran", "yes"),
    (
        "launch to be resumed by its host: state before",
        From::Kv,
        "resume_state",
        "T",
    ),
    (
        "held launch resumed by its host (SIGCHLD ignored) ran",
        From::Kv,
        "resumed_ran",
        "no",
    ),
    (
        "managed deny exit status (EPERM)",
        From::Checks,
        "deny_rc",
        "126",
    ),
    ("managed deny ran", From::Kv, "denied_ran", "no"),
    (
        "unapproved exec by a host's second thread: exit status",
        From::Checks,
        "thread_exec_rc",
        "137",
    ),
    (
        "unapproved exec by a host's second thread ran",
        From::Kv,
        "thread_exec_ran",
        "no",
    ),
    (
        "unapproved launch after the host's leader thread exited: exit status",
        From::Checks,
        "child_rc",
        "137",
    ),
    (
        "unapproved launch after the host's leader thread exited ran",
        From::Kv,
        "leader_exit_ran",
        "no",
    ),
];

/// The checks on a kernel the daemon must run on. `Ok`: the short facts.
fn judge_runs(r: &Report) -> std::result::Result<String, String> {
    if r.get("daemon") != "running" {
        if r.kv.is_empty() {
            return Err(format!(
                "the guest reported nothing (did it boot?) after {:.0} s",
                r.elapsed.as_secs_f64()
            ));
        }
        return Err(daemon_failure(r));
    }
    let mut failed: Vec<String> = Vec::new();
    if !r.complete {
        failed.push("the guest's report is incomplete (it stopped early)".to_owned());
    }
    let mut facts = Vec::new();
    if let (Some(boot), Some(start)) = (
        r.get("daemon_t0").parse::<f64>().ok(),
        r.secs_between("daemon_t0", "daemon_t1"),
    ) {
        facts.push(format!("boot {boot:.0} s, daemon up in {start:.1} s"));
    }

    // Programs: loaded, and within the verifier budget.
    match serde_json::from_str::<Value>(r.section("status")) {
        Err(e) => failed.push(format!(
            "`mcpwatch status --json` (exit {}) is not JSON: {e}: {}",
            r.get("status_rc"),
            tail(r.section("status_err"), 3)
        )),
        Ok(status) => match program_facts(&status) {
            Ok(f) => facts.push(f),
            Err(e) => failed.push(e),
        },
    }

    // Exit statuses, side effects, process states.
    for (what, from, key, want) in EXPECTED {
        let got = match from {
            From::Kv => r.get(key),
            From::Checks => r.check(key),
        };
        if got != want {
            let got = if got.is_empty() { "(nothing)" } else { got };
            failed.push(format!("{what}: {got}, want {want}"));
        }
    }
    if !r.get("lsm").split(',').any(|l| l == "bpf") {
        failed.push(format!("bpf is not an active LSM: {}", r.get("lsm")));
    }
    check_pending(r, &mut failed);
    check_events(r, &mut failed);

    if failed.is_empty() {
        facts.push(format!("guest {:.0} s", r.elapsed.as_secs_f64()));
        Ok(facts.join(", "))
    } else {
        Err(failed.join("; "))
    }
}

/// The held launch was listed by `mcpwatch pending` (the id `allow` used), with
/// its pid and host.
fn check_pending(r: &Report, failed: &mut Vec<String>) {
    if r.get("ask_id").is_empty() {
        failed.push(format!(
            "`mcpwatch pending` listed no launch with pid {}: {}",
            r.get("ask_pid"),
            tail(r.section("pending_txt"), 5)
        ));
        return;
    }
    let pending: Value = serde_json::from_str(r.section("pending")).unwrap_or(Value::Null);
    let listed = pending.as_array().is_some_and(|l| {
        l.iter().any(|p| {
            p["pid"].as_u64().map(|n| n.to_string()).as_deref() == Some(r.get("ask_pid"))
                && p["host"] == "asker"
                && p["id"].as_u64().map(|n| n.to_string()).as_deref() == Some(r.get("ask_id"))
        })
    });
    if !listed {
        failed.push(format!(
            "`mcpwatch pending --json` does not list pid {} of host asker as #{}: {}",
            r.get("ask_pid"),
            r.get("ask_id"),
            r.section("pending")
        ));
    }
}

/// What the audit log (`mcpwatch log --json`) says: the monitored launch with its
/// exact argv, each enforce and ask launch with its verdict, the EPERM deny.
fn check_events(r: &Report, failed: &mut Vec<String>) {
    let events: Vec<Value> = r
        .section("events")
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    if events.is_empty() {
        failed.push(format!(
            "`mcpwatch log --json` gave no events (exit {}): {}",
            r.get("log_rc"),
            tail(r.section("log_err"), 3)
        ));
        return;
    }
    let want: Vec<Value> = ["/ok/busybox", "true", "with space", "", "end"]
        .iter()
        .map(|s| Value::from(*s))
        .collect();
    let launch = events.iter().find(|e| {
        e["kind"] == "launch" && e["host"]["name"] == "watcher" && e["argv"][1] == "true"
    });
    match launch {
        None => {
            failed.push("no launch event of the monitored host (watcher) in the log".to_owned());
        }
        Some(e) if e["argv"].as_array() != Some(&want) => failed.push(format!(
            "the launch's argv is {}, want {}",
            e["argv"],
            Value::from(want.clone())
        )),
        Some(_) => {}
    }
    let launch_of = |host: &str, target: &str, preload: bool| {
        events.iter().find(|e| {
            e["kind"] == "launch"
                && e["host"]["name"] == host
                && e["argv"][2] == target
                && e["env"]["LD_PRELOAD"].is_string() == preload
        })
    };
    for (what, host, target, preload, decision) in [
        (
            "unapproved launch",
            "guest",
            "/tmp/unapproved",
            false,
            "killed",
        ),
        (
            "launch with LD_PRELOAD",
            "guest",
            "/tmp/approved",
            true,
            "killed",
        ),
        (
            "approved launch",
            "guest",
            "/tmp/approved",
            false,
            "allowed",
        ),
        ("ask launch", "asker", "/tmp/asked", false, "held"),
    ] {
        match launch_of(host, target, preload) {
            None => failed.push(format!("no launch event for the {what}")),
            Some(e) if e["verdict"]["decision"] != decision => failed.push(format!(
                "the {what}'s event has verdict {}, want decision {decision}",
                e["verdict"]
            )),
            Some(_) => {}
        }
    }
    let eperm = events.iter().any(|e| {
        e["kind"] == "launch"
            && e["exe"]["path"] == "/deny/busybox"
            && e["verdict"]["decision"] == "denied"
            && e["verdict"]["reason"]
                .as_str()
                .is_some_and(|r| r.contains("EPERM"))
    });
    if !eperm {
        failed.push("no launch event says /deny/busybox was refused with EPERM".to_owned());
    }
}

/// Every program of `status.programs` loaded within [`VERIFIED_INSNS_BUDGET`]:
/// `Ok` with the count, the largest and the load time, `Err` naming the
/// programs above the budget or the missing field.
fn program_facts(status: &Value) -> std::result::Result<String, String> {
    let Some(programs) = status["programs"].as_array().filter(|p| !p.is_empty()) else {
        return Err("`mcpwatch status --json` lists no programs".to_owned());
    };
    let name = |p: &Value| p["name"].as_str().unwrap_or("?").to_owned();
    let unreported: Vec<String> = programs
        .iter()
        .filter(|p| p["verified_insns"].as_u64().is_none())
        .map(name)
        .collect();
    if !unreported.is_empty() {
        return Err(format!(
            "verified_insns not reported by `mcpwatch status --json` for {}",
            unreported.join(", ")
        ));
    }
    let over: Vec<String> = programs
        .iter()
        .filter_map(|p| {
            let n = p["verified_insns"].as_u64()?;
            (n > VERIFIED_INSNS_BUDGET)
                .then(|| format!("program {} verified {n} instructions", name(p)))
        })
        .collect();
    if !over.is_empty() {
        return Err(format!(
            "{} (budget {VERIFIED_INSNS_BUDGET})",
            over.join(", ")
        ));
    }
    let load_ms: f64 = programs.iter().filter_map(|p| p["load_ms"].as_f64()).sum();
    let each: Vec<String> = programs
        .iter()
        .map(|p| {
            let n = name(p);
            format!(
                "{} {}",
                n.strip_prefix("sched_process_").unwrap_or(&n),
                p["verified_insns"]
            )
        })
        .collect();
    Ok(format!(
        "{} programs, verified insns: {}; load {load_ms:.0} ms",
        programs.len(),
        each.join(", ")
    ))
}

/// The checks on a kernel the daemon must refuse: exit status 2, one line on
/// stderr naming the missing feature, nothing left pinned or loaded.
fn judge_refuses(r: &Report) -> std::result::Result<String, String> {
    if r.kv.is_empty() {
        return Err(format!(
            "the guest reported nothing (did it boot?) after {:.0} s",
            r.elapsed.as_secs_f64()
        ));
    }
    let err = r.section("daemon_err");
    let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
    let mut failed = Vec::new();
    match (r.get("daemon"), r.get("daemon_rc")) {
        ("exited", "2") => {}
        ("exited", rc) => failed.push(format!("mcpwatchd exited with status {rc}, want 2")),
        ("running", _) => failed.push("mcpwatchd started; it must refuse this kernel".to_owned()),
        (state, _) => failed.push(format!("mcpwatchd did not exit ({state})")),
    }
    match lines.as_slice() {
        [line] => {
            if !line.starts_with("mcpwatchd: error:") {
                failed.push(format!(
                    "its stderr line does not start with `mcpwatchd: error:`: {line}"
                ));
            } else if !names_a_feature(line) {
                failed.push(format!(
                    "its stderr line names no missing feature and minimum kernel: {line}"
                ));
            }
        }
        [] => failed.push("it printed nothing on stderr".to_owned()),
        more => failed.push(format!(
            "it printed {} lines on stderr, want 1 (first: {}; last: {})",
            more.len(),
            more[0].trim(),
            more[more.len() - 1].trim()
        )),
    }
    let pins: Vec<&str> = r
        .section("pins")
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with("/sys/fs/bpf/mcpwatch/"))
        .collect();
    if !pins.is_empty() {
        let shown: Vec<&str> = pins.iter().take(4).copied().collect();
        failed.push(format!(
            "{} objects left pinned under /sys/fs/bpf/mcpwatch ({}{})",
            pins.len(),
            shown.join(" "),
            if pins.len() > shown.len() { " …" } else { "" }
        ));
    }
    if r.get("bpftool_rc") == "0" {
        let progs: Vec<&str> = r
            .section("progs")
            .lines()
            .filter(|l| {
                l.split_once(": ")
                    .is_some_and(|(id, _)| id.trim().parse::<u64>().is_ok())
            })
            .filter(|l| !l.contains("dump_bpf_map") && !l.contains("dump_bpf_prog"))
            .collect();
        if !progs.is_empty() {
            failed.push(format!("programs still loaded: {}", progs.join(" | ")));
        }
    }
    if failed.is_empty() {
        Ok(format!("refused: {}", lines[0].trim()))
    } else {
        Err(failed.join("; "))
    }
}

/// The refusal names a feature (a helper or kernel facility) and a minimum kernel
/// version.
fn names_a_feature(line: &str) -> bool {
    let msg = line.trim_start_matches("mcpwatchd: error:");
    let feature = msg
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .any(|w| w.contains('_') && w.len() > 2)
        || [
            "BTF",
            "LSM",
            "ring buffer",
            "ringbuf",
            "tracepoint",
            "helper",
        ]
        .iter()
        .any(|f| msg.contains(f));
    let version = msg
        .split(|c: char| !(c.is_ascii_digit() || c == '.'))
        .any(|w| {
            let mut parts = w.split('.');
            matches!((parts.next(), parts.next()), (Some(a), Some(b)) if !a.is_empty() && !b.is_empty())
        });
    feature && version
}

/// `cargo xtask kernels`: the matrix, and a failure when any kernel failed.
pub fn kernels_command(bins: &Bins, filter: Option<&str>, jobs: usize) -> Result<()> {
    let outcomes = run_matrix(bins, filter, jobs)?;
    let failed: Vec<&Outcome> = outcomes.iter().filter(|o| o.result.is_err()).collect();
    if !failed.is_empty() {
        bail!(
            "{} of {} kernels failed: {}",
            failed.len(),
            outcomes.len(),
            failed
                .iter()
                .map(|o| o.release.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    Ok(())
}

/// How many guests to run at once: one per core, at most two (each is one TCG
/// thread; more would only share the cores).
pub fn default_jobs() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get().min(2))
}

#[cfg(test)]
mod tests {
    use super::{is_plain_image, names_a_feature, program_facts};
    use serde_json::json;

    #[test]
    fn only_the_plain_image_package_is_picked() {
        assert!(is_plain_image("linux-image-6.12.117+deb13-amd64"));
        assert!(is_plain_image("linux-image-6.1.0-50-amd64"));
        assert!(!is_plain_image("linux-image-amd64"));
        assert!(!is_plain_image("linux-image-6.1.0-50-amd64-unsigned"));
        assert!(!is_plain_image("linux-image-6.1.0-50-cloud-amd64"));
        assert!(!is_plain_image("linux-image-6.1.0-50-rt-amd64"));
        assert!(!is_plain_image("linux-image-6.1.0-50-amd64-dbg"));
    }

    #[test]
    fn a_refusal_names_feature_and_kernel() {
        assert!(names_a_feature(
            "mcpwatchd: error: this kernel (5.10.0-46-amd64) lacks bpf_loop (Linux 5.17 or newer needed)"
        ));
        assert!(!names_a_feature("mcpwatchd: error: failed to load"));
        assert!(!names_a_feature("mcpwatchd: error: bpf_loop missing"));
    }

    #[test]
    fn a_version_filter_names_whole_components() {
        assert!(super::release_matches("6.1.0-57-amd64", "6.1"));
        assert!(!super::release_matches("6.12.118+deb13-amd64", "6.1"));
        assert!(super::release_matches("6.12.118+deb13-amd64", "6.12"));
        assert!(super::release_matches("6.12.118+deb13-amd64", "6.12.118"));
        assert!(super::release_matches("7.2.13+deb14-amd64", "7"));
        assert!(super::release_matches("6.12.118+deb13-amd64", "6."));
        assert!(!super::release_matches("5.10.0-46-amd64", "6"));
    }

    #[test]
    fn the_verifier_budget_is_checked_per_program() {
        let ok = json!({"programs": [
            {"name": "sched_process_exec", "verified_insns": 150_000, "load_ms": 10.0},
            {"name": "sched_process_fork", "verified_insns": 50, "load_ms": 1.5}]});
        let facts = program_facts(&ok).expect("within budget");
        assert!(
            facts.contains("verified insns: exec 150000, fork 50"),
            "{facts}"
        );
        let over = json!({"programs": [{"name": "sched_process_exec", "verified_insns": 200_001}]});
        let e = program_facts(&over).expect_err("over budget");
        assert!(e.contains("sched_process_exec verified 200001"), "{e}");
        let missing = json!({"programs": [{"name": "sched_process_exec", "run_cnt": 3}]});
        let e = program_facts(&missing).expect_err("field missing");
        assert!(e.contains("verified_insns not reported"), "{e}");
    }
}
