//! Client side of the D-Bus API, used by the CLI: the proxy and the connection.
use zbus::{proxy, Connection};

#[proxy(
    interface = "org.mcpwatch1.Daemon",
    default_service = "org.mcpwatch1",
    default_path = "/org/mcpwatch1/Daemon"
)]
pub trait Daemon {
    fn track(&self, pid: u32, host: &str) -> zbus::Result<String>;
    fn status(&self) -> zbus::Result<String>;
    /// Consent records, per-host modes and policy problems (JSON).
    fn records(&self) -> zbus::Result<String>;
    /// The host profiles in effect (JSON array).
    fn profiles(&self) -> zbus::Result<String>;
    /// What approving the launch of event `event_id` would record (JSON).
    fn preview(&self, event_id: u64) -> zbus::Result<String>;
    /// What approving `argv` for `host` would record (JSON). `argv` is the exact
    /// bytes (`aay`); `cwd` empty = none.
    fn preview_command(&self, host: &str, argv: Vec<Vec<u8>>, cwd: &str) -> zbus::Result<String>;
    /// Approve the launch of event `event_id`. `scope`: `once`, `always`,
    /// `until=<RFC 3339>`, or empty for the daemon's default. Returns the record.
    fn approve(&self, event_id: u64, scope: &str, note: &str) -> zbus::Result<String>;
    /// Approve `argv` for `host` (arguments as for `preview_command`).
    fn approve_command(
        &self,
        host: &str,
        argv: Vec<Vec<u8>>,
        cwd: &str,
        scope: &str,
        note: &str,
    ) -> zbus::Result<String>;
    /// What approving server `server` of config `file` would record (JSON).
    fn preview_import(
        &self,
        host: &str,
        schema: &str,
        file: &str,
        server: &str,
        project: &str,
    ) -> zbus::Result<String>;
    /// Approve server `server` of config `file`; returns the record.
    #[allow(clippy::too_many_arguments)]
    fn approve_import(
        &self,
        host: &str,
        schema: &str,
        file: &str,
        server: &str,
        project: &str,
        scope: &str,
        note: &str,
    ) -> zbus::Result<String>;
    /// Remove a record; returns it.
    fn revoke(&self, record_id: u64) -> zbus::Result<String>;
    /// Launches held in `ask` mode, waiting for an answer (JSON array).
    fn pending(&self) -> zbus::Result<String>;
    /// Let a held launch run; `always` also approves it.
    fn allow(&self, pending_id: u64, always: bool) -> zbus::Result<String>;
    /// Kill a held launch.
    fn deny(&self, pending_id: u64) -> zbus::Result<String>;
    /// Set a host's mode (`monitor`, `ask`, `enforce`).
    fn set_mode(&self, host: &str, mode: &str) -> zbus::Result<String>;
    #[zbus(signal)]
    fn event(&self, json: &str) -> zbus::Result<()>;
}

/// Connect to the bus the daemon uses.
pub async fn connect() -> zbus::Result<Connection> {
    match std::env::var("DBUS_SYSTEM_BUS_ADDRESS") {
        Ok(addr) => {
            zbus::connection::Builder::address(addr.as_str())
                .build()
                .await
        }
        Err(_) => Connection::system().await,
    }
}
