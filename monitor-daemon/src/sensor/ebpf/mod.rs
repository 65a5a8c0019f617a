//! Loading, attaching and talking to the kernel programs: the only code that touches
//! aya. A sensor is the set of programs and maps managed as one unit.
use std::{
    collections::{BTreeMap, BTreeSet},
    fs, io,
    os::fd::AsRawFd as _,
    path::{Path, PathBuf},
};

use aya::{
    maps::{Array, HashMap, MapData, MapError, PerCpuArray, RingBuf},
    programs::{links::FdLink, BtfTracePoint, Lsm, ProgramError, TracePoint},
    Btf, Ebpf, EbpfError, EbpfLoader,
};
use monitor_common::{
    names, stat, AllowKey, AllowValue, EnvFilter, ExeKey, KernelConfig, PathKey, SecEnvName,
    Settings, TaskState, MODES_MAX, SECENV_NAME_CAP,
};
use serde::Serialize;
use sha2::{Digest as _, Sha256};

/// The eBPF object built by aya-build from monitor-ebpf (see build.rs).
static OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/monitor"));

#[derive(Debug, thiserror::Error)]
pub enum SensorError {
    #[error(
        "this binary was built without its eBPF programs (AYA_BUILD_SKIP); rebuild with `cargo xtask build`"
    )]
    NoObject,
    #[error("loading the eBPF object failed")]
    Load {
        #[source]
        source: EbpfError,
    },
    #[error("the eBPF object has no program `{name}`")]
    MissingProgram { name: &'static str },
    #[error("the eBPF object has no map `{name}`")]
    MissingMap { name: &'static str },
    #[error("map `{name}`")]
    Map {
        name: &'static str,
        #[source]
        source: MapError,
    },
    /// The verifier refused a program: one line with its last word, the full log
    /// in a file (never thousands of lines on a terminal).
    #[error(
        "the kernel's verifier rejected program `{name}` on Linux {kernel}: \"{last}\" \
         (limit {VERIFIER_LIMIT} instructions per program; mcpwatch budgets {VERIFIED_INSNS_BUDGET}); \
         full verifier log: {}",
        log.as_ref().map_or_else(|| "not saved".to_owned(), |p| p.display().to_string())
    )]
    Rejected {
        name: &'static str,
        kernel: String,
        last: String,
        log: Option<PathBuf>,
    },
    #[error("program `{name}` ({hook}): {action} failed")]
    Program {
        name: &'static str,
        hook: &'static str,
        action: &'static str,
        /// Boxed: aya's error is large and would bloat every `Result` here.
        #[source]
        source: Box<ProgramError>,
    },
    #[error("kernel BTF (/sys/kernel/btf/vmlinux) could not be read")]
    Btf {
        #[source]
        source: aya::BtfError,
    },
    #[error("pin directory {}: {action} failed", path.display())]
    Pin {
        path: PathBuf,
        action: &'static str,
        #[source]
        source: io::Error,
    },
}

/// How a hook is attached (shown by `mcpwatch status`).
#[derive(Clone, Debug, Serialize)]
pub struct Attachment {
    pub program: &'static str,
    pub hook: &'static str,
    pub method: String,
}

/// Whether this kernel lets us make a denied exec fail with EPERM (BPF LSM), found by
/// really loading a probe program, not by reading a config flag.
#[derive(Clone, Debug, Serialize)]
pub struct LsmSupport {
    /// `bpf` is in /sys/kernel/security/lsm.
    pub bpf_in_lsm_list: bool,
    /// A BPF LSM program on `bprm_check_security` passed `BPF_PROG_LOAD`.
    pub loadable: bool,
    /// Human-readable reason when not loadable.
    pub reason: Option<String>,
}

#[derive(Clone, Debug, Serialize)]
pub struct ProgramStats {
    pub name: &'static str,
    /// The kernel's count of instructions its verifier processed to accept the
    /// program (`bpf_prog_info.verified_insns`, 5.16+): the budget DESIGN.md keeps
    /// at or below `VERIFIED_INSNS_BUDGET`. `None` when the kernel does not say.
    pub verified_insns: Option<u32>,
    /// How long `BPF_PROG_LOAD` took when this daemon loaded it (`None`: taken over).
    pub load_ms: Option<f64>,
    pub run_cnt: u64,
    pub run_time_ns: u64,
}

/// The verifier budget of every program: 20 % of the kernel's 1M-instruction limit
/// (`BPF_COMPLEXITY_LIMIT_INSNS`), so a kernel point release, another CPU or another
/// LLVM has room to move the count before anything fails to load.
pub const VERIFIED_INSNS_BUDGET: u32 = 200_000;
/// The kernel's limit on instructions the verifier processes for one program.
pub const VERIFIER_LIMIT: u32 = 1_000_000;

/// What the kernel needs to know about hosts, from the resolved host profiles.
#[derive(Clone, Debug, Default)]
pub struct KernelHosts {
    /// `HOST_EXES`: executable identity → profile id.
    pub exes: Vec<(ExeKey, u32)>,
    /// `HOST_PATHS`: exec filename of a `#!` host → profile id.
    pub paths: Vec<(PathKey, u32)>,
    /// `CLASS_EXES`: helper executables and login shells (`class_exe`).
    pub class_exes: Vec<(ExeKey, u32)>,
    /// `PROFILE_FLAGS`, indexed by profile id (`profile_flags`).
    pub profile_flags: Vec<u32>,
}

pub struct SensorOptions {
    pub ring_buffer_bytes: u32,
    pub tracked_max: u32,
    /// bpffs directory for pinned maps (`maps/`) and links (`links/`).
    pub pin_dir: PathBuf,
    /// Where the link keeper is recorded (see `keeper`).
    pub state_dir: PathBuf,
    /// Pin links (else, or when pinning fails, a keeper holds them).
    pub pin_links: bool,
}

/// What the sensor found pinned and did with it (shown by `mcpwatch status`).
#[derive(Clone, Debug, Serialize)]
pub struct PinReport {
    pub dir: PathBuf,
    /// Build id of the programs running now (hash of the eBPF object).
    pub generation: String,
    /// Programs of this build were already attached (daemon restart): taken over,
    /// not attached again.
    pub reused_programs: bool,
    /// Maps that already existed and were taken over (state kept).
    pub reused_maps: Vec<&'static str>,
    /// Pins of an older build that were replaced (after the new programs attached).
    pub replaced: Vec<String>,
    /// Pinned maps with a layout this build cannot use, removed and recreated.
    pub incompatible: Vec<String>,
    /// How the links outlive the daemon: `pinned` (bpffs) or `keeper` (a keeper
    /// process holds them because this kernel refuses to pin links).
    pub links_held_by: String,
    /// Why links are not pinned, when they are not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pin_refused: Option<String>,
    /// The link keeper's pid, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keeper_pid: Option<u32>,
}

pub struct Sensor {
    ebpf: Ebpf,
    tracked: HashMap<MapData, u32, TaskState>,
    host_exes: HashMap<MapData, ExeKey, u32>,
    host_paths: HashMap<MapData, PathKey, u32>,
    stats: PerCpuArray<MapData, u64>,
    events: Option<RingBuf<MapData>>,
    allow: HashMap<MapData, AllowKey, AllowValue>,
    secenv: HashMap<MapData, u64, SecEnvName>,
    deny: HashMap<MapData, ExeKey, u32>,
    modes: Array<MapData, u32>,
    holds: Array<MapData, u64>,
    settings_map: Array<MapData, Settings>,
    pub settings: Settings,
    pub attachments: Vec<Attachment>,
    pub lsm: LsmSupport,
    pub pins: PinReport,
    /// Our own references to the links (attached here, or copied from a keeper).
    links: Vec<FdLink>,
    held: Vec<std::os::fd::OwnedFd>,
    /// Load time of each program this daemon loaded (name, ms).
    load_ms: Vec<(&'static str, f64)>,
    /// Where a rejected program's verifier log goes.
    state_dir: PathBuf,
}

/// `BPF_EXIST`: update an element only if it exists.
const BPF_EXIST: u64 = 2;

/// Attached only where the kernel accepts BPF LSM programs.
const LSM_PROGRAM: (&str, &str) = ("bprm_check_security", "lsm/bprm_check_security");

const PROGRAMS: [(&str, &str); 5] = [
    ("sched_process_fork", "sched/sched_process_fork"),
    ("sched_process_exec", "sched/sched_process_exec"),
    ("sched_process_exit", "sched/sched_process_exit"),
    ("signal_generate", "signal/signal_generate"),
    // Kills a held launch resumed behind the daemon's back, at its first instruction.
    ("page_fault_user", "exceptions/page_fault_user"),
];

/// Key and value sizes of every pinned map, to refuse a pin left by a build with
/// another layout (it would be taken over silently otherwise).
fn expected_layout(name: &str) -> Option<(u32, u32)> {
    use core::mem::size_of;
    let s = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
    Some(match name {
        names::TRACKED => (4, s(size_of::<TaskState>())),
        names::HOST_EXES | names::DENY_EXES | names::CLASS_EXES => (s(size_of::<ExeKey>()), 4),
        names::DOOMED => (4, 4),
        names::SECENV_FAMILIES => (8, 4),
        names::HOST_PATHS => (s(size_of::<PathKey>()), 4),
        names::EVENTS => (0, 0),
        names::STATS | names::MODES | names::PROFILE_FLAGS | names::HOLDS => (
            4,
            if name == names::STATS || name == names::HOLDS {
                8
            } else {
                4
            },
        ),
        names::ALLOW => (s(size_of::<AllowKey>()), s(size_of::<AllowValue>())),
        names::SETTINGS => (4, s(size_of::<Settings>())),
        names::SECENV_NAMES => (8, s(size_of::<SecEnvName>())),
        names::SECENV_FILTER => (4, s(size_of::<EnvFilter>())),
        _ => return None,
    })
}

/// Take over the maps an earlier daemon pinned, but remove (and report) any whose
/// key or value size this build does not use: it would be misread otherwise.
fn check_pinned_maps(maps_dir: &Path, pins: &mut PinReport) -> Result<(), SensorError> {
    for &name in names::PINNED_MAPS {
        let path = maps_dir.join(name);
        if !path.exists() {
            continue;
        }
        let fits = MapData::from_pin(&path)
            .ok()
            .and_then(|m| m.info().ok())
            .is_some_and(|info| {
                expected_layout(name).is_some_and(|(k, v)| {
                    name == names::EVENTS || (info.key_size() == k && info.value_size() == v)
                })
            });
        if fits {
            pins.reused_maps.push(name);
        } else {
            fs::remove_file(&path).map_err(pin_io(&path, "remove incompatible map"))?;
            pins.incompatible.push(name.to_owned());
        }
    }
    Ok(())
}

/// Build id of the embedded programs: the first 16 hex digits of their SHA-256.
pub fn generation() -> String {
    crate::sys::hex::encode(&Sha256::digest(OBJECT)[..8])
}

/// Remove everything pinned under `dir`: detaches the programs and frees the maps
/// (`mcpwatchd --unload`). Enforcement stops.
pub fn unload(dir: &Path) -> io::Result<bool> {
    if !dir.exists() {
        return Ok(false);
    }
    fs::remove_dir_all(dir)?;
    Ok(true)
}

fn pin_io<'a>(path: &'a Path, action: &'static str) -> impl FnOnce(io::Error) -> SensorError + 'a {
    move |source| SensorError::Pin {
        path: path.to_path_buf(),
        action,
        source,
    }
}

impl Sensor {
    /// Load the programs with this kernel's layout, fill the host maps, attach and
    /// pin. Maps already pinned by an earlier daemon are taken over with their
    /// content; programs of this same build already attached are taken over too (no
    /// gap, no duplicates). Programs of another build are replaced only after the
    /// new ones are attached, so enforcement has no gap either.
    #[expect(
        clippy::too_many_lines,
        reason = "the load sequence is ordered for safety (maps filled before attach, new programs attached before old ones go) and reads best in one place"
    )]
    pub fn load(
        opts: &SensorOptions,
        mut kcfg: KernelConfig,
        keys: &KernelHosts,
    ) -> Result<Self, SensorError> {
        if OBJECT.is_empty() {
            return Err(SensorError::NoObject);
        }
        kcfg.host_paths_enabled = u32::from(!keys.paths.is_empty());
        let generation = generation();
        let maps_dir = opts.pin_dir.join("maps");
        let links_dir = opts.pin_dir.join("links");
        for d in [&maps_dir, &links_dir] {
            fs::create_dir_all(d).map_err(pin_io(d, "create"))?;
        }
        let mut pins = PinReport {
            dir: opts.pin_dir.clone(),
            generation: generation.clone(),
            reused_programs: false,
            reused_maps: Vec::new(),
            replaced: Vec::new(),
            incompatible: Vec::new(),
            links_held_by: String::new(),
            pin_refused: None,
            keeper_pid: None,
        };
        check_pinned_maps(&maps_dir, &mut pins)?;
        // Programs of this build already attached by an earlier daemon?
        let existing: BTreeSet<String> = fs::read_dir(&links_dir)
            .map_err(pin_io(&links_dir, "read"))?
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .collect();
        let ours = |name: &str| {
            existing
                .iter()
                .find(|p| p.starts_with(&format!("{name}@{generation}_")))
                .cloned()
        };
        let btf = Btf::from_sys_fs().map_err(|source| SensorError::Btf { source })?;
        let mut loader = EbpfLoader::new();
        loader
            .btf(Some(&btf))
            .override_global(names::CONFIG, &kcfg, true)
            .map_max_entries(names::EVENTS, opts.ring_buffer_bytes)
            .map_max_entries(names::TRACKED, opts.tracked_max);
        let map_paths: Vec<(&str, PathBuf)> = names::PINNED_MAPS
            .iter()
            .map(|&n| (n, maps_dir.join(n)))
            .collect();
        for (name, path) in &map_paths {
            loader.map_pin_path(name, path.as_path());
        }
        let mut ebpf = loader
            .load(OBJECT)
            .map_err(|source| SensorError::Load { source })?;

        let lsm = probe_lsm(&mut ebpf, &btf);
        // With BPF LSM, managed denies fail with EPERM; the program joins the set.
        let lsm_active = lsm.loadable && kcfg.bprm_file != KernelConfig::ABSENT;
        let programs: Vec<(&'static str, &'static str)> = PROGRAMS
            .iter()
            .copied()
            .chain(lsm_active.then_some(LSM_PROGRAM))
            .collect();
        let keeper_found = super::keeper::find(&opts.state_dir);
        let pinned_reuse = programs.iter().all(|(name, _)| ours(name).is_some());
        let keeper_reuse = keeper_found.as_ref().is_some_and(|k| {
            k.generation == generation
                && programs
                    .iter()
                    .all(|(n, _)| k.links.iter().any(|(m, _)| m == n))
        });
        let reuse = pins.incompatible.is_empty() && (pinned_reuse || keeper_reuse);

        let mut host_exes: HashMap<MapData, ExeKey, u32> = take_map(&mut ebpf, names::HOST_EXES)?;
        sync_map(&mut host_exes, names::HOST_EXES, &keys.exes)?;
        let mut host_paths: HashMap<MapData, PathKey, u32> =
            take_map(&mut ebpf, names::HOST_PATHS)?;
        sync_map(&mut host_paths, names::HOST_PATHS, &keys.paths)?;
        let mut class_exes: HashMap<MapData, ExeKey, u32> = take_map(&mut ebpf, names::CLASS_EXES)?;
        sync_map(&mut class_exes, names::CLASS_EXES, &keys.class_exes)?;
        let mut profile_flags: Array<MapData, u32> = take_map(&mut ebpf, names::PROFILE_FLAGS)?;
        for i in 0..monitor_common::MODES_MAX {
            let f = keys.profile_flags.get(i as usize).copied().unwrap_or(0);
            profile_flags
                .set(i, f, 0)
                .map_err(|source| SensorError::Map {
                    name: names::PROFILE_FLAGS,
                    source,
                })?;
        }
        let tracked = take_map(&mut ebpf, names::TRACKED)?;
        let stats = take_map(&mut ebpf, names::STATS)?;
        let events = Some(take_map(&mut ebpf, names::EVENTS)?);
        let allow = take_map(&mut ebpf, names::ALLOW)?;
        let deny = take_map(&mut ebpf, names::DENY_EXES)?;
        let modes = take_map(&mut ebpf, names::MODES)?;
        let holds = take_map(&mut ebpf, names::HOLDS)?;
        let mut settings_map: Array<MapData, Settings> = take_map(&mut ebpf, names::SETTINGS)?;
        // The SipHash key outlives the daemon with the maps; a first start makes one.
        let mut settings = settings_map.get(&0, 0).unwrap_or_default();
        if settings.sip_k0 == 0 && settings.sip_k1 == 0 {
            let mut key = [0u8; 16];
            getrandom(&mut key).map_err(pin_io(&opts.pin_dir, "read random key"))?;
            settings.sip_k0 = u64::from_le_bytes(key[..8].try_into().unwrap_or_default());
            settings.sip_k1 = u64::from_le_bytes(key[8..].try_into().unwrap_or_default());
        }
        settings.daemon_tgid = std::process::id();
        settings.enforcing = 1;
        settings.host_path_lens = host_path_lens(&keys.paths);

        let mut secenv: HashMap<MapData, u64, SecEnvName> =
            take_map(&mut ebpf, names::SECENV_NAMES)?;
        sync_map(
            &mut secenv,
            names::SECENV_NAMES,
            &secenv_names(
                &crate::event::SECURITY_ENV
                    .iter()
                    .map(|n| (*n).to_owned())
                    .collect::<Vec<_>>(),
            ),
        )?;
        let mut families: HashMap<MapData, u64, u32> = take_map(&mut ebpf, names::SECENV_FAMILIES)?;
        sync_map(&mut families, names::SECENV_FAMILIES, &secenv_families())?;
        let filter = secenv_filter(settings.sip_k0);
        let mut filter_map: Array<MapData, EnvFilter> = take_map(&mut ebpf, names::SECENV_FILTER)?;
        filter_map
            .set(0, filter, 0)
            .map_err(|source| SensorError::Map {
                name: names::SECENV_FILTER,
                source,
            })?;
        settings_map
            .set(0, settings, 0)
            .map_err(|source| SensorError::Map {
                name: names::SETTINGS,
                source,
            })?;

        let mut sensor = Self {
            ebpf,
            tracked,
            host_exes,
            host_paths,
            stats,
            events,
            allow,
            secenv,
            deny,
            modes,
            holds,
            settings_map,
            settings,
            attachments: Vec::new(),
            lsm,
            pins,
            links: Vec::new(),
            held: Vec::new(),
            load_ms: Vec::new(),
            state_dir: opts.state_dir.clone(),
        };
        if reuse {
            sensor.pins.reused_programs = true;
            let method = if let Some(k) = keeper_found.as_ref().filter(|_| !pinned_reuse) {
                sensor.held = super::keeper::copy_fds(k)
                    .map_err(pin_io(&opts.state_dir, "copy the keeper's links"))?;
                sensor.pins.links_held_by = "keeper".into();
                sensor.pins.keeper_pid = Some(k.pid);
                format!("taken over from keeper pid {}", k.pid)
            } else {
                sensor.pins.links_held_by = "pinned".into();
                "pinned, taken over".to_owned()
            };
            for &(name, hook) in &programs {
                sensor.attachments.push(Attachment {
                    program: name,
                    hook,
                    method: method.clone(),
                });
            }
        } else {
            // bpffs refuses names with a '.' (EPERM): `NAME@GENERATION_PID`.
            let tag = format!("{generation}_{}", std::process::id());
            let fds = sensor.attach(&btf, lsm_active)?;
            // Pin the links if the kernel lets us; else hand them to a keeper.
            let mut pinned = Vec::new();
            if !opts.pin_links {
                sensor.pins.pin_refused = Some("pin_links = false in the configuration".into());
            }
            for (name, fd) in fds.iter().filter(|_| opts.pin_links) {
                let path = links_dir.join(format!("{name}@{tag}"));
                match super::keeper::pin_fd(*fd, &path) {
                    Ok(()) => pinned.push(path),
                    Err(e) => {
                        sensor.pins.pin_refused = Some(format!("BPF_OBJ_PIN of a link: {e}"));
                        break;
                    }
                }
            }
            if sensor.pins.pin_refused.is_some() {
                for p in pinned {
                    let _ = fs::remove_file(p);
                }
                let k = super::keeper::spawn(&opts.state_dir, &generation, &fds)
                    .map_err(pin_io(&opts.state_dir, "start the link keeper"))?;
                sensor.pins.links_held_by = "keeper".into();
                sensor.pins.keeper_pid = Some(k.pid);
            } else {
                sensor.pins.links_held_by = "pinned".into();
            }
            // Only now that the new programs run: retire any older ones.
            for old in existing {
                let path = links_dir.join(&old);
                fs::remove_file(&path).map_err(pin_io(&path, "remove old pin"))?;
                sensor.pins.replaced.push(old);
            }
            if let Some(k) = keeper_found {
                super::keeper::stop_state(&k);
                sensor
                    .pins
                    .replaced
                    .push(format!("keeper pid {} ({})", k.pid, k.generation));
            }
        }
        Ok(sensor)
    }

    /// Attach every program; returns each link's fd (the links stay in `self`).
    fn attach(&mut self, btf: &Btf, lsm: bool) -> Result<Vec<(String, i32)>, SensorError> {
        // fork first: once exec detects a host, its forks must already be followed.
        // exec last: it may kill, and everything it relies on must be in place.
        let order: Vec<(&'static str, &'static str)> =
            [PROGRAMS[0], PROGRAMS[3], PROGRAMS[4], PROGRAMS[2]]
                .into_iter()
                .chain(lsm.then_some(LSM_PROGRAM))
                .chain([PROGRAMS[1]])
                .collect();
        // Every program through the verifier before any is attached: a kernel that
        // rejects one gets none (never a half-loaded sensor).
        for &(name, hook) in &order {
            let t0 = std::time::Instant::now();
            let prog = self
                .ebpf
                .program_mut(name)
                .ok_or(SensorError::MissingProgram { name })?;
            let loaded = if hook == LSM_PROGRAM.1 {
                <&mut Lsm>::try_from(prog)
                    .map_err(program_error(name, hook, "type check"))?
                    .load(name, btf)
            } else if hook.starts_with("sched/sched_process_e") {
                <&mut TracePoint>::try_from(prog)
                    .map_err(program_error(name, hook, "type check"))?
                    .load()
            } else {
                <&mut BtfTracePoint>::try_from(prog)
                    .map_err(program_error(name, hook, "type check"))?
                    .load(name, btf)
            };
            loaded.map_err(|e| load_error(&self.state_dir, name, hook, e))?;
            self.load_ms.push((name, t0.elapsed().as_secs_f64() * 1e3));
        }
        let mut fds = Vec::new();
        for (name, hook) in order {
            let before = super::keeper::own_link_fds();
            let classic = hook.starts_with("sched/sched_process_e");
            // LSM and tp_btf programs attach the same way; only their aya type differs.
            macro_rules! attach_btf {
                ($ty:ty) => {{
                    let prog: &mut $ty = self
                        .ebpf
                        .program_mut(name)
                        .ok_or(SensorError::MissingProgram { name })?
                        .try_into()
                        .map_err(program_error(name, hook, "type check"))?;
                    let id = prog.attach().map_err(program_error(name, hook, "attach"))?;
                    let link =
                        prog.take_link(id)
                            .map_err(program_error(name, hook, "take link"))?;
                    FdLink::from(link)
                }};
            }
            let link: FdLink = if hook == LSM_PROGRAM.1 {
                attach_btf!(Lsm)
            } else if classic {
                let prog: &mut TracePoint = self
                    .ebpf
                    .program_mut(name)
                    .ok_or(SensorError::MissingProgram { name })?
                    .try_into()
                    .map_err(program_error(name, hook, "type check"))?;
                let id = prog
                    .attach("sched", name)
                    .map_err(program_error(name, hook, "attach"))?;
                let link = prog
                    .take_link(id)
                    .map_err(program_error(name, hook, "take link"))?;
                FdLink::try_from(link)
                    .map_err(|e| pin_other(&self.pins.dir, "take the link", &e))?
            } else {
                attach_btf!(BtfTracePoint)
            };
            let fd = super::keeper::own_link_fds()
                .into_iter()
                .find(|fd| !before.contains(fd))
                .ok_or_else(|| {
                    pin_other(
                        &self.pins.dir,
                        "find the new link fd",
                        &io::Error::other("no new bpf_link fd in /proc/self/fd"),
                    )
                })?;
            fds.push((name.to_owned(), fd));
            self.links.push(link);
            self.attachments.push(Attachment {
                program: name,
                hook,
                method: if hook == LSM_PROGRAM.1 {
                    "lsm"
                } else if classic {
                    "tracepoint"
                } else {
                    "tp_btf"
                }
                .to_owned(),
            });
        }
        Ok(fds)
    }

    /// The ring buffer, handed to the reader once.
    pub fn take_events(&mut self) -> Option<RingBuf<MapData>> {
        self.events.take()
    }

    /// Start tracking `pid` (e.g. `mcpwatch run`, adoption, a host relaunch).
    pub fn track(&mut self, pid: u32, state: &TaskState) -> Result<(), SensorError> {
        self.tracked
            .insert(pid, state, 0)
            .map_err(|source| SensorError::Map {
                name: names::TRACKED,
                source,
            })
    }

    pub fn tracked_state(&self, pid: u32) -> Option<TaskState> {
        self.tracked.get(&pid, 0).ok()
    }

    pub fn tracked_count(&self) -> usize {
        self.tracked.keys().flatten().count()
    }

    pub fn host_key_counts(&self) -> (usize, usize) {
        (
            self.host_exes.keys().flatten().count(),
            self.host_paths.keys().flatten().count(),
        )
    }

    /// Kernel counters, summed over CPUs, by name.
    pub fn counters(&self) -> BTreeMap<&'static str, u64> {
        let names = [
            (stat::RINGBUF_DROPS, "ringbuf_drops"),
            (stat::TRACKED_FULL, "tracked_full"),
            (stat::EXECS, "execs"),
            (stat::FORKS, "forks"),
            (stat::EXITS, "exits"),
            (stat::HOSTS_DETECTED, "hosts_detected"),
            (stat::READ_ERRORS, "read_errors"),
            (stat::LAUNCHES, "launches"),
            (stat::ALLOWED, "allowed"),
            (stat::KILLED, "killed"),
            (stat::HELD, "held"),
            (stat::SIGNAL_FAILED, "signal_failed"),
            (stat::HOLD_BYPASS, "hold_bypass"),
            (stat::LSM_DENIED, "lsm_denied"),
            (stat::DOOMED_KILLED, "tracked_full_killed"),
            (stat::DOOMED_FULL, "tracked_full_unkillable"),
        ];
        names
            .iter()
            .map(|&(idx, name)| {
                let sum = self.stats.get(&idx, 0).map_or(0, |v| v.iter().sum());
                (name, sum)
            })
            .collect()
    }

    /// Per program: the verifier's instruction count, load time, run counts and run
    /// time (those two need `kernel.bpf_stats_enabled=1`). For programs taken over
    /// from an earlier daemon, read through their pinned links.
    pub fn program_stats(&self) -> Vec<ProgramStats> {
        let names = PROGRAMS
            .iter()
            .chain(std::iter::once(&LSM_PROGRAM))
            .filter(|(n, _)| self.attachments.iter().any(|a| a.program == *n))
            .map(|&(n, _)| n);
        if !self.pins.reused_programs {
            return names
                .filter_map(|name| {
                    let info = self.ebpf.program(name)?.info().ok()?;
                    Some(stats_of(name, &info, self.load_ms(name)))
                })
                .collect();
        }
        // Taken over: the program ids behind our pinned links.
        let pins: Vec<PathBuf> = fs::read_dir(self.pins.dir.join("links"))
            .map(|d| d.filter_map(|e| Some(e.ok()?.path())).collect())
            .unwrap_or_default();
        let ids: Vec<(&'static str, u32)> = names
            .filter_map(|name| {
                let pin = pins.iter().find(|p| {
                    p.file_name()
                        .is_some_and(|f| f.to_string_lossy().starts_with(&format!("{name}@")))
                })?;
                let link = FdLink::from(aya::programs::links::PinnedLink::from_pin(pin).ok()?);
                Some((name, link.info().ok()?.program_id()))
            })
            .collect();
        aya::programs::loaded_programs()
            .flatten()
            .filter_map(|info| {
                let &(name, _) = ids.iter().find(|(_, id)| *id == info.id())?;
                Some(stats_of(name, &info, None))
            })
            .collect()
    }

    fn load_ms(&self, name: &str) -> Option<f64> {
        self.load_ms
            .iter()
            .find(|(n, _)| *n == name)
            .map(|&(_, ms)| ms)
    }

    /// Make `ALLOW` hold exactly `entries` (insert or update first, then remove the
    /// rest, so an entry that stays is never briefly missing).
    pub fn sync_allow(&mut self, entries: &[(AllowKey, AllowValue)]) -> Result<(), SensorError> {
        sync_map(&mut self.allow, names::ALLOW, entries)
    }

    /// Make `SECENV_NAMES` know exactly `names` (index = id, as the `ALLOW` values
    /// use them). Values and names written at different moments cannot make a
    /// launch match wrongly: a value's entries carry their names, compared whole.
    pub fn set_env_names(&mut self, names: &[String]) -> Result<(), SensorError> {
        sync_map(&mut self.secenv, names::SECENV_NAMES, &secenv_names(names))
    }

    pub fn allow_keys(&self) -> Vec<AllowKey> {
        self.allow.keys().flatten().collect()
    }

    pub fn remove_allow(&mut self, key: &AllowKey) -> bool {
        self.allow.remove(key).is_ok()
    }

    /// Make `DENY_EXES` hold exactly `entries`.
    pub fn sync_deny(&mut self, entries: &[(ExeKey, u32)]) -> Result<(), SensorError> {
        sync_map(&mut self.deny, names::DENY_EXES, entries)
    }

    /// Set the mode of every profile id (ids past the slice: monitor).
    pub fn set_modes(&mut self, modes: &[u32]) -> Result<(), SensorError> {
        for id in 0..MODES_MAX {
            let m = modes.get(id as usize).copied().unwrap_or(0);
            if self.modes.get(&id, 0).ok() != Some(m) {
                self.modes
                    .set(id, m, 0)
                    .map_err(|source| SensorError::Map {
                        name: names::MODES,
                        source,
                    })?;
            }
        }
        Ok(())
    }

    /// The mode the kernel applies to a host id past the mode table.
    pub fn set_default_mode(&mut self, mode: u32) -> Result<(), SensorError> {
        if self.settings.default_mode == mode {
            return Ok(());
        }
        self.settings.default_mode = mode;
        self.store_settings()
    }

    /// Write `self.settings` to the kernel's `SETTINGS[0]`.
    fn store_settings(&mut self) -> Result<(), SensorError> {
        self.settings_map
            .set(0, self.settings, 0)
            .map_err(|source| SensorError::Map {
                name: names::SETTINGS,
                source,
            })
    }

    /// Clear a process's `HELD` flag (it was continued or killed by the daemon).
    pub fn clear_held(&mut self, pid: u32) {
        let Ok(mut st) = self.tracked.get(&pid, 0) else {
            return;
        };
        if st.flags & monitor_common::task_flags::HELD == 0 {
            return;
        }
        st.flags &= !monitor_common::task_flags::HELD;
        // Only if it still exists: an entry the exit hook removed must stay gone.
        if self.tracked.insert(pid, st, BPF_EXIST).is_ok() {
            self.count_release();
        }
    }

    /// One more hold ended by the daemon (`HOLDS[DAEMON_RELEASED]`, ours only).
    fn count_release(&mut self) {
        use monitor_common::holds;
        let n = self.holds.get(&holds::DAEMON_RELEASED, 0).unwrap_or(0);
        let _ = self.holds.set(holds::DAEMON_RELEASED, n.wrapping_add(1), 0);
    }

    /// `HOLDS` as (held, released in the kernel, released by the daemon).
    pub fn hold_counts(&self) -> (u64, u64, u64) {
        use monitor_common::holds;
        let get = |i| self.holds.get(&i, 0).unwrap_or(0);
        (
            get(holds::HELD),
            get(holds::KERNEL_RELEASED),
            get(holds::DAEMON_RELEASED),
        )
    }

    /// With no launch held: make the counters agree again (a hold ended twice
    /// leaves them apart, and the page-fault hook then looks up every fault).
    /// Read before the scan, so a hold that begins meanwhile keeps them apart.
    pub fn resync_holds(&mut self) {
        let (held, kernel, daemon) = self.hold_counts();
        if held == kernel.wrapping_add(daemon) || !self.held_pids().is_empty() {
            return;
        }
        let _ = self.holds.set(
            monitor_common::holds::DAEMON_RELEASED,
            held.wrapping_sub(kernel),
            0,
        );
    }

    /// Every (pid, state) in the kernel's tracked map.
    pub fn tracked_entries(&self) -> Vec<(u32, TaskState)> {
        self.tracked.iter().flatten().collect()
    }

    /// Forget a pid the kernel still tracks but that no longer exists.
    pub fn untrack(&mut self, pid: u32) {
        let held = self
            .tracked
            .get(&pid, 0)
            .is_ok_and(|st| st.flags & monitor_common::task_flags::HELD != 0);
        if self.tracked.remove(&pid).is_ok() && held {
            self.count_release();
        }
    }

    /// Every tracked process the kernel holds (ask mode) right now.
    pub fn held_pids(&self) -> Vec<u32> {
        self.tracked
            .iter()
            .flatten()
            .filter(|(_, st)| st.flags & monitor_common::task_flags::HELD != 0)
            .map(|(pid, _)| pid)
            .collect()
    }

    /// Tell the kernel no daemon runs any more (clean stop): ask mode degrades to
    /// enforce at once rather than holding launches nobody will answer.
    pub fn release(&mut self) {
        self.settings.daemon_tgid = 0;
        let _ = self.store_settings();
    }
}

/// `SECENV_NAMES` (by `secenv_name_hash` of `NAME=`) for `names` (index = id).
pub(crate) fn secenv_names(names: &[String]) -> Vec<(u64, SecEnvName)> {
    let mut want: Vec<(u64, SecEnvName)> = Vec::new();
    for (id, name) in names.iter().enumerate().take(monitor_common::SECENV_MAX) {
        let entry = format!("{name}=");
        if entry.len() > SECENV_NAME_CAP {
            continue;
        }
        let mut v = SecEnvName {
            len: u32::try_from(entry.len()).unwrap_or(u32::MAX),
            id: u32::try_from(id).unwrap_or(0),
            name: [0; SECENV_NAME_CAP],
        };
        v.name[..entry.len()].copy_from_slice(entry.as_bytes());
        let key = monitor_common::secenv_name_hash(entry.as_bytes());
        // Two names with one hash: the later one is not known (fail closed: the
        // kernel finds no record for a launch that sets it).
        if !want.iter().any(|(k, _)| *k == key) {
            want.push((key, v));
        }
    }
    want
}

/// `SECENV_FAMILIES`: the families' lookup keys.
pub(crate) fn secenv_families() -> Vec<(u64, u32)> {
    crate::event::SECURITY_ENV_FAMILIES
        .iter()
        .enumerate()
        .map(|(i, (prefix, fold))| {
            (
                monitor_common::secenv_family_key(prefix.as_bytes(), *fold),
                u32::try_from(i).unwrap_or(0),
            )
        })
        .collect()
}

/// The keyed filter of the first three bytes of every security-relevant name and
/// family (each case of a family that ignores case), which the kernel's
/// environment scan consults first.
pub(crate) fn secenv_filter(key: u64) -> EnvFilter {
    let mut filter = EnvFilter::default();
    let mut set = |first3: &[u8]| {
        let bit = monitor_common::envfilter_bit(
            u32::from_le_bytes([first3[0], first3[1], first3[2], 0]),
            key,
        );
        filter.bits[(bit >> 6) as usize] |= 1 << (bit & 63);
    };
    for name in crate::event::SECURITY_ENV {
        set(format!("{name}=").as_bytes());
    }
    for (prefix, fold) in crate::event::SECURITY_ENV_FAMILIES {
        let p = prefix.as_bytes();
        if *fold {
            for case in 0..8u8 {
                let mut f = [0u8; 3];
                for (i, b) in f.iter_mut().enumerate() {
                    *b = if case >> i & 1 == 1 {
                        p[i].to_ascii_uppercase()
                    } else {
                        p[i].to_ascii_lowercase()
                    };
                }
                set(&f);
            }
        } else {
            set(p);
        }
    }
    filter
}

/// `Settings::host_path_lens`: the `__data_loc` lengths (NUL included) of the
/// `#!` host paths, so the kernel copies an exec filename only when it could match.
fn host_path_lens(paths: &[(PathKey, u32)]) -> [u64; 4] {
    let mut lens = [0u64; 4];
    for (key, _) in paths {
        let n = key
            .path
            .iter()
            .position(|&b| b == 0)
            .unwrap_or(key.path.len())
            + 1;
        if n < 256 {
            lens[n / 64] |= 1 << (n % 64);
        }
    }
    lens
}

fn stats_of(
    name: &'static str,
    info: &aya::programs::ProgramInfo,
    load_ms: Option<f64>,
) -> ProgramStats {
    ProgramStats {
        name,
        verified_insns: info.verified_instruction_count(),
        load_ms,
        run_cnt: info.run_count(),
        run_time_ns: u64::try_from(info.run_time().as_nanos()).unwrap_or(u64::MAX),
    }
}

/// A failed `BPF_PROG_LOAD`: when the verifier said why, its log goes to a file in
/// the state directory and the error keeps its last line only.
fn load_error(
    state_dir: &Path,
    name: &'static str,
    hook: &'static str,
    e: ProgramError,
) -> SensorError {
    let ProgramError::LoadError { verifier_log, .. } = &e else {
        return program_error(name, hook, "load")(e);
    };
    let log = verifier_log.to_string();
    let Some(last) = last_verifier_line(&log) else {
        return program_error(name, hook, "load")(e);
    };
    let kernel = kernel_release();
    let path = state_dir.join(format!("verifier-{name}.log"));
    let saved = fs::create_dir_all(state_dir)
        .and_then(|()| fs::write(&path, format!("# {name} on Linux {kernel}: {e}\n{log}\n")))
        .is_ok();
    SensorError::Rejected {
        name,
        kernel,
        last,
        log: saved.then_some(path),
    }
}

/// `uname -r`.
pub fn kernel_release() -> String {
    fs::read_to_string("/proc/sys/kernel/osrelease")
        .map_or_else(|_| "?".into(), |s| s.trim().to_owned())
}

/// The verifier's verdict: the last line of its log that is not the statistics
/// footer ("processed N insns …", "verification time …", "stack depth …").
pub fn last_verifier_line(log: &str) -> Option<String> {
    log.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .rfind(|l| {
            !(l.starts_with("processed ")
                || l.starts_with("verification time")
                || l.starts_with("stack depth")
                || l.starts_with("max_states_per_insn"))
        })
        .map(|l| l.chars().take(300).collect())
}

/// Error mapper for one step of loading or attaching a program.
fn program_error(
    name: &'static str,
    hook: &'static str,
    action: &'static str,
) -> impl FnOnce(ProgramError) -> SensorError {
    move |source| SensorError::Program {
        name,
        hook,
        action,
        source: Box::new(source),
    }
}

/// Make a hash map hold exactly `want`: insert or update every entry, then remove
/// keys that are not wanted. Entries that stay are never briefly absent.
fn sync_map<K, V>(
    map: &mut HashMap<MapData, K, V>,
    name: &'static str,
    want: &[(K, V)],
) -> Result<(), SensorError>
where
    K: aya::Pod + PartialEq,
    V: aya::Pod,
{
    for (k, v) in want {
        map.insert(k, v, 0)
            .map_err(|source| SensorError::Map { name, source })?;
    }
    let stale: Vec<K> = map
        .keys()
        .flatten()
        .filter(|k| !want.iter().any(|(w, _)| w == k))
        .collect();
    for k in stale {
        let _ = map.remove(&k);
    }
    Ok(())
}

fn pin_other(path: &Path, action: &'static str, e: &dyn std::error::Error) -> SensorError {
    let mut text = e.to_string();
    let mut src = e.source();
    while let Some(inner) = src {
        text.push_str(": ");
        text.push_str(&inner.to_string());
        src = inner.source();
    }
    SensorError::Pin {
        path: path.to_path_buf(),
        action,
        source: io::Error::other(text),
    }
}

fn getrandom(buf: &mut [u8]) -> io::Result<()> {
    use std::io::Read as _;
    fs::File::open("/dev/urandom")?.read_exact(buf)
}

fn take_map<T>(ebpf: &mut Ebpf, name: &'static str) -> Result<T, SensorError>
where
    T: TryFrom<aya::maps::Map, Error = MapError>,
{
    let map = ebpf
        .take_map(name)
        .ok_or(SensorError::MissingMap { name })?;
    T::try_from(map).map_err(|source| SensorError::Map { name, source })
}

fn probe_lsm(ebpf: &mut Ebpf, btf: &Btf) -> LsmSupport {
    let bpf_in_lsm_list = std::fs::read_to_string("/sys/kernel/security/lsm")
        .is_ok_and(|l| l.trim().split(',').any(|m| m == "bpf"));
    let result = (|| -> Result<(), String> {
        let prog: &mut Lsm = ebpf
            .program_mut("lsm_probe")
            .ok_or("probe program missing")?
            .try_into()
            .map_err(|e: ProgramError| e.to_string())?;
        prog.load("bprm_check_security", btf).map_err(|e| {
            let mut s = e.to_string();
            let mut src = std::error::Error::source(&e);
            while let Some(inner) = src {
                s.push_str(": ");
                s.push_str(&inner.to_string());
                src = inner.source();
            }
            s
        })
    })();
    match result {
        Ok(()) => LsmSupport {
            bpf_in_lsm_list,
            loadable: true,
            reason: None,
        },
        Err(err) => {
            let reason = if bpf_in_lsm_list {
                format!("the kernel refused to load a BPF LSM program ({err}); denied launches are killed by signal instead")
            } else {
                format!("`bpf` is not in /sys/kernel/security/lsm ({err}); denied launches are killed by signal instead")
            };
            LsmSupport {
                bpf_in_lsm_list,
                loadable: false,
                reason: Some(reason),
            }
        }
    }
}

/// Raw fd of the ring buffer, for readiness polling.
pub fn ring_fd(rb: &RingBuf<MapData>) -> i32 {
    rb.as_raw_fd()
}

/// Whether bpffs is mounted where pins would go.
pub fn bpffs_mounted() -> bool {
    Path::new("/sys/fs/bpf").exists()
        && std::fs::read_to_string("/proc/mounts").is_ok_and(|m| {
            m.lines()
                .any(|l| l.split_whitespace().nth(2) == Some("bpf"))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The tail of what the 6.18.44 verifier said when it rejected the exec program
    /// (shared/evidence/verifier-6.18.44-exec-rejected.txt).
    const REJECTED_TAIL: &str = "3673: (67) r5 <<= 32                  ; frame1: R5=0x1b00000000 cb
BPF program is too large. Processed 1000001 insn
verification time 4416067 usec
stack depth 352+0+0+0+0+48
processed 1000001 insns (limit 1000000) max_states_per_insn 179 total_states 17829 peak_states 1337 mark_read 0
";

    #[test]
    fn a_rejection_is_one_line_with_the_verifiers_verdict_and_where_the_log_is() {
        let last = last_verifier_line(REJECTED_TAIL).unwrap();
        assert_eq!(last, "BPF program is too large. Processed 1000001 insn");
        let e = SensorError::Rejected {
            name: "sched_process_exec",
            kernel: "6.18.44-fc-v1147".into(),
            last,
            log: Some(PathBuf::from(
                "/var/lib/mcpwatch/verifier-sched_process_exec.log",
            )),
        };
        let line = e.to_string();
        assert!(!line.contains('\n'), "{line}");
        for want in [
            "`sched_process_exec`",
            "Linux 6.18.44-fc-v1147",
            "BPF program is too large",
            "limit 1000000",
            "/var/lib/mcpwatch/verifier-sched_process_exec.log",
        ] {
            assert!(line.contains(want), "{want} in {line}");
        }
        assert_eq!(last_verifier_line("\n\n"), None);
    }

    #[test]
    fn the_kernel_tables_hold_every_security_relevant_name() {
        let ids = crate::consent::EnvIds::fixed();
        let names = secenv_names(ids.names());
        let filter = secenv_filter(0x1234);
        assert_eq!(names.len(), crate::event::SECURITY_ENV.len());
        assert!(crate::event::SECURITY_ENV.len() <= monitor_common::SECENV_MAX);
        let has = |first3: &[u8]| {
            let bit = monitor_common::envfilter_bit(
                u32::from_le_bytes([first3[0], first3[1], first3[2], 0]),
                0x1234,
            );
            filter.bits[(bit >> 6) as usize] & (1 << (bit & 63)) != 0
        };
        for (i, (k, v)) in names.iter().enumerate() {
            // The kernel's filter reads three bytes of NAME=, and compares NAME= whole.
            assert!(v.len >= 3 && v.len as usize <= SECENV_NAME_CAP, "{v:?}");
            assert_eq!(v.id as usize, i);
            assert_eq!(*k, monitor_common::secenv_name_hash(&v.name));
            assert!(has(&v.name));
        }
        // Every case of npm's family passes the filter; each family has one key.
        for first3 in [b"npm", b"NPM", b"nPm", b"LD_", b"GIT"] {
            assert!(has(first3), "{first3:?}");
        }
        let fams = secenv_families();
        assert_eq!(fams.len(), crate::event::SECURITY_ENV_FAMILIES.len());
        assert!(fams.len() <= monitor_common::SECENV_FAMILIES_MAX as usize);
        for (prefix, fold) in crate::event::SECURITY_ENV_FAMILIES {
            // The kernel looks a family up by 3 or 4 bytes as they are, or by 8
            // bytes folded to lower case.
            assert!(
                if *fold {
                    prefix.len() == 8 && prefix.bytes().all(|b| !b.is_ascii_uppercase())
                } else {
                    prefix.len() == 3 || prefix.len() == 4
                },
                "{prefix}"
            );
        }
    }

    #[test]
    fn host_path_lens_are_the_data_loc_lengths() {
        let mut k = PathKey::default();
        k.path[..9].copy_from_slice(b"/bin/host");
        let lens = host_path_lens(&[(k, 0)]);
        assert_eq!(lens[0], 1 << 10);
        assert_eq!(lens[1..], [0, 0, 0]);
    }
}
