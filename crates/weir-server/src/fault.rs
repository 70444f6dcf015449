//! Fault injection for the idempotence tests, compiled only with the
//! `fault-injection` feature (never in release builds): every Nth Produce
//! request is applied but its connection closed instead of answered, as
//! if the network failed after the write.

use std::sync::atomic::{AtomicU64, Ordering};

use kafka_protocol::messages::ApiKey;

/// Faults to inject.
#[derive(Debug, Clone, Copy, Default)]
pub struct Faults {
    /// Close the connection instead of answering every Nth Produce
    /// (counted across connections); 0 turns it off.
    pub close_after_produce_every: u64,
}

/// Produce requests seen.
static PRODUCE_COUNT: AtomicU64 = AtomicU64::new(0);

impl Faults {
    /// Whether the answer to this request is to be dropped.
    pub(crate) fn drop_answer(&self, key: ApiKey) -> bool {
        let every = self.close_after_produce_every;
        every > 0
            && key == ApiKey::Produce
            && PRODUCE_COUNT.fetch_add(1, Ordering::Relaxed) % every == every - 1
    }
}
