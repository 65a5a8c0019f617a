//! The records and modes as the API shows them, revoking a record and setting a
//! host's mode.
use std::collections::BTreeMap;

use serde_json::Value;

use super::callers::{failed, refused, ApiError, Caller};
use crate::{
    consent::{RecordState, MANAGED_ID_BASE},
    engine::core::Core,
    event::Kind,
    model::Mode,
    policy::record::{Record, RecordId, ANY_HOST},
    reply as api,
};

impl Core {
    pub fn record_json(&self, r: &Record) -> Value {
        api::to_json(&self.record_view(r))
    }

    pub fn record_view(&self, r: &Record) -> api::RecordView {
        let (state, reason) = self
            .consent
            .states
            .get(&r.id)
            .map_or(("unknown", None), RecordState::label);
        api::RecordView {
            record: r.clone(),
            state: state.to_owned(),
            state_reason: reason,
        }
    }

    pub fn api_records(&self) -> Value {
        api::to_json(&api::Records {
            records: self
                .consent
                .all_records()
                .map(|r| self.record_view(r))
                .collect(),
            modes: self.mode_views(),
            problems: self.policy_problems(),
            deny: self.consent.managed.deny.clone(),
        })
    }

    /// Every host's effective mode, whether it is locked, and who set it: the
    /// profiles, hosts named by managed policy and hosts the user set a mode for.
    pub fn modes_json(&self) -> Value {
        api::to_json(&self.mode_views())
    }

    fn mode_views(&self) -> BTreeMap<String, api::ModeView> {
        let default = self.config.defaults.mode;
        let mut modes = BTreeMap::new();
        let mut names: Vec<&String> = self.host_names.iter().collect();
        names.extend(self.consent.managed.hosts.keys().filter(|h| *h != ANY_HOST));
        names.extend(self.consent.store.modes().keys());
        names.sort();
        names.dedup();
        for h in names {
            let (m, locked, source) = self.consent.mode_of(h, default);
            modes.insert(
                h.clone(),
                api::ModeView {
                    mode: m,
                    locked,
                    source,
                },
            );
        }
        modes
    }

    /// The consent store's and the managed policy's problems (their last good
    /// copies are in force).
    pub fn policy_problems(&self) -> Vec<String> {
        self.consent
            .store_problem
            .iter()
            .chain(&self.consent.managed_problems)
            .cloned()
            .collect()
    }

    pub fn api_revoke(&mut self, id: RecordId, caller: &Caller) -> Result<Value, ApiError> {
        self.refuse_if_agent(caller, "revoke")?;
        if id >= MANAGED_ID_BASE {
            return Err(refused(format!("record {id} comes from managed policy; only an administrator can remove it (edit the policy file)")));
        }
        let r = self
            .consent
            .store
            .get(id)
            .cloned()
            .ok_or_else(|| failed(format!("no record {id}")))?;
        if caller.uid != 0 && r.uid != caller.uid {
            let msg = format!(
                "uid {} may not revoke record {id} of uid {}",
                caller.uid, r.uid
            );
            return Err(self.record_refusal(caller, &msg));
        }
        self.consent
            .store
            .remove(id)
            .map_err(|e| failed(format!("saving the consent store: {e}")))?;
        self.sync_kernel();
        let mut e = self.new_event(Kind::Revoke);
        e.record = Some(id);
        e.uid = Some(caller.uid);
        e.message = Some(format!(
            "record {id} revoked by uid {}: {}",
            caller.uid,
            r.command_line()
        ));
        self.record(&e);
        Ok(serde_json::to_value(&r).unwrap_or(Value::Null))
    }

    pub fn api_set_mode(
        &mut self,
        host: &str,
        mode: &str,
        caller: &Caller,
    ) -> Result<Value, ApiError> {
        self.refuse_if_agent(caller, "mode")?;
        let m: Mode = match mode {
            "monitor" => Mode::Monitor,
            "ask" => Mode::Ask,
            "enforce" => Mode::Enforce,
            _ => {
                return Err(failed(format!(
                    "unknown mode `{mode}`: monitor, ask or enforce"
                )))
            }
        };
        if caller.uid != 0 {
            let msg = format!(
                "uid {} may not change modes: a host's mode applies to every user of this machine; ask root",
                caller.uid
            );
            return Err(self.record_refusal(caller, &msg));
        }
        if let Err(locked) = crate::policy::check_mode_change(host, &self.consent.managed) {
            return Err(self.record_refusal(caller, &locked.to_string()));
        }
        let previous = self.consent.mode_of(host, self.config.defaults.mode).0;
        self.consent
            .store
            .set_mode(host, m)
            .map_err(|e| failed(format!("saving the consent store: {e}")))?;
        // Stored by name: a host with no id yet gets its mode when it registers.
        let _ = self.profile_id(host);
        self.sync_modes();
        let mut e = self.new_event(Kind::Mode);
        e.uid = Some(caller.uid);
        e.message = Some(format!(
            "host {host}: {} -> {} (by uid {})",
            previous.as_str(),
            m.as_str(),
            caller.uid
        ));
        self.record(&e);
        Ok(api::to_json(&api::ModeSet {
            host: host.to_owned(),
            mode: m,
            previous,
        }))
    }
}
