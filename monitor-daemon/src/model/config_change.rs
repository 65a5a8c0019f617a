//! What the config watcher reports about a host's MCP config file.

use serde::{Deserialize, Serialize};

/// One change, as the `config_change` event carries it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfigChange {
    pub host: String,
    pub file: String,
    /// The server concerned; `None` for the file as a whole (unparsable, removed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server: Option<String>,
    /// `added`, `removed`, `changed`, `file_removed`, `file_broken`, `file_fixed`.
    pub change: String,
    /// What changed, one line each, `OLD → NEW` (values of variables other than the
    /// security-relevant ones are not shown: configs carry secrets).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub diff: Vec<String>,
}
