//! Approvals: previewing and approving a launch, a command or a config file's
//! server, hashing what they bind (off the engine first: `prehash_*`), and adding
//! the record.
use std::{collections::BTreeMap, path::Path};

use serde_json::{json, Value};

use super::callers::{caller_environ, caller_path, failed, home_of, refused, ApiError, Caller};
use crate::{
    consent::{self},
    engine::core::Core,
    event::{Bytes, Event, Kind},
    hosts::{
        import::{parse_config_bytes, Entry, ImportContext},
        Schema,
    },
    policy::{
        record::{FileBinding, Record, RecordError, Scope, Source, ANY_UID},
        risk::risk_flags,
    },
    reply as api, resolve,
    sys::{clock, hash::HashCache},
};

impl Core {
    /// The event to approve: recent in memory, else searched in the log.
    fn launch_event(&self, id: u64) -> Result<Event, ApiError> {
        if let Some(e) = self.consent.find_recent(id) {
            return Ok(e.clone());
        }
        let all = crate::logfile::read_all(self.log.path(), |_| {})
            .map_err(|e| failed(format!("reading the log: {e}")))?;
        all.into_iter()
            .find(|e| e.id == id)
            .filter(|e| matches!(e.kind, Kind::Launch | Kind::Exec))
            .ok_or_else(|| failed(format!("no launch event with id {id}")))
    }

    /// The preview of a record built from a command or a config (no launch event):
    /// read as the caller would run it (their home for the risk flags).
    fn preview_for_caller(&self, r: &Record, caller: &Caller) -> api::Preview {
        let mut e = Event::new(Kind::Approve, 0, String::new());
        e.uid = Some(caller.uid);
        self.preview_of(&e, r)
    }

    fn preview_of(&self, e: &Event, r: &Record) -> api::Preview {
        let home = e.uid.and_then(home_of);
        let mut risks = risk_flags(&r.argv, home.as_deref());
        let cwd = r.cwd.as_ref().or(e.cwd.as_ref()).map(|c| {
            use std::os::unix::ffi::OsStrExt as _;
            std::path::PathBuf::from(std::ffi::OsStr::from_bytes(&c.0))
        });
        let uid = (r.uid != ANY_UID).then_some(r.uid).or(e.uid);
        risks.extend(resolve::binding_risks(
            Path::new(&r.exe.path),
            &r.argv,
            cwd.as_deref(),
            uid,
        ));
        let existing = self
            .consent
            .all_records()
            .find(|x| x.argv == r.argv && x.host == r.host && x.exe == r.exe && x.uid == r.uid)
            .map(|x| x.id);
        api::Preview {
            event_id: (e.id != 0).then_some(e.id),
            host: r.host.clone(),
            uid: r.uid,
            argv: r.argv.clone(),
            command: r.command_line(),
            exe: r.exe.clone(),
            script: r.script.clone(),
            resolved: r.resolved.clone(),
            cwd: r.cwd.clone(),
            env: r
                .env
                .iter()
                .filter_map(|(k, v)| Some((k.clone(), v.clone()?)))
                .collect::<BTreeMap<_, _>>(),
            risks: risks.into_iter().map(Into::into).collect(),
            existing_record: existing,
            source: None,
        }
    }

    pub(super) fn record_for_event(
        &mut self,
        id: u64,
        caller: &Caller,
        scope: Scope,
        note: String,
    ) -> Result<(Event, Record), ApiError> {
        let e = self.launch_event(id)?;
        let owner = e.uid.unwrap_or(u32::MAX);
        if caller.uid != 0 && caller.uid != owner {
            let msg = format!(
                "uid {} may not approve launch {id} of uid {owner}: users approve their own launches (root any)",
                caller.uid
            );
            return Err(self.record_refusal(caller, &msg));
        }
        let r = consent::record_from_event(
            &e,
            &mut self.consent.hashes,
            scope,
            note,
            Source::User(caller.uid),
            owner,
        )
        .map_err(|e| failed(e.to_string()))?;
        Ok((e, r))
    }

    pub fn api_preview(&mut self, id: u64, caller: &Caller) -> Result<Value, ApiError> {
        let (e, r) = self.record_for_event(id, caller, Scope::Always, String::new())?;
        Ok(api::to_json(&self.preview_of(&e, &r)))
    }

    pub fn api_approve(
        &mut self,
        id: u64,
        scope: &str,
        note: String,
        caller: &Caller,
    ) -> Result<Value, ApiError> {
        self.refuse_if_agent(caller, "approve")?;
        let scope = parse_scope(scope)?;
        let (_, r) = self.record_for_event(id, caller, scope, note)?;
        self.add_record(r, caller.uid, Some(id))
            .map(|v| api::to_json(&v))
    }

    /// Off the engine: hash the files approving launch event `e` binds (`Preview`,
    /// `Approve`, `Allow` with `always`), as [`Self::record_for_event`] will.
    pub fn prehash_event(e: &Event) -> HashCache {
        let mut hashes = HashCache::default();
        let _ = consent::record_from_event(
            e,
            &mut hashes,
            Scope::Always,
            String::new(),
            Source::User(0),
            0,
        );
        hashes
    }

    /// Off the engine (a blocking thread): hash the files `PreviewCommand` and
    /// `ApproveCommand` will bind, resolved exactly as they resolve them. The engine
    /// takes the result into its cache ([`HashCache::absorb`]) and then
    /// finds every file there, unless it changed since (then it hashes it again).
    pub fn prehash_command(
        host: &str,
        argv: Vec<Vec<u8>>,
        cwd: &str,
        caller: &Caller,
    ) -> HashCache {
        let mut hashes = HashCache::default();
        let _ = Self::command_record(
            &mut hashes,
            host,
            argv,
            cwd,
            Scope::Always,
            String::new(),
            caller,
        );
        hashes
    }

    /// Off the engine: hash the files `PreviewImport` and `ApproveImport` will
    /// bind (see [`Self::prehash_command`]).
    pub fn prehash_import(
        host: &str,
        schema: &str,
        file: &str,
        server: &str,
        project: &str,
        caller: &Caller,
    ) -> HashCache {
        let mut hashes = HashCache::default();
        let _ = Self::import_record(
            &mut hashes,
            host,
            schema,
            file,
            server,
            project,
            Scope::Always,
            String::new(),
            caller,
        );
        hashes
    }

    fn command_record(
        hashes: &mut HashCache,
        host: &str,
        argv: Vec<Vec<u8>>,
        cwd: &str,
        scope: Scope,
        note: String,
        caller: &Caller,
    ) -> Result<Record, ApiError> {
        if host.is_empty() {
            return Err(failed(
                "a host name is required (`--host NAME`, or `*` for any host)",
            ));
        }
        let argv: Vec<Bytes> = argv.into_iter().map(Bytes).collect();
        // Resolve the command with the caller's PATH: the user's environment is the
        // closest thing to the environment the host will launch it with.
        let path_var = caller_path(caller);
        let dir = (!cwd.is_empty()).then(|| Path::new(cwd));
        let (kargv, exe, script) =
            resolve::kernel_command(&argv, &path_var, dir).map_err(|e| failed(e.to_string()))?;
        let prog = resolve::env_binding(&exe, &kargv, Some(&path_var))
            .map_err(|e| failed(e.to_string()))?;
        let resolved = Self::bind_program(hashes, prog.as_ref())?;
        let (exe, script) = Self::bind_files(hashes, &exe, script.as_ref())?;
        let r = Record {
            id: 0,
            host: host.to_owned(),
            exe,
            script,
            resolved,
            argv: kargv,
            cwd: (!cwd.is_empty()).then(|| Bytes::from(cwd)),
            env: crate::event::SECURITY_ENV
                .iter()
                .map(|n| ((*n).to_owned(), None))
                .collect(),
            scope,
            source: Source::User(caller.uid),
            created: clock::now_rfc3339(),
            note,
            uid: if caller.uid == 0 { ANY_UID } else { caller.uid },
        };
        r.validate().map_err(|e| failed(e.to_string()))?;
        Ok(r)
    }

    /// The executable's (and script's) content binding, hashed now.
    fn bind_files(
        hashes: &mut HashCache,
        exe: &Path,
        script: Option<&resolve::ScriptRef>,
    ) -> Result<(FileBinding, Option<FileBinding>), ApiError> {
        let mut bind = |p: &Path, arg: Option<usize>| {
            hashes
                .get(p)
                .map(|(_, sha256)| FileBinding {
                    path: p.display().to_string(),
                    sha256,
                    arg,
                })
                .map_err(|e| failed(format!("{}: {e}", p.display())))
        };
        let exe = bind(exe, None)?;
        let script = script.map(|s| bind(&s.path, Some(s.arg))).transpose()?;
        Ok((exe, script))
    }

    /// The binding of the program `env` runs, hashed now.
    fn bind_program(
        hashes: &mut HashCache,
        prog: Option<&resolve::ScriptRef>,
    ) -> Result<Option<FileBinding>, ApiError> {
        let Some(p) = prog else { return Ok(None) };
        let (_, sha256) = hashes
            .get(&p.path)
            .map_err(|e| failed(format!("{}: {e}", p.path.display())))?;
        Ok(Some(FileBinding {
            path: p.path.display().to_string(),
            sha256,
            arg: Some(p.arg),
        }))
    }

    /// The record approving server `server` of the config `file` that `host` reads
    /// (in format `schema`): the daemon reads and resolves the file itself, as the
    /// caller's host would (the caller's home, environment and PATH; `project` is the
    /// workspace folder), so what is recorded is what the file says now.
    #[expect(
        clippy::too_many_arguments,
        reason = "the D-Bus call's arguments, passed through"
    )]
    fn import_record(
        hashes: &mut HashCache,
        host: &str,
        schema: &str,
        file: &str,
        server: &str,
        project: &str,
        scope: Scope,
        note: String,
        caller: &Caller,
    ) -> Result<Record, ApiError> {
        use std::os::unix::fs::MetadataExt as _;
        let schema: Schema = serde_json::from_value(json!(schema))
            .map_err(|_| failed(format!("unknown config format `{schema}`")))?;
        let path = Path::new(file);
        if !path.is_absolute() {
            return Err(failed(format!(
                "{file}: the config file must be an absolute path"
            )));
        }
        let meta = std::fs::metadata(path).map_err(|e| failed(format!("{file}: {e}")))?;
        // The daemon reads as root: a user imports from their own files, or from a
        // system config (root's, readable by all), nothing else.
        if caller.uid != 0
            && meta.uid() != caller.uid
            && !(meta.uid() == 0 && meta.mode() & 0o004 != 0)
        {
            return Err(refused(format!(
                "{file}: owned by uid {}, not yours (uid {}): import from your own config files",
                meta.uid(),
                caller.uid
            )));
        }
        let bytes = crate::hosts::HostFs::read(&crate::hosts::RealFs, path)
            .map_err(|e| failed(format!("{file}: {e}")))?;
        let env: BTreeMap<String, String> = caller_environ(caller)
            .into_iter()
            .filter_map(|(k, v)| Some((k, String::from_utf8(v).ok()?)))
            .collect();
        let ctx = ImportContext {
            home: home_of(caller.uid).map(Into::into).unwrap_or_default(),
            project: (!project.is_empty()).then(|| project.into()),
            env,
        };
        let servers = parse_config_bytes(schema, host, path, &bytes, &ctx)
            .map_err(|e| failed(e.to_string()))?;
        let imp = servers
            .into_iter()
            .find(|s| s.server == server)
            .ok_or_else(|| failed(format!("{file} has no server named `{server}`")))?;
        match &imp.entry {
            Entry::Local { .. } => {}
            Entry::Remote { url, .. } => {
                return Err(failed(format!(
                    "{server} is a remote server ({url}): nothing runs on this machine, nothing to approve"
                )))
            }
            Entry::Unimportable { reason } => {
                return Err(failed(format!("{server} cannot be imported: {reason}")))
            }
        }
        let cmd = crate::scan::resolve(&imp, &caller_path(caller))
            .map_err(|e| failed(format!("{server}: {e}")))?;
        let script = cmd
            .script
            .as_ref()
            .zip(cmd.script_arg)
            .map(|(p, arg)| resolve::ScriptRef {
                arg,
                path: p.into(),
            });
        let path_var = match cmd.env.get("PATH") {
            Some(Some(p)) => p.0.clone(),
            _ => caller_path(caller),
        };
        let prog = resolve::env_binding(Path::new(&cmd.exe), &cmd.argv, Some(&path_var))
            .map_err(|e| failed(e.to_string()))?;
        let resolved = Self::bind_program(hashes, prog.as_ref())?;
        let (exe, script) = Self::bind_files(hashes, Path::new(&cmd.exe), script.as_ref())?;
        let r = Record {
            id: 0,
            host: host.to_owned(),
            exe,
            script,
            resolved,
            argv: cmd.argv,
            cwd: cmd.cwd.map(|c| Bytes::from(c.as_str())),
            env: cmd.env,
            scope,
            source: Source::Import {
                file: file.to_owned(),
                server: server.to_owned(),
            },
            created: clock::now_rfc3339(),
            note,
            uid: if caller.uid == 0 { ANY_UID } else { caller.uid },
        };
        r.validate().map_err(|e| failed(e.to_string()))?;
        Ok(r)
    }

    /// What `approve --from-config` would record for one server (see
    /// [`Self::import_record`]), with its risk flags. JSON, as `PreviewCommand`.
    pub fn api_preview_import(
        &mut self,
        host: &str,
        schema: &str,
        file: &str,
        server: &str,
        project: &str,
        caller: &Caller,
    ) -> Result<Value, ApiError> {
        let r = Self::import_record(
            &mut self.consent.hashes,
            host,
            schema,
            file,
            server,
            project,
            Scope::Always,
            String::new(),
            caller,
        )?;
        let mut v = self.preview_for_caller(&r, caller);
        v.source = Some(r.source.to_string());
        Ok(api::to_json(&v))
    }

    /// Approve one server of a config file (see [`Self::import_record`]); the
    /// record's source is `import:FILE#SERVER`.
    #[expect(
        clippy::too_many_arguments,
        reason = "the D-Bus call's arguments, passed through"
    )]
    pub fn api_approve_import(
        &mut self,
        host: &str,
        schema: &str,
        file: &str,
        server: &str,
        project: &str,
        scope: &str,
        note: String,
        caller: &Caller,
    ) -> Result<Value, ApiError> {
        self.refuse_if_agent(caller, "approve")?;
        let scope = parse_scope(scope)?;
        let r = Self::import_record(
            &mut self.consent.hashes,
            host,
            schema,
            file,
            server,
            project,
            scope,
            note,
            caller,
        )?;
        self.add_record(r, caller.uid, None)
            .map(|v| api::to_json(&v))
    }

    pub fn api_preview_command(
        &mut self,
        host: &str,
        argv: Vec<Vec<u8>>,
        cwd: &str,
        caller: &Caller,
    ) -> Result<Value, ApiError> {
        let r = Self::command_record(
            &mut self.consent.hashes,
            host,
            argv,
            cwd,
            Scope::Always,
            String::new(),
            caller,
        )?;
        Ok(api::to_json(&self.preview_for_caller(&r, caller)))
    }

    pub fn api_approve_command(
        &mut self,
        host: &str,
        argv: Vec<Vec<u8>>,
        cwd: &str,
        scope: &str,
        note: String,
        caller: &Caller,
    ) -> Result<Value, ApiError> {
        self.refuse_if_agent(caller, "approve")?;
        let scope = parse_scope(scope)?;
        let r = Self::command_record(
            &mut self.consent.hashes,
            host,
            argv,
            cwd,
            scope,
            note,
            caller,
        )?;
        self.add_record(r, caller.uid, None)
            .map(|v| api::to_json(&v))
    }

    pub(super) fn add_record(
        &mut self,
        r: Record,
        caller_uid: u32,
        from_event: Option<u64>,
    ) -> Result<api::RecordView, ApiError> {
        let imported = matches!(r.source, Source::Import { .. });
        let id = self
            .consent
            .store
            .add(r)
            .map_err(|e| failed(format!("saving the consent store: {e}")))?;
        self.sync_kernel();
        // A record imported from a project's config: watch that project too.
        if imported {
            self.refresh_config_watch();
        }
        let r = self
            .consent
            .store
            .get(id)
            .cloned()
            .ok_or_else(|| failed("record vanished"))?;
        let mut e = self.new_event(Kind::Approve);
        e.record = Some(id);
        e.uid = Some(caller_uid);
        e.host = None;
        e.argv = Some(r.argv.clone());
        e.message = Some(format!(
            "record {id} approved by uid {caller_uid}{} for host {}, scope {}: {}",
            from_event.map_or_else(String::new, |ev| format!(" from event {ev}")),
            r.host,
            r.scope,
            r.command_line()
        ));
        self.record(&e);
        Ok(self.record_view(&r))
    }
}

pub(super) fn parse_scope(s: &str) -> Result<Scope, ApiError> {
    if s.is_empty() {
        return Ok(Scope::Always);
    }
    s.parse().map_err(|e: RecordError| failed(e.to_string()))
}
