//! Consent: what the user (or the administrator) approved, and how strictly each
//! host is held to it. Pure decisions plus the root-owned files they live in; no
//! eBPF, no D-Bus: the daemon turns these into map entries and verdicts.
//!
//! - [`record`]: a consent record (one exact approved command) and its checks;
//! - [`risk`]: the dangerous patterns shown before every approval (MCP spec
//!   2025-11-25, Security Best Practices, "Local MCP Server Compromise");
//! - [`store`]: the consent store, `records.json`, saved atomically with a
//!   last-good copy so a crash or a bad hand edit never loses approvals;
//! - [`managed`]: administrator policy in `/etc/mcpwatch/policy.d/*.toml`.

pub mod managed;
pub mod record;
pub mod risk;
pub mod store;

use std::path::PathBuf;

use crate::model::Mode;
use managed::{HostPolicy, Managed};

/// What mode a host runs in, and whether managed policy locks it.
///
/// A managed lock wins over everything the user chose: the host runs in the
/// managed mode, or in the config default when the locking file names no mode
/// (the lock then freezes the default; a choice the user stored before the lock
/// no longer applies). Unlocked: the user's choice (from the store's modes or the
/// config), else the managed mode, else the config default.
///
/// Managed policy for `host` is its own `[hosts.NAME]` entry combined with
/// `[hosts."*"]` (the stricter mode, either lock): see [`Managed::host_policy`].
pub fn effective_mode(
    host: &str,
    user_choice: Option<Mode>,
    managed: &Managed,
    default: Mode,
) -> (Mode, bool) {
    match managed.host_policy(host) {
        Some(HostPolicy {
            mode, lock: true, ..
        }) => (mode.unwrap_or(default), true),
        Some(HostPolicy { mode, .. }) => (user_choice.or(mode).unwrap_or(default), false),
        None => (user_choice.unwrap_or(default), false),
    }
}

/// A host's mode managed policy locks: no user may change it. The text names the
/// policy file, so the user knows whom to ask.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("the mode of host `{host}` is locked by managed policy {}", .policy.display())]
pub struct ModeLocked {
    pub host: String,
    pub policy: PathBuf,
}

/// Whether a user may change `host`'s mode.
pub fn check_mode_change(host: &str, managed: &Managed) -> Result<(), ModeLocked> {
    match managed.host_policy(host) {
        Some(policy) if policy.lock => Err(ModeLocked {
            host: host.to_owned(),
            policy: policy.file.clone(),
        }),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn managed_with(host: &str, mode: Option<Mode>, lock: bool) -> Managed {
        let mut hosts = BTreeMap::new();
        hosts.insert(
            host.to_owned(),
            HostPolicy {
                mode,
                lock,
                file: PathBuf::from("/etc/mcpwatch/policy.d/10-org.toml"),
            },
        );
        Managed {
            hosts,
            ..Managed::default()
        }
    }

    #[test]
    fn without_managed_policy_the_user_choice_wins_over_the_default() {
        let none = Managed::default();
        assert_eq!(
            effective_mode("cursor", None, &none, Mode::Monitor),
            (Mode::Monitor, false)
        );
        assert_eq!(
            effective_mode("cursor", Some(Mode::Enforce), &none, Mode::Monitor),
            (Mode::Enforce, false)
        );
        assert_eq!(check_mode_change("cursor", &none), Ok(()));
    }

    #[test]
    fn unlocked_managed_mode_is_a_default_the_user_can_change() {
        let m = managed_with("cursor", Some(Mode::Ask), false);
        assert_eq!(
            effective_mode("cursor", None, &m, Mode::Monitor),
            (Mode::Ask, false)
        );
        assert_eq!(
            effective_mode("cursor", Some(Mode::Monitor), &m, Mode::Monitor),
            (Mode::Monitor, false)
        );
        // Another host is not affected.
        assert_eq!(
            effective_mode("zed", None, &m, Mode::Monitor),
            (Mode::Monitor, false)
        );
        assert_eq!(check_mode_change("cursor", &m), Ok(()));
    }

    #[test]
    fn locked_managed_mode_overrides_the_user_and_refuses_changes() {
        let m = managed_with("cursor", Some(Mode::Enforce), true);
        assert_eq!(
            effective_mode("cursor", Some(Mode::Monitor), &m, Mode::Monitor),
            (Mode::Enforce, true)
        );
        let err = check_mode_change("cursor", &m).unwrap_err().to_string();
        assert_eq!(
            err,
            "the mode of host `cursor` is locked by managed policy /etc/mcpwatch/policy.d/10-org.toml"
        );
        assert_eq!(check_mode_change("zed", &m), Ok(()));
    }

    #[test]
    fn lock_without_a_mode_freezes_the_config_default() {
        let m = managed_with("cursor", None, true);
        assert_eq!(
            effective_mode("cursor", Some(Mode::Enforce), &m, Mode::Ask),
            (Mode::Ask, true)
        );
    }

    #[test]
    fn wildcard_host_policy_applies_to_every_host_and_cannot_be_weakened() {
        let mut m = managed_with("*", Some(Mode::Enforce), true);
        m.hosts.insert(
            "zed".to_owned(),
            HostPolicy {
                mode: Some(Mode::Ask),
                lock: false,
                file: PathBuf::from("/etc/mcpwatch/policy.d/20-zed.toml"),
            },
        );
        assert_eq!(
            effective_mode("cursor", Some(Mode::Monitor), &m, Mode::Monitor),
            (Mode::Enforce, true)
        );
        assert!(check_mode_change("cursor", &m).is_err());
        // A host's own, weaker entry does not undo the wildcard's lock.
        assert_eq!(
            effective_mode("zed", Some(Mode::Monitor), &m, Mode::Monitor),
            (Mode::Enforce, true)
        );
        assert!(check_mode_change("zed", &m).is_err());

        // An unlocked wildcard mode combines with a host's own mode: the stricter.
        let mut m = managed_with("*", Some(Mode::Ask), false);
        m.hosts.insert(
            "zed".to_owned(),
            HostPolicy {
                mode: Some(Mode::Monitor),
                lock: false,
                file: PathBuf::from("/etc/mcpwatch/policy.d/20-zed.toml"),
            },
        );
        assert_eq!(
            effective_mode("zed", None, &m, Mode::Monitor),
            (Mode::Ask, false)
        );
    }
}
