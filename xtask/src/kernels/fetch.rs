//! The kernels of the matrix: which to run, resolved through a private apt
//! configuration, downloaded and cached.

use std::{fmt::Write as _, fs, path::PathBuf, process::Command, time::Instant};

use anyhow::{bail, Context as _, Result};

use super::{cache_root, Planned, Suite, NEEDED_CONFIG, SUITES};
use crate::util::{output, say};

/// The kernels to run: cached ones as they are; the others resolved through a
/// private apt configuration (cheap: the lists of one suite), downloaded later.
pub(super) fn plan(filter: Option<&str>) -> Result<Vec<Planned>> {
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
pub(super) fn release_matches(release: &str, f: &str) -> bool {
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
pub(super) struct PrivateApt {
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

pub(super) fn is_plain_image(p: &str) -> bool {
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
pub(super) fn download(p: &Planned) -> Result<PathBuf> {
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
pub(super) fn config_gaps(suite: &Suite, release: &str) -> Vec<&'static str> {
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
