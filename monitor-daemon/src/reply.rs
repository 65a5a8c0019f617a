//! The replies of the D-Bus API (`org.mcpwatch1`): what the daemon sends and what
//! `mcpwatch` reads, one type for both sides.
//!
//! Each reply travels as JSON text. The daemon serialises through
//! [`serde_json::Value`] ([`to_json`]), whose objects keep their keys sorted, so the
//! order of the fields below does not change the text; optional fields are
//! `null` when absent unless marked as left out.
use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

use crate::{
    event::Bytes,
    model::Mode,
    policy::record::{FileBinding, Record, RecordId},
};

/// A reply as the JSON value the daemon sends (object keys sorted).
pub fn to_json<T: Serialize>(reply: &T) -> Value {
    serde_json::to_value(reply).unwrap_or(Value::Null)
}

/// One risk flag of a command (`policy::risk::Risk`), as sent.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RiskFlag {
    pub code: String,
    pub detail: String,
}

/// `Preview`, `PreviewCommand`, `PreviewImport`: the record an approval would
/// create, with the risk flags a person must see first.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Preview {
    /// The launch event previewed; `null` for a command or a config entry.
    pub event_id: Option<u64>,
    pub host: String,
    pub uid: u32,
    pub argv: Vec<Bytes>,
    pub command: String,
    pub exe: FileBinding,
    pub script: Option<FileBinding>,
    pub resolved: Option<FileBinding>,
    pub cwd: Option<Bytes>,
    /// The variables set (a record's "must be absent" names are not listed).
    pub env: BTreeMap<String, Bytes>,
    pub risks: Vec<RiskFlag>,
    /// A record that already approves exactly this.
    pub existing_record: Option<RecordId>,
    /// `PreviewImport` only: the record's source (`import:FILE#SERVER`); left out
    /// otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
}

/// A consent record with its state (`Records`, `Approve*`, `Allow --always`):
/// the record's own fields, then `state` and, when there is one, `state_reason`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordView {
    pub record: Record,
    /// `active`, `stale`, `expired` or `unknown`.
    pub state: String,
    pub state_reason: Option<String>,
}

impl Serialize for RecordView {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut v = serde_json::to_value(&self.record).map_err(serde::ser::Error::custom)?;
        if let Value::Object(m) = &mut v {
            m.insert("state".into(), Value::from(self.state.clone()));
            if let Some(reason) = &self.state_reason {
                m.insert("state_reason".into(), Value::from(reason.clone()));
            }
        }
        v.serialize(s)
    }
}

/// The record is read strictly (its unknown fields are an error, as in the store);
/// a missing `state` reads as `unknown`.
impl<'de> Deserialize<'de> for RecordView {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let mut m = serde_json::Map::deserialize(d)?;
        let state = m
            .remove("state")
            .and_then(|s| s.as_str().map(str::to_owned))
            .unwrap_or_else(|| "unknown".into());
        let state_reason = m
            .remove("state_reason")
            .and_then(|s| s.as_str().map(str::to_owned));
        let record = serde_json::from_value(Value::Object(m)).map_err(serde::de::Error::custom)?;
        Ok(Self {
            record,
            state,
            state_reason,
        })
    }
}

/// A host's effective mode, whether managed policy locks it, and who set it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModeView {
    pub mode: Mode,
    pub locked: bool,
    pub source: String,
}

/// `Records`: every record, the per-host modes, the store's and managed policy's
/// problems, and the managed deny list.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Records {
    pub records: Vec<RecordView>,
    pub modes: BTreeMap<String, ModeView>,
    pub problems: Vec<String>,
    pub deny: Vec<String>,
}

/// One launch `ask` mode holds (`Pending` is a list of them).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PendingLaunch {
    /// The launch event's id: `mcpwatch allow ID`.
    pub id: u64,
    pub pid: u32,
    pub host: String,
    pub uid: u32,
    pub argv: Vec<Bytes>,
    pub command: String,
    pub risks: Vec<RiskFlag>,
    pub held_secs: f64,
    pub timeout_secs: u64,
}

/// `Allow`: whether the held process was continued, and the record `--always`
/// created (`null` without it). The daemon sends a [`RecordView`]; a reader that
/// only names the record reads a [`RecordRef`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Allowed<R = RecordView> {
    pub pid: u32,
    pub continued: bool,
    pub record: Option<R>,
}

/// A record in a reply, by its id only: every other field, including those of a
/// newer daemon, is ignored.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
pub struct RecordRef {
    pub id: RecordId,
}

/// `Deny`: whether the held process was killed (false: it had exited).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Denied {
    pub pid: u32,
    pub killed: bool,
}

/// `SetMode`: the host's mode before and after.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModeSet {
    pub host: String,
    pub mode: Mode,
    pub previous: Mode,
}

/// `Status` as `mcpwatch status` reads it: the fields it shows, in the shapes the
/// daemon sends (`engine::status::Status`, whose sensor parts stay in `sensor/`).
///
/// Read leniently, so the CLI works against an older or newer daemon: every field
/// may be missing (or `null`), unknown fields are ignored. A missing number stays
/// `None` and is shown as `null`, as the CLI showed it before this type.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
pub struct StatusView {
    pub version: Option<String>,
    pub pid: Option<u64>,
    pub started: Option<String>,
    /// The default mode (`every other host`).
    pub mode: Option<String>,
    pub log_file: Option<String>,
    pub events: Option<u64>,
    pub lost: Option<StatusLost>,
    /// The kernel's counters by name (`tracked_full` among them).
    pub kernel: Option<BTreeMap<String, u64>>,
    pub tracked_kernel: Option<u64>,
    pub tracked_user: Option<u64>,
    pub hosts: Option<Vec<StatusHost>>,
    pub host_keys: Option<StatusHostKeys>,
    pub attachments: Option<Vec<StatusAttachment>>,
    pub programs: Option<Vec<StatusProgram>>,
    pub records_active: Option<u64>,
    pub records_total: Option<u64>,
    pub pending: Option<u64>,
    /// Per host: its effective mode and whether managed policy locks it.
    pub modes: Option<BTreeMap<String, StatusMode>>,
    pub pins: Option<StatusPins>,
    pub caller_pinning: Option<String>,
    pub policy_problems: Option<Vec<String>>,
    pub enforcement: Option<Vec<String>>,
}

/// `lost` (`event::LostCounts`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
pub struct StatusLost {
    pub ringbuf: Option<u64>,
    pub queue: Option<u64>,
    pub broadcast: Option<u64>,
    pub decode: Option<u64>,
}

/// One of `hosts` (`engine::status::HostStatus`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
pub struct StatusHost {
    pub pid: Option<u64>,
    pub name: Option<String>,
    /// `executable`, `script`, `name`, `run` or `adopted` (newer daemons).
    pub recognised_by: Option<String>,
    pub filename: Option<String>,
    pub exe: Option<String>,
}

/// `host_keys` (`engine::status::HostKeys`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
pub struct StatusHostKeys {
    pub executables: Option<u64>,
    pub script_paths: Option<u64>,
    pub configs_watched: Option<u64>,
}

/// One of `attachments` (`sensor::ebpf::Attachment`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
pub struct StatusAttachment {
    pub program: Option<String>,
    pub hook: Option<String>,
    pub method: Option<String>,
}

/// One of `programs` (`sensor::ebpf::ProgramStats`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
pub struct StatusProgram {
    pub name: Option<String>,
    pub verified_insns: Option<u64>,
    pub run_cnt: Option<u64>,
    pub run_time_ns: Option<u64>,
}

/// One of `modes` ([`ModeView`], read without its `Mode` so that a mode this build
/// does not know still shows).
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
pub struct StatusMode {
    pub mode: Option<String>,
    pub locked: Option<bool>,
}

/// `pins` (`sensor::ebpf::PinReport`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
pub struct StatusPins {
    pub dir: Option<String>,
    pub links_held_by: Option<String>,
    pub keeper_pid: Option<u64>,
    pub reused_programs: Option<bool>,
}

#[cfg(test)]
mod tests {
    //! Each reply against the `json!` value the daemon built before the types
    //! existed: the same text, and read back to the same value.
    use serde::de::DeserializeOwned;
    use serde_json::json;

    use super::*;
    use crate::policy::{
        record::{Scope, Source},
        risk::Risk,
    };

    fn binding(path: &str) -> FileBinding {
        FileBinding {
            path: path.to_owned(),
            sha256: "ab".repeat(32),
            arg: None,
        }
    }

    fn record() -> Record {
        let mut env = BTreeMap::new();
        env.insert("LD_PRELOAD".to_owned(), None);
        env.insert("NODE_OPTIONS".to_owned(), Some(Bytes::from("--x")));
        Record {
            id: 7,
            host: "claude-code".to_owned(),
            exe: binding("/usr/bin/node"),
            script: Some(FileBinding {
                arg: Some(1),
                ..binding("/srv/server.js")
            }),
            resolved: None,
            argv: vec![Bytes::from("node"), Bytes::from("/srv/server.js")],
            cwd: Some(Bytes(b"/srv/\xff".to_vec())),
            env,
            scope: Scope::Until("2026-12-01T00:00:00Z".to_owned()),
            source: Source::User(1000),
            created: "2026-11-27T12:05:39.025147323Z".to_owned(),
            note: String::new(),
            uid: 1000,
        }
    }

    /// `reply` serialises to the text of `old` and reads back as itself.
    fn same<T: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug>(reply: &T, old: &Value) {
        let text = to_json(reply).to_string();
        assert_eq!(text, old.to_string());
        let back: T = serde_json::from_str(&text).unwrap();
        assert_eq!(&back, reply);
    }

    fn risks() -> Vec<Risk> {
        crate::policy::risk::risk_flags(
            &[
                Bytes::from("sh"),
                Bytes::from("-c"),
                Bytes::from("curl x | sh"),
            ],
            None,
        )
    }

    #[test]
    fn preview_is_the_old_preview() {
        let r = record();
        let risks = risks();
        assert!(!risks.is_empty());
        let env: BTreeMap<String, Bytes> = r
            .env
            .iter()
            .filter_map(|(k, v)| Some((k.clone(), v.clone()?)))
            .collect();
        let mut p = Preview {
            event_id: Some(12),
            host: r.host.clone(),
            uid: r.uid,
            argv: r.argv.clone(),
            command: r.command_line(),
            exe: r.exe.clone(),
            script: r.script.clone(),
            resolved: r.resolved.clone(),
            cwd: r.cwd.clone(),
            env: env.clone(),
            risks: risks.iter().cloned().map(Into::into).collect(),
            existing_record: None,
            source: None,
        };
        let mut old = json!({
            "event_id": Some(12),
            "host": r.host,
            "uid": r.uid,
            "argv": r.argv,
            "command": r.command_line(),
            "exe": r.exe,
            "script": r.script,
            "resolved": r.resolved,
            "cwd": r.cwd,
            "env": env,
            "risks": risks,
            "existing_record": None::<u64>,
        });
        same(&p, &old);
        // PreviewImport adds the source; nothing else does.
        p.source = Some(r.source.to_string());
        old["source"] = json!(r.source.to_string());
        same(&p, &old);
    }

    #[test]
    fn record_view_is_the_record_with_its_state() {
        let r = record();
        let mut old = serde_json::to_value(&r).unwrap();
        old["state"] = json!("active");
        let mut view = RecordView {
            record: r.clone(),
            state: "active".to_owned(),
            state_reason: None,
        };
        same(&view, &old);
        old["state"] = json!("stale");
        old["state_reason"] = json!("the script changed");
        view.state = "stale".to_owned();
        view.state_reason = Some("the script changed".to_owned());
        same(&view, &old);
        // A record field this build does not know is an error, as in the store;
        // a missing state reads as unknown.
        let mut bad = old.clone();
        bad["bogus"] = json!(1);
        assert!(serde_json::from_value::<RecordView>(bad).is_err());
        let bare: RecordView = serde_json::from_value(serde_json::to_value(&r).unwrap()).unwrap();
        assert_eq!((bare.state.as_str(), bare.state_reason), ("unknown", None));
    }

    #[test]
    fn records_modes_and_pending_are_the_old_ones() {
        let r = record();
        let view = RecordView {
            record: r.clone(),
            state: "active".to_owned(),
            state_reason: None,
        };
        let mut modes = BTreeMap::new();
        modes.insert(
            "cursor".to_owned(),
            ModeView {
                mode: Mode::Enforce,
                locked: true,
                source: "managed policy".to_owned(),
            },
        );
        modes.insert(
            "claude-code".to_owned(),
            ModeView {
                mode: Mode::Monitor,
                locked: false,
                source: "default".to_owned(),
            },
        );
        let mut old_modes = serde_json::Map::new();
        for (h, m, locked, source) in [
            ("cursor", Mode::Enforce, true, "managed policy"),
            ("claude-code", Mode::Monitor, false, "default"),
        ] {
            old_modes.insert(
                h.to_owned(),
                json!({"mode": m.as_str(), "locked": locked, "source": source}),
            );
        }
        let mut old_record = serde_json::to_value(&r).unwrap();
        old_record["state"] = json!("active");
        let deny = vec!["nc".to_owned()];
        let problems = vec!["consent store: line 3: bad".to_owned()];
        same(
            &Records {
                records: vec![view],
                modes,
                problems: problems.clone(),
                deny: deny.clone(),
            },
            &json!({
                "records": vec![old_record],
                "modes": Value::Object(old_modes),
                "problems": problems,
                "deny": deny,
            }),
        );

        let risks = risks();
        let argv = vec![
            Bytes::from("sh"),
            Bytes::from("-c"),
            Bytes::from("curl x | sh"),
        ];
        let pending = vec![PendingLaunch {
            id: 41,
            pid: 4242,
            host: "cursor".to_owned(),
            uid: 1000,
            argv: argv.clone(),
            command: crate::event::shell_join(&argv),
            risks: risks.iter().cloned().map(Into::into).collect(),
            held_secs: 1.5,
            timeout_secs: 60,
        }];
        same(
            &pending,
            &Value::Array(vec![json!({
                "id": 41, "pid": 4242, "host": "cursor", "uid": 1000,
                "argv": argv, "command": crate::event::shell_join(&argv),
                "risks": risks,
                "held_secs": 1.5, "timeout_secs": 60,
            })]),
        );
    }

    #[test]
    fn allow_deny_and_set_mode_are_the_old_ones() {
        let r = record();
        let mut rec = serde_json::to_value(&r).unwrap();
        rec["state"] = json!("active");
        let view = RecordView {
            record: r,
            state: "active".to_owned(),
            state_reason: None,
        };
        same(
            &Allowed {
                pid: 9,
                continued: true,
                record: Some(view),
            },
            &json!({"pid": 9, "continued": true, "record": Some(rec.clone())}),
        );
        // The CLI reads the record's id only, whatever else it carries.
        let mut newer = json!({"pid": 9, "continued": true, "record": Some(rec.clone())});
        newer["record"]["some_future_field"] = json!(1);
        let read: Allowed<RecordRef> = serde_json::from_value(newer).unwrap();
        assert_eq!(read.record, Some(RecordRef { id: 7 }));
        same(
            &Allowed::<RecordView> {
                pid: 9,
                continued: false,
                record: None,
            },
            &json!({"pid": 9, "continued": false, "record": None::<Value>}),
        );
        same(
            &Denied {
                pid: 9,
                killed: false,
            },
            &json!({"pid": 9, "killed": false}),
        );
        same(
            &ModeSet {
                host: "cursor".to_owned(),
                mode: Mode::Ask,
                previous: Mode::Monitor,
            },
            &json!({"host": "cursor", "mode": Mode::Ask.as_str(), "previous": Mode::Monitor.as_str()}),
        );
    }
}
