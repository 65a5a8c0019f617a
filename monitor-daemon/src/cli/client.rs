//! The CLI's connection to the daemon: one D-Bus call at a time with a timeout,
//! and what a failed call means for the exit status.
use std::{fmt, future::Future, process::ExitCode, time::Duration};

use anyhow::Context as _;
use serde_json::Value;
use zbus::DBusError as _;

use crate::api::client::{self, DaemonProxy};

pub(crate) fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}

pub(crate) async fn proxy() -> anyhow::Result<DaemonProxy<'static>> {
    let bus = std::env::var("DBUS_SYSTEM_BUS_ADDRESS").unwrap_or_else(|_| "the system bus".into());
    let conn = client::connect()
        .await
        .with_context(|| format!("cannot connect to D-Bus ({bus})"))?;
    let proxy = DaemonProxy::new(&conn)
        .await
        .context("creating the D-Bus proxy")?;
    Ok(proxy)
}

pub(crate) fn daemon_down_hint(err: &anyhow::Error) -> String {
    let text = format!("{err:#}");
    // The bus answers for a daemon that is not there: say that, not "refused".
    let absent = ["ServiceUnknown", "NameHasNoOwner"]
        .iter()
        .any(|n| text.contains(n));
    let bus = std::env::var("DBUS_SYSTEM_BUS_ADDRESS").unwrap_or_else(|_| "the system bus".into());
    if absent {
        format!(
            "mcpwatchd is not running on {bus} (nobody owns org.mcpwatch1)\nthe mcpwatch daemon is not reachable: start it with `cargo xtask run` (or `mcpwatchd`) as root"
        )
    } else {
        format!(
            "{text}\nthe mcpwatch daemon is not reachable: start it with `cargo xtask run` (or `mcpwatchd`) as root"
        )
    }
}

/// How long a consent call may take (approving hashes the executable and script).
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

const ACCESS_DENIED: &str = "org.freedesktop.DBus.Error.AccessDenied";

/// Why a daemon call did not give an answer; decides the exit status.
#[derive(Debug)]
pub(crate) enum CallError {
    /// No bus, or nobody owns org.mcpwatch1: exit 1.
    Unreachable(anyhow::Error),
    /// The daemon refused (`AccessDenied`): exit 4, with its message.
    Refused(String),
    /// Any other failure: exit 1.
    Failed(String),
}

impl fmt::Display for CallError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CallError::Unreachable(e) => write!(f, "{e:#}"),
            CallError::Refused(m) => write!(f, "refused: {m}"),
            CallError::Failed(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for CallError {}

impl CallError {
    pub(crate) fn report(&self) -> ExitCode {
        match self {
            CallError::Unreachable(e) => {
                eprintln!("mcpwatch: {}", daemon_down_hint(e));
                ExitCode::from(1)
            }
            CallError::Refused(m) => {
                eprintln!("refused: {m}");
                ExitCode::from(4)
            }
            CallError::Failed(m) => {
                eprintln!("mcpwatch: error: {m}");
                ExitCode::from(1)
            }
        }
    }
}

/// A D-Bus error reply, by its error name.
fn classify_reply(method: &str, name: &str, desc: Option<&str>) -> CallError {
    let msg = desc.unwrap_or("no message").to_owned();
    match name.strip_prefix("org.freedesktop.DBus.Error.") {
        _ if name == ACCESS_DENIED => CallError::Refused(msg),
        Some("ServiceUnknown" | "NameHasNoOwner" | "Disconnected") => {
            CallError::Unreachable(anyhow::anyhow!("{name}: {msg}"))
        }
        Some("UnknownMethod" | "UnknownInterface" | "UnknownObject") => CallError::Failed(format!(
            "this mcpwatchd has no {method} method (is it older than this mcpwatch?): {msg}"
        )),
        Some("InvalidArgs" | "Failed") => CallError::Failed(msg),
        _ => CallError::Failed(format!("{method} failed: {name}: {msg}")),
    }
}

/// A failed call, by what went wrong.
fn classify(method: &str, err: zbus::Error) -> CallError {
    match &err {
        zbus::Error::MethodError(name, desc, _) => classify_reply(method, name, desc.as_deref()),
        zbus::Error::FDO(e) => classify_reply(method, &e.name(), e.description()),
        zbus::Error::InputOutput(_)
        | zbus::Error::Connection(..)
        | zbus::Error::Handshake(_)
        | zbus::Error::Address(_) => CallError::Unreachable(err.into()),
        _ => CallError::Failed(format!("{method} failed: {err}")),
    }
}

/// A daemon answer: the JSON text as sent and parsed.
pub(crate) struct Answer {
    pub(crate) raw: String,
    pub(crate) json: Value,
}

impl Answer {
    /// The answer as `method`'s typed reply ([`crate::reply`]).
    pub(crate) fn reply<T: serde::de::DeserializeOwned>(
        &self,
        method: &str,
    ) -> Result<T, CallError> {
        T::deserialize(&self.json).map_err(|e| {
            CallError::Failed(format!("the daemon sent invalid JSON for {method}: {e}"))
        })
    }
}

/// A connection to the daemon for one command (a few calls, maybe a question to
/// the user in between).
pub(crate) struct Daemon {
    rt: tokio::runtime::Runtime,
    pub(crate) proxy: DaemonProxy<'static>,
}

impl Daemon {
    pub(crate) fn connect() -> anyhow::Result<Self> {
        let rt = runtime()?;
        let proxy = rt.block_on(proxy()).map_err(CallError::Unreachable)?;
        Ok(Self { rt, proxy })
    }

    pub(crate) fn call(
        &self,
        method: &str,
        call: impl Future<Output = zbus::Result<String>>,
    ) -> Result<Answer, CallError> {
        let raw = self
            .rt
            .block_on(async { tokio::time::timeout(CALL_TIMEOUT, call).await })
            .map_err(|_| {
                CallError::Failed(format!(
                    "the daemon did not answer {method} within {} s",
                    CALL_TIMEOUT.as_secs()
                ))
            })?
            .map_err(|e| classify(method, e))?;
        let json = serde_json::from_str(&raw).map_err(|e| {
            CallError::Failed(format!("the daemon sent invalid JSON for {method}: {e}"))
        })?;
        Ok(Answer { raw, json })
    }
}

/// The scope argument of Approve: empty for the daemon's default (always).
pub(crate) fn scope_arg(once: bool, until: Option<&str>) -> String {
    match (once, until) {
        (true, _) => "once".to_owned(),
        (false, Some(t)) => format!("until={t}"),
        (false, None) => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use std::io;

    use zbus::fdo;

    use super::*;

    #[test]
    fn daemon_errors_map_to_exit_statuses() {
        let refused = classify(
            "Approve",
            fdo::Error::AccessDenied("called from inside claude-code's process tree".into()).into(),
        );
        assert!(
            matches!(&refused, CallError::Refused(m) if m == "called from inside claude-code's process tree"),
            "{refused:?}"
        );
        assert_eq!(refused.report(), ExitCode::from(4));

        let unknown = classify(
            "Revoke",
            fdo::Error::InvalidArgs("no record 9".into()).into(),
        );
        assert!(
            matches!(&unknown, CallError::Failed(m) if m == "no record 9"),
            "{unknown:?}"
        );
        assert_eq!(unknown.report(), ExitCode::from(1));

        let absent = classify(
            "Records",
            fdo::Error::ServiceUnknown("The name org.mcpwatch1 was not provided".into()).into(),
        );
        assert!(matches!(absent, CallError::Unreachable(_)), "{absent:?}");

        let old = classify_reply(
            "Pending",
            "org.freedesktop.DBus.Error.UnknownMethod",
            Some("Unknown method 'Pending'"),
        );
        assert!(matches!(&old, CallError::Failed(m) if m.contains("no Pending method")));
        assert!(matches!(
            classify_reply("Approve", ACCESS_DENIED, None),
            CallError::Refused(_)
        ));
        let io = classify(
            "Records",
            zbus::Error::InputOutput(std::sync::Arc::new(io::Error::other("broken pipe"))),
        );
        assert!(matches!(io, CallError::Unreachable(_)));
    }

    #[test]
    fn refusals_survive_anyhow() {
        let err: anyhow::Error = CallError::Refused("locked by managed policy".into()).into();
        assert!(matches!(
            err.downcast_ref::<CallError>(),
            Some(CallError::Refused(_))
        ));
    }
}
