//! The engine: one task owns the [`Core`] and takes everything it does from one
//! channel, in order: kernel event batches (from the hashing stage) and API
//! commands (closures with their reply), plus a 500 ms tick for losses, held
//! launches, policy reloads and watched configs. Nothing else touches the core,
//! so there is no lock between the D-Bus handlers and the event path.
//!
//! ```text
//! ring buffer → reader thread → queue → hashing stage ─┐
//!                                    (urgent first)    ├─→ engine channel → engine task (Core)
//!                      D-Bus handlers (Engine::call) ──┘
//! ```
//!
//! Slow work stays off the engine where it can:
//! - execs are hashed by the hashing stage before their batch is sent;
//! - `Preview*`, `Approve*` and `Allow --always` have the files they bind resolved
//!   and hashed on a blocking thread first (`Core::prehash_*`); the engine takes
//!   the hashes into its cache and only `stat`s the files again;
//! - the 30 s rediscovery of MCP config files (the walk over every home) runs on a
//!   blocking thread and comes back as a command.
//!
//! What still runs on the engine, and can take a moment:
//! - `sync_kernel` re-hashes a record's file whose identity changed (an upgrade):
//!   from the 2 s re-check in `tick_consent`, from an approve or revoke, and from
//!   `explain_miss` (a launch of an approved command that the kernel did not
//!   match); `sync_deny` likewise for the deny list's files;
//! - `verify_held` hashes a held launch's script as the launch sees it (the launch
//!   waits for that answer);
//! - `Approve` of an event no longer in memory reads the whole log to find it;
//! - `ApproveImport` reads and parses the config file again, and rediscovers the
//!   config files in place (so the imported project is watched before the reply);
//! - writing the consent store (approve, revoke, mode, a used `once`), reading
//!   policy files that changed, polling the watched configs' metadata each second.
use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use tokio::sync::{mpsc, oneshot};
use tracing::error;

use crate::{
    engine::core::Core,
    event::raw::RawEvent,
    sys::hash::{HashCache, HashResult},
};

/// Work for the engine, in the order it arrives.
pub enum Msg {
    /// Kernel events in ring order; each exec with its executable's hash.
    Events(Vec<(RawEvent, Option<HashResult>)>),
    /// An API command; it sends its own reply.
    Command(Box<dyn FnOnce(&mut Core) + Send>),
    /// Stop: the engine hands its core back.
    Stop,
}

/// Messages waiting for the engine at most. Each event message is a batch of up to
/// 4096 events: kept small so that a slow engine backs the hashing stage up into
/// the reader's bounded queue, where loss is counted, instead of buffering without
/// bound here. Senders wait (nothing is dropped on this channel).
pub const CHANNEL_CAPACITY: usize = 8;

/// The way to the engine.
#[derive(Clone)]
pub struct Engine {
    tx: mpsc::Sender<Msg>,
}

impl Engine {
    pub fn channel() -> (Self, mpsc::Receiver<Msg>) {
        let (tx, rx) = mpsc::channel(CHANNEL_CAPACITY);
        (Self { tx }, rx)
    }

    /// Run `f` on the engine, after what is queued before it; `None` once the
    /// engine has stopped.
    pub async fn call<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Core) -> R + Send + 'static,
    ) -> Option<R> {
        let (reply, answer) = oneshot::channel();
        let cmd = Box::new(move |core: &mut Core| {
            let _ = reply.send(f(core));
        });
        self.tx.send(Msg::Command(cmd)).await.ok()?;
        answer.await.ok()
    }

    pub async fn send(&self, msg: Msg) -> bool {
        self.tx.send(msg).await.is_ok()
    }
}

/// The engine task: runs until [`Msg::Stop`] (or every sender is gone), then
/// returns the core for the shutdown sequence.
pub async fn run(mut core: Core, mut rx: mpsc::Receiver<Msg>) -> Core {
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    loop {
        tokio::select! {
            msg = rx.recv() => match msg {
                None | Some(Msg::Stop) => break,
                Some(Msg::Events(batch)) => {
                    for (ev, h) in batch {
                        core.process(ev, h);
                    }
                    if let Err(e) = core.log.flush() {
                        error!(error = %anyhow::Error::from(e), "flushing the event log");
                    }
                }
                Some(Msg::Command(f)) => f(&mut core),
            },
            _ = tick.tick() => {
                core.check_losses();
                core.tick_consent();
                core.tick_configs();
                let _ = core.log.flush();
            }
        }
    }
    core
}

/// The hashing stage between the reader's queue and the engine: takes what is
/// queued (up to 4096 events), sends the urgent ones (a held launch resumed behind
/// our back) at once, hashes the execs of the rest (a first hash of a 100 MB binary
/// takes a moment; the engine meanwhile answers the API), then sends them, in order.
pub async fn hash_stage(
    mut rx: mpsc::Receiver<RawEvent>,
    hashes: Arc<Mutex<HashCache>>,
    engine: Engine,
) {
    while let Some(ev) = rx.recv().await {
        let mut batch = vec![ev];
        while batch.len() < 4096 {
            match rx.try_recv() {
                Ok(ev) => batch.push(ev),
                Err(_) => break,
            }
        }
        let (urgent, batch): (Vec<_>, Vec<_>) = batch
            .into_iter()
            .partition(|ev| matches!(ev, RawEvent::HoldBypass(_)));
        if !urgent.is_empty()
            && !engine
                .send(Msg::Events(
                    urgent.into_iter().map(|ev| (ev, None)).collect(),
                ))
                .await
        {
            return;
        }
        // The cache is locked per exec, not per batch: `status` reads its counters
        // and waits at most for one file's hash.
        let ready: Vec<_> = tokio::task::block_in_place(|| {
            batch
                .into_iter()
                .map(|ev| {
                    let hash = match &ev {
                        RawEvent::Exec(x) => Some(hashes.lock().expect("hash lock").hash(
                            x.common.pid,
                            x.exe,
                            x.exe_path.as_deref(),
                        )),
                        _ => None,
                    };
                    (ev, hash)
                })
                .collect()
        });
        if !engine.send(Msg::Events(ready)).await {
            return;
        }
    }
}
