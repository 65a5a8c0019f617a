//! What the API handlers share with the engine.
use std::sync::{Arc, Mutex};

use tokio::sync::broadcast;

use super::{core::UserCounters, status::Status, task::Engine};
use crate::{config::Config, sys::hash::HashCache};

/// What the API handlers share: the way to the engine (which owns the core), and
/// what they read without it.
pub struct Shared {
    pub engine: Engine,
    /// Executable hashes, kept by the hashing stage outside the engine: hashing a
    /// large binary the first time must not hold up the API (Track, Status).
    pub hashes: Arc<Mutex<HashCache>>,
    pub config: Config,
    pub bcast: broadcast::Sender<Arc<str>>,
    pub counters: Arc<UserCounters>,
}

impl Shared {
    /// The status, from the engine; `None` once it has stopped.
    pub async fn status(&self) -> Option<Status> {
        let cfg = self.config.clone();
        let mut st = self.engine.call(move |core| core.status(&cfg)).await?;
        let h = self.hashes.lock().expect("hash lock");
        st.hash_cache = (h.hits, h.misses);
        Some(st)
    }
}
