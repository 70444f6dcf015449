//! Cluster mode: a coordinator's state follows the leases this broker
//! holds on its internal topic's partitions (`__consumer_offsets` for
//! groups, `__transaction_state` for transactions).

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;

use crate::error::BrokerError;

/// A coordinator whose state is loaded per partition of its topic.
pub(crate) trait LeasedState: Send + Sync + 'static {
    /// What a failed load could not read, for the log.
    const WHAT: &'static str;
    /// The partitions loaded, with the lease epoch each was loaded at.
    fn loaded_leases(&self) -> BTreeMap<i32, i64>;
    /// Reads partition `p`'s state back, taken at `epoch`.
    fn load(
        self: &Arc<Self>,
        p: i32,
        epoch: i64,
    ) -> impl Future<Output = Result<(), BrokerError>> + Send;
    /// Forgets partition `p`'s state (its lease went).
    fn forget(&self, p: i32);
}

/// Loads and drops partitions as this broker gains and loses their
/// leases (`held`: partition to lease epoch), until `stopping`. A failed
/// load is tried again each second.
pub(crate) fn follow<S: LeasedState>(
    state: Arc<S>,
    mut held: tokio::sync::watch::Receiver<BTreeMap<i32, i64>>,
    stopping: impl Future<Output = ()> + Send + 'static,
) {
    tokio::spawn(async move {
        tokio::pin!(stopping);
        loop {
            let want = held.borrow_and_update().clone();
            let have = state.loaded_leases();
            for p in have.keys().filter(|p| !want.contains_key(p)) {
                state.forget(*p);
            }
            let mut failed = false;
            for (p, epoch) in &want {
                if have.get(p) == Some(epoch) {
                    continue;
                }
                if let Err(e) = state.load(*p, *epoch).await {
                    tracing::warn!(error = %e, partition = p, "cannot load {}", S::WHAT);
                    failed = true;
                }
            }
            let retry = std::time::Duration::from_secs(if failed { 1 } else { 3600 });
            tokio::select! {
                () = &mut stopping => return,
                r = held.changed() => if r.is_err() { return },
                () = tokio::time::sleep(retry) => {}
            }
        }
    });
}
