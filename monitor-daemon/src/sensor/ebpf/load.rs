//! Loading the programs with this kernel's layout, filling the maps, attaching the
//! programs and pinning their links (or handing them to a keeper).
use std::{collections::BTreeSet, fs, io, path::PathBuf};

use aya::{
    maps::{Array, HashMap, MapData, MapError},
    programs::{links::FdLink, BtfTracePoint, Lsm, TracePoint},
    Btf, Ebpf, EbpfLoader,
};
use monitor_common::{
    names, EnvFilter, ExeKey, KernelConfig, NameKey, PathKey, SecEnvName, Settings, TailKey,
};

use super::{
    lsm::probe_lsm,
    maps::{host_path_lens, secenv_families, secenv_filter, secenv_names, sync_map},
    pins::{check_pinned_maps, generation, pin_io, pin_other},
    verifier::{load_error, program_error},
    Attachment, KernelHosts, PinReport, Sensor, SensorError, SensorOptions, LSM_PROGRAM, OBJECT,
    PROGRAMS,
};

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
        // Always: config entries' commands are added to `HOST_PATHS` as the daemon
        // finds them (`set_entry_paths`).
        kcfg.host_paths_enabled = 1;
        kcfg.host_names_enabled = u32::from(!keys.names.is_empty());
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
        let keeper_found = crate::sensor::keeper::find(&opts.state_dir);
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
        let mut host_names: HashMap<MapData, NameKey, u32> =
            take_map(&mut ebpf, names::HOST_NAMES)?;
        sync_map(&mut host_names, names::HOST_NAMES, &keys.names)?;
        let mut tails: HashMap<MapData, TailKey, u32> =
            take_map(&mut ebpf, names::HOST_SCRIPT_TAILS)?;
        sync_map(&mut tails, names::HOST_SCRIPT_TAILS, &keys.tails)?;
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
            host_script_keys: keys.paths.clone(),
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
                sensor.held = crate::sensor::keeper::copy_fds(k)
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
                match crate::sensor::keeper::pin_fd(*fd, &path) {
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
                let k = crate::sensor::keeper::spawn(&opts.state_dir, &generation, &fds)
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
                crate::sensor::keeper::stop_state(&k);
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
            let before = crate::sensor::keeper::own_link_fds();
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
            let fd = crate::sensor::keeper::own_link_fds()
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
