//! The mode a host runs in.

use serde::{Deserialize, Serialize};

/// What the daemon does about a launch by a host.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Record and alert.
    #[default]
    Monitor,
    /// Hold the new process (SIGSTOP at exec) until the user answers; no answer in
    /// time, or no daemon to ask, is a deny.
    Ask,
    /// Unapproved launches never run (SIGKILL at exec).
    Enforce,
}

impl Mode {
    /// The kernel's encoding (`monitor_common::mode`).
    pub fn kernel(self) -> u32 {
        match self {
            Mode::Monitor => monitor_common::mode::MONITOR,
            Mode::Ask => monitor_common::mode::ASK,
            Mode::Enforce => monitor_common::mode::ENFORCE,
        }
    }

    /// How strict: monitor < ask < enforce.
    pub fn strictness(self) -> u8 {
        match self {
            Mode::Monitor => 0,
            Mode::Ask => 1,
            Mode::Enforce => 2,
        }
    }

    /// The stricter of two modes (`enforce` > `ask` > `monitor`). Used where two
    /// administrators' files disagree: neither can lower what the other asked for.
    #[must_use]
    pub fn stricter(self, other: Mode) -> Mode {
        if other.strictness() > self.strictness() {
            other
        } else {
            self
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Monitor => "monitor",
            Mode::Ask => "ask",
            Mode::Enforce => "enforce",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stricter_orders_enforce_over_ask_over_monitor() {
        use Mode::{Ask, Enforce, Monitor};
        for (a, b, want) in [
            (Monitor, Ask, Ask),
            (Ask, Monitor, Ask),
            (Ask, Enforce, Enforce),
            (Enforce, Monitor, Enforce),
            (Monitor, Monitor, Monitor),
        ] {
            assert_eq!(a.stricter(b), want, "{a:?} {b:?}");
        }
    }
}
