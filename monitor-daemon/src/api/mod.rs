//! D-Bus control interface (zbus): `org.mcpwatch1` on the system bus, or on the bus
//! named by `DBUS_SYSTEM_BUS_ADDRESS` when set (tests run a private bus).
//!
//! Interface `org.mcpwatch1.Daemon` at `/org/mcpwatch1/Daemon`:
//! - `Track(u pid, s host) -> s`: make `pid` a tracked host; its next exec is the
//!   host itself. A process already in a tracked tree stays there (it cannot move
//!   itself out of its host's tree); the returned string then says so, else empty. Only the process itself (or root) may ask: the caller's pid and uid
//!   come from the bus daemon, not from the message.
//! - `Status() -> s`: JSON status (counters, programs, attach methods, LSM support).
//! - signal `Event(s json)`: the events a live listener acts on (daemon start/stop,
//!   host start, adoption, launch, lost), each as its JSON line; the log has all.
use std::sync::{atomic::Ordering, Arc};

use tokio::sync::broadcast::error::RecvError;
use tracing::{info, warn};
use zbus::{fdo, interface, message::Header, object_server::SignalEmitter, Connection};

use crate::engine::{callers::Caller, core::Core, shared::Shared};

pub const BUS_NAME: &str = "org.mcpwatch1";
pub const OBJECT_PATH: &str = "/org/mcpwatch1/Daemon";
pub const INTERFACE: &str = "org.mcpwatch1.Daemon";

pub struct DaemonApi {
    shared: Arc<Shared>,
}

/// Caller credentials as the bus daemon reports them, and the caller's process
/// pinned now: by the bus's `ProcessFD` (the process that connected, whatever
/// happened to its pid since) when the bus gives one, else by a pidfd opened from
/// the bus's pid as the call arrives.
async fn caller(conn: &Connection, hdr: &Header<'_>) -> fdo::Result<Caller> {
    let sender = hdr
        .sender()
        .ok_or_else(|| fdo::Error::AccessDenied("no sender".into()))?;
    let dbus = fdo::DBusProxy::new(conn).await?;
    let creds = dbus
        .get_connection_credentials(sender.clone().into())
        .await?;
    let (Some(pid), Some(uid)) = (creds.process_id(), creds.unix_user_id()) else {
        return Err(fdo::Error::AccessDenied(
            "the bus did not name the caller's process and user".into(),
        ));
    };
    let mut ident = crate::engine::callers::identify(pid, creds.into_process_fd().map(Into::into));
    // Without the bus's pidfd, the pid may have been recycled since the process
    // that connected exited: the process seen when the connection appeared must
    // be the one there now.
    if let Some(id) = ident.as_ref().filter(|id| !id.from_bus) {
        let first = connections()
            .lock()
            .expect("connections lock")
            .get(sender.as_str())
            .copied();
        if first.is_some_and(|(p, start)| p != pid || start != id.start) {
            warn!(
                caller_pid = pid,
                sender = %sender,
                "the process that opened this connection is gone and its pid now names another"
            );
            ident = None;
        }
    }
    Ok(Caller { pid, uid, ident })
}

/// The process (pid, start time) each bus connection had when it appeared, seen
/// through `NameOwnerChanged` while the daemon runs.
fn connections() -> &'static std::sync::Mutex<std::collections::HashMap<String, (u32, u64)>> {
    static MAP: std::sync::OnceLock<
        std::sync::Mutex<std::collections::HashMap<String, (u32, u64)>>,
    > = std::sync::OnceLock::new();
    MAP.get_or_init(Default::default)
}

/// Connections remembered at most (the bus bounds connections per user; past
/// this, new ones are pinned at their first call only).
const CONNECTIONS_MAX: usize = 65_536;

/// Note the process of every connection as it appears on the bus, and forget it
/// when it goes.
async fn watch_connections(conn: Connection) {
    use futures_util::StreamExt as _;
    let Ok(dbus) = fdo::DBusProxy::new(&conn).await else {
        return;
    };
    let Ok(mut changes) = dbus.receive_name_owner_changed().await else {
        warn!("cannot watch bus connections: callers are pinned at their call only");
        return;
    };
    while let Some(sig) = changes.next().await {
        let Ok(args) = sig.args() else { continue };
        let name = args.name().to_string();
        if !name.starts_with(':') {
            continue;
        }
        match args.new_owner().as_ref() {
            Some(_) => {
                let Ok(creds) = dbus.get_connection_credentials(args.name().clone()).await else {
                    continue;
                };
                let Some(pid) = creds.process_id() else {
                    continue;
                };
                // Gone already: no later call over this connection can be its own
                // (0 is no process's start time).
                let start = crate::sys::procfs::live_start(pid).unwrap_or(0);
                let mut map = connections().lock().expect("connections lock");
                if map.len() < CONNECTIONS_MAX {
                    map.insert(name, (pid, start));
                }
            }
            None => {
                connections()
                    .lock()
                    .expect("connections lock")
                    .remove(&name);
            }
        }
    }
}

#[interface(name = "org.mcpwatch1.Daemon")]
impl DaemonApi {
    /// Track `pid` as a host named `host`; the process then execs the host program.
    async fn track(
        &self,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
        pid: u32,
        host: String,
    ) -> fdo::Result<String> {
        let from = caller(conn, &hdr).await?;
        if from.uid != 0 && from.pid != pid {
            warn!(
                caller_pid = from.pid,
                caller_uid = from.uid,
                pid,
                "Track refused: a process may only ask to track itself"
            );
            return Err(fdo::Error::AccessDenied(format!(
                "pid {} may not ask to track pid {pid}: a process can only track itself (root can track any)",
                from.pid
            )));
        }
        if host.is_empty() || host.len() > 64 || host.chars().any(|c| c.is_control() || c == '/') {
            return Err(fdo::Error::InvalidArgs(format!(
                "invalid host name {host:?}"
            )));
        }
        if !std::path::Path::new(&format!("/proc/{pid}")).exists() {
            return Err(fdo::Error::InvalidArgs(format!("no process {pid}")));
        }
        let notice = self
            .on_engine(move |core| core.track_run(pid, &host))
            .await?
            .map_err(|e| fdo::Error::Failed(format!("{e:#}")))?;
        Ok(notice.unwrap_or_default())
    }

    /// JSON status document (see README, `mcpwatch status --json`).
    async fn status(&self) -> fdo::Result<String> {
        let st = self.shared.status().await.ok_or_else(stopping)?;
        serde_json::to_string(&st).map_err(|e| fdo::Error::Failed(e.to_string()))
    }

    /// Consent records, host modes (and who set them), problems. JSON.
    async fn records(&self) -> fdo::Result<String> {
        self.on_engine(|core| core.api_records().to_string()).await
    }

    /// The host profiles in effect (built-in and the config's `[[host]]`), as a
    /// JSON array: what `mcpwatch scan` reads configs for.
    async fn profiles(&self) -> fdo::Result<String> {
        self.on_engine(|core| serde_json::to_string(&core.profiles).unwrap_or_else(|_| "[]".into()))
            .await
    }

    /// What `approve EVENT_ID` would approve, with its risk flags. JSON.
    async fn preview(
        &self,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
        event_id: u64,
    ) -> fdo::Result<String> {
        let from = caller(conn, &hdr).await?;
        let pre = self.prehash_event(event_id).await;
        self.on_engine(move |core| {
            core.consent.hashes.absorb(pre);
            answer(core.api_preview(event_id, &from))
        })
        .await?
    }

    /// What `approve --host H -- CMD…` would approve (resolved as the kernel will
    /// see it, with the caller's PATH), with its risk flags. JSON.
    async fn preview_command(
        &self,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
        host: String,
        argv: Vec<Vec<u8>>,
        cwd: String,
    ) -> fdo::Result<String> {
        let from = caller(conn, &hdr).await?;
        let pre = off_engine({
            let (host, argv, cwd, from) = (host.clone(), argv.clone(), cwd.clone(), from.clone());
            move || Core::prehash_command(&host, argv, &cwd, &from)
        })
        .await;
        self.on_engine(move |core| {
            core.consent.hashes.absorb(pre);
            answer(core.api_preview_command(&host, argv, &cwd, &from))
        })
        .await?
    }

    /// Approve exactly what launch event `event_id` showed. Refused from inside a
    /// tracked tree, and for another user's launch unless root.
    async fn approve(
        &self,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
        event_id: u64,
        scope: String,
        note: String,
    ) -> fdo::Result<String> {
        let from = caller(conn, &hdr).await?;
        let pre = self.prehash_event(event_id).await;
        self.on_engine(move |core| {
            core.consent.hashes.absorb(pre);
            answer(core.api_approve(event_id, &scope, note, &from))
        })
        .await?
    }

    /// Approve a command for a host.
    #[allow(clippy::too_many_arguments)]
    async fn approve_command(
        &self,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
        host: String,
        argv: Vec<Vec<u8>>,
        cwd: String,
        scope: String,
        note: String,
    ) -> fdo::Result<String> {
        let from = caller(conn, &hdr).await?;
        let pre = off_engine({
            let (host, argv, cwd, from) = (host.clone(), argv.clone(), cwd.clone(), from.clone());
            move || Core::prehash_command(&host, argv, &cwd, &from)
        })
        .await;
        self.on_engine(move |core| {
            core.consent.hashes.absorb(pre);
            answer(core.api_approve_command(&host, argv, &cwd, &scope, note, &from))
        })
        .await?
    }

    /// What `approve --from-config` would record for server `server` of config
    /// `file` (format `schema`, read by `host`; `project` the workspace folder or
    /// empty). The daemon reads and resolves the file itself. JSON.
    #[allow(clippy::too_many_arguments)]
    async fn preview_import(
        &self,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
        host: String,
        schema: String,
        file: String,
        server: String,
        project: String,
    ) -> fdo::Result<String> {
        let from = caller(conn, &hdr).await?;
        let pre = import_hashes(&host, &schema, &file, &server, &project, &from).await;
        self.on_engine(move |core| {
            core.consent.hashes.absorb(pre);
            answer(core.api_preview_import(&host, &schema, &file, &server, &project, &from))
        })
        .await?
    }

    /// Approve one server of a config file, as `preview_import` shows it; the
    /// record's source is `import:FILE#SERVER`.
    #[allow(clippy::too_many_arguments)]
    async fn approve_import(
        &self,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
        host: String,
        schema: String,
        file: String,
        server: String,
        project: String,
        scope: String,
        note: String,
    ) -> fdo::Result<String> {
        let from = caller(conn, &hdr).await?;
        let pre = import_hashes(&host, &schema, &file, &server, &project, &from).await;
        self.on_engine(move |core| {
            core.consent.hashes.absorb(pre);
            answer(core.api_approve_import(
                &host, &schema, &file, &server, &project, &scope, note, &from,
            ))
        })
        .await?
    }

    async fn revoke(
        &self,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
        record_id: u64,
    ) -> fdo::Result<String> {
        let from = caller(conn, &hdr).await?;
        self.on_engine(move |core| answer(core.api_revoke(record_id, &from)))
            .await?
    }

    /// Launches held by ask mode. JSON array.
    async fn pending(&self) -> fdo::Result<String> {
        self.on_engine(|core| core.api_pending().to_string()).await
    }

    /// Continue a held launch (and with `always`, approve it for good).
    async fn allow(
        &self,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
        pending_id: u64,
        always: bool,
    ) -> fdo::Result<String> {
        let from = caller(conn, &hdr).await?;
        let pre = if always {
            self.prehash_event(pending_id).await
        } else {
            crate::sys::hash::HashCache::default()
        };
        self.on_engine(move |core| {
            core.consent.hashes.absorb(pre);
            answer(core.api_allow(pending_id, always, &from))
        })
        .await?
    }

    /// Kill a held launch.
    async fn deny(
        &self,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
        pending_id: u64,
    ) -> fdo::Result<String> {
        let from = caller(conn, &hdr).await?;
        self.on_engine(move |core| answer(core.api_deny(pending_id, &from)))
            .await?
    }

    /// Set a host's mode (root only; refused when managed policy locks it).
    async fn set_mode(
        &self,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
        host: String,
        mode: String,
    ) -> fdo::Result<String> {
        let from = caller(conn, &hdr).await?;
        self.on_engine(move |core| answer(core.api_set_mode(&host, &mode, &from)))
            .await?
    }

    #[zbus(signal)]
    async fn event(emitter: &SignalEmitter<'_>, json: &str) -> zbus::Result<()>;
}

impl DaemonApi {
    /// The files approving launch event `id` binds, hashed off the engine (when the
    /// engine still has the event in memory; else it reads the log and hashes).
    async fn prehash_event(&self, id: u64) -> crate::sys::hash::HashCache {
        let Ok(Some(e)) = self
            .on_engine(move |core| core.consent.find_recent(id).cloned())
            .await
        else {
            return crate::sys::hash::HashCache::default();
        };
        off_engine(move || Core::prehash_event(&e)).await
    }

    /// Run `f` on the engine (after what is queued before it).
    async fn on_engine<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Core) -> R + Send + 'static,
    ) -> fdo::Result<R> {
        self.shared.engine.call(f).await.ok_or_else(stopping)
    }
}

/// Slow work of a command (hashing the files it binds) on a blocking thread, so the
/// engine does not do it while kernel events wait.
async fn off_engine(
    f: impl FnOnce() -> crate::sys::hash::HashCache + Send + 'static,
) -> crate::sys::hash::HashCache {
    tokio::task::spawn_blocking(f).await.unwrap_or_default()
}

/// The hashes of what importing server `server` of config `file` binds, computed
/// off the engine (as `preview_import` and `approve_import` both need them).
async fn import_hashes(
    host: &str,
    schema: &str,
    file: &str,
    server: &str,
    project: &str,
    from: &Caller,
) -> crate::sys::hash::HashCache {
    let (host, schema, file, server, project, from) = (
        host.to_owned(),
        schema.to_owned(),
        file.to_owned(),
        server.to_owned(),
        project.to_owned(),
        from.clone(),
    );
    off_engine(move || Core::prehash_import(&host, &schema, &file, &server, &project, &from)).await
}

fn stopping() -> fdo::Error {
    fdo::Error::Failed("mcpwatchd is stopping".into())
}

/// A consent operation's result as the D-Bus answer: JSON, `AccessDenied`, or `Failed`.
fn answer(r: Result<serde_json::Value, crate::engine::callers::ApiError>) -> fdo::Result<String> {
    match r {
        Ok(v) => Ok(v.to_string()),
        Err(crate::engine::callers::ApiError::Refused(msg)) => Err(fdo::Error::AccessDenied(msg)),
        Err(crate::engine::callers::ApiError::Failed(msg)) => Err(fdo::Error::Failed(msg)),
    }
}

/// Connect, own the name, serve the interface.
pub async fn serve(shared: Arc<Shared>) -> anyhow::Result<Connection> {
    use anyhow::Context as _;
    let builder = match std::env::var("DBUS_SYSTEM_BUS_ADDRESS") {
        Ok(addr) => zbus::connection::Builder::address(addr.as_str()),
        Err(_) => zbus::connection::Builder::system(),
    };
    let conn = builder
        .name(BUS_NAME)
        .serve_at(OBJECT_PATH, DaemonApi { shared })
        .build()
        .await
        .context("connecting to the system D-Bus and owning org.mcpwatch1")?;
    info!(bus_name = BUS_NAME, path = OBJECT_PATH, "D-Bus API ready");
    tokio::spawn(watch_connections(conn.clone()));
    // Does the bus pin callers itself (`ProcessFD`)? Asked about our own name.
    let pins = match (conn.unique_name(), fdo::DBusProxy::new(&conn).await) {
        (Some(name), Ok(dbus)) => dbus
            .get_connection_credentials(name.clone().into())
            .await
            .is_ok_and(|c| c.process_fd().is_some()),
        _ => false,
    };
    crate::engine::callers::set_caller_pinning(pins);
    if !pins {
        warn!(
            "the bus gives no ProcessFD: callers are pinned by a pidfd opened from the bus's pid when their call arrives; a pid recycled between a caller's exit and its call could pass for it (dbus-broker, or a dbus-daemon with ProcessFD, closes this)"
        );
    }
    Ok(conn)
}

/// Re-emit recorded events as D-Bus signals. A listener slower than the daemon
/// loses events from this stream (never from the log); those are counted.
pub async fn forward_events(conn: Connection, shared: Arc<Shared>) {
    let mut rx = shared.bcast.subscribe();
    let Ok(emitter) = SignalEmitter::new(&conn, OBJECT_PATH) else {
        return;
    };
    loop {
        match rx.recv().await {
            Ok(line) => {
                if let Err(e) = DaemonApi::event(&emitter, &line).await {
                    warn!(error = %e, "emitting Event signal");
                }
            }
            Err(RecvError::Lagged(n)) => {
                shared
                    .counters
                    .broadcast_lag
                    .fetch_add(n, Ordering::Relaxed);
            }
            Err(RecvError::Closed) => return,
        }
    }
}

/// Client side, used by the CLI.
pub mod client;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::callers::ApiError;

    #[test]
    fn refusals_are_access_denied_and_failures_failed() {
        let refused = answer(Err(ApiError::Refused("no".into())));
        assert!(matches!(refused, Err(fdo::Error::AccessDenied(m)) if m == "no"));
        let failed = answer(Err(ApiError::Failed("broke".into())));
        assert!(matches!(failed, Err(fdo::Error::Failed(m)) if m == "broke"));
        let ok = answer(Ok(serde_json::json!({"pid": 1})));
        assert_eq!(ok.expect("ok"), r#"{"pid":1}"#);
    }
}
