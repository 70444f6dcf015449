//! `weir-registry` owns Weir's schema registry: Confluent Schema
//! Registry's REST API (subjects, versions, ids, compatibility, config,
//! modes) for AVRO, JSON Schema and PROTOBUF schemas, and the broker-side
//! record validator. Its compatibility rules live in `weir_formats::compat`
//! (re-exported here as `schema`, `avro`, `json_schema` and `protobuf`), as
//! the serializers check `latest.compatibility.strict` with them too.
//!
//! The state lives in the compacted `_schemas` topic, in Confluent's record
//! formats: every change is appended and durable before the HTTP answer,
//! applied to memory after, and the topic is replayed at start. The broker
//! is reached only through its internal log (`weir_broker::internal_log`)
//! and the produce-path validation hook.

pub mod api;
mod error;
pub mod store;

pub use weir_formats::compat as schema;
pub use weir_formats::compat::{avro, json_schema, protobuf};

use std::collections::HashSet;
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use weir_broker::internal_log::{changed_or_after, live_records, read_records, InternalLog, Tail};
use weir_broker::validation::RecordValidator;
use weir_broker::{Broker, BrokerError, ClusterLocks};

pub use error::RegistryError;
use schema::{Reference, Resolved};
use store::{State, SCHEMAS_TOPIC};

/// The schema registry.
#[derive(Debug)]
pub struct Registry {
    log: Arc<dyn InternalLog>,
    state: Arc<Mutex<State>>,
    /// Serialises changes: check, append, wait for durability, apply.
    writer: tokio::sync::Mutex<()>,
    /// Cluster mode: serialises them across brokers too, as Confluent
    /// does by sending every write to one elected leader.
    locks: Option<ClusterLocks>,
    /// Cluster mode: `_schemas` as every broker appends to it. The state
    /// is only ever changed by applying it in log order, this broker's
    /// own writes included, so all brokers converge on the same state.
    tail: Option<tokio::sync::Mutex<Tail>>,
}

fn lock(m: &Mutex<State>) -> MutexGuard<'_, State> {
    // A panic while holding the lock is a bug; the state is still the best
    // there is.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Registry {
    /// Creates `_schemas` if missing, replays it, and installs the
    /// produce-path validator on the broker.
    pub async fn open(broker: &Broker) -> Result<Arc<Self>, RegistryError> {
        let log = broker.internal_log();
        let compact = [("cleanup.policy".to_string(), "compact".to_string())];
        log.ensure_topic(SCHEMAS_TOPIC, 1, compact.into_iter().collect())
            .await
            .map_err(store)?;
        let mut tail = broker.tail(SCHEMAS_TOPIC, 0);
        let records = match &mut tail {
            Some(tail) => live_records(tail.read_new().await.map_err(store)?),
            None => read_records(&*log, SCHEMAS_TOPIC, 0).await.map_err(store)?,
        };
        let mut state = State::default();
        for (k, v) in &records {
            if let Some(k) = k {
                state.apply(k, v.as_deref());
            }
        }
        tracing::info!(
            records = records.len(),
            subjects = state.subjects.len(),
            max_id = state.max_id,
            "loaded the schema registry"
        );
        let state = Arc::new(Mutex::new(state));
        broker.set_record_validator(Arc::new(Validator {
            state: Arc::clone(&state),
        }));
        let registry = Arc::new(Self {
            log,
            state,
            writer: tokio::sync::Mutex::new(()),
            locks: broker.cluster_locks(),
            tail: tail.map(tokio::sync::Mutex::new),
        });
        if registry.tail.is_some() {
            registry.follow(broker.stopping());
        }
        Ok(registry)
    }

    /// Cluster mode: applies what other brokers append to `_schemas`,
    /// woken by the commit notifications (and polling, for one missed),
    /// until `stopping`. Another broker's change is in effect here (its
    /// subjects listed, its ids accepted by the produce-path validator)
    /// a moment after it was answered, as with Confluent's followers.
    fn follow(self: &Arc<Self>, stopping: impl std::future::Future<Output = ()> + Send + 'static) {
        let registry = Arc::clone(self);
        tokio::spawn(async move {
            tokio::pin!(stopping);
            let mut changes = None;
            loop {
                if changes.is_none() {
                    if let Some(tail) = &registry.tail {
                        changes = tail.lock().await.changes();
                    }
                }
                let poll = std::time::Duration::from_secs(2);
                tokio::select! {
                    () = &mut stopping => return,
                    () = changed_or_after(changes.as_mut(), poll) => {}
                }
                if let Err(e) = registry.catch_up(false).await {
                    tracing::warn!(error = %e, "cannot read {SCHEMAS_TOPIC}");
                }
            }
        });
    }

    /// Cluster mode: applies `_schemas` up to its end as this broker
    /// knows it, or as the store has it with `to_store_end`. Nothing to do
    /// on a single node, the only writer.
    async fn catch_up(&self, to_store_end: bool) -> Result<(), RegistryError> {
        let Some(tail) = &self.tail else {
            return Ok(());
        };
        let mut tail = tail.lock().await;
        let read = if to_store_end {
            tail.read_to_store_end().await
        } else {
            tail.read_new().await
        };
        let records = live_records(read.map_err(store)?);
        let mut st = self.state();
        for (k, v) in &records {
            if let Some(k) = k {
                st.apply(k, v.as_deref());
            }
        }
        Ok(())
    }

    /// Takes the writer lock for a change: this broker's, then (cluster
    /// mode) the cluster's, and catches up with every change other
    /// brokers made before, so that a change is checked against them
    /// (versions, ids, compatibility) and no two brokers hand out the
    /// same id or version. Held until the guard is dropped, after the
    /// change was applied.
    pub(crate) async fn lock_writer(&self) -> Result<WriterGuard<'_>, RegistryError> {
        let local = self.writer.lock().await;
        let cluster = match &self.locks {
            Some(locks) => locks.lock(REGISTRY_LOCK).await.map_err(store)?,
            None => None,
        };
        self.catch_up(true).await?;
        Ok(WriterGuard {
            _cluster: cluster,
            _local: local,
        })
    }

    pub(crate) fn state(&self) -> MutexGuard<'_, State> {
        lock(&self.state)
    }

    /// Appends records to `_schemas`, waits until they are durable, then
    /// applies them. Callers hold the writer lock.
    pub(crate) async fn write(
        &self,
        records: Vec<(String, Option<String>)>,
    ) -> Result<(), RegistryError> {
        let kvs = records
            .iter()
            .map(|(k, v)| {
                (
                    Some(Bytes::from(k.clone())),
                    v.as_ref().map(|v| Bytes::from(v.clone())),
                )
            })
            .collect();
        let appended = self
            .log
            .append(SCHEMAS_TOPIC, 0, kvs, None)
            .await
            .map_err(store)?;
        appended.durable.await.map_err(store)?;
        if self.tail.is_some() {
            // Applied in log order with whatever other brokers appended
            // before it.
            return self.catch_up(false).await;
        }
        let mut st = self.state();
        for (k, v) in &records {
            st.apply(k.as_bytes(), v.as_deref().map(str::as_bytes));
        }
        Ok(())
    }

    /// Resolves references transitively, dependencies first.
    pub(crate) fn resolve(&self, refs: &[Reference]) -> Result<Vec<Resolved>, RegistryError> {
        let st = self.state();
        let mut out = Vec::new();
        let mut seen = HashSet::new();
        for r in refs {
            resolve_into(&st, r, &mut out, &mut seen, 0)?;
        }
        Ok(out)
    }
}

/// The cluster lock registry writes take (docs/cluster-format.md).
const REGISTRY_LOCK: &str = "weir.registry";

/// Holds the registry's writer lock ([`Registry::lock_writer`]).
pub(crate) struct WriterGuard<'a> {
    _cluster: Option<weir_log::ClusterLock>,
    _local: tokio::sync::MutexGuard<'a, ()>,
}

fn store(e: BrokerError) -> RegistryError {
    RegistryError::Store(e.to_string())
}

fn resolve_into(
    st: &State,
    r: &Reference,
    out: &mut Vec<Resolved>,
    seen: &mut HashSet<(String, i32)>,
    depth: usize,
) -> Result<(), RegistryError> {
    if depth > 32 {
        return Err(RegistryError::InvalidSchema(
            "references nest too deeply".into(),
        ));
    }
    let version = if r.version == -1 {
        st.live(&r.subject).last().map_or(-1, |v| v.version)
    } else {
        r.version
    };
    if !seen.insert((r.subject.clone(), version)) {
        return Ok(());
    }
    let sv = st
        .subjects
        .get(&r.subject)
        .and_then(|vs| vs.get(&version))
        .cloned()
        .ok_or_else(|| {
            RegistryError::InvalidSchema(format!(
                "reference {} to subject {} version {} not found",
                r.name, r.subject, r.version
            ))
        })?;
    for dep in &sv.references {
        resolve_into(st, dep, out, seen, depth + 1)?;
    }
    out.push(Resolved {
        name: r.name.clone(),
        schema_type: sv.schema_type,
        schema: sv.schema,
    });
    Ok(())
}

/// Broker-side validation: a key or value must start with magic byte 0 and
/// a schema id registered under the topic's subject (TopicNameStrategy).
#[derive(Debug)]
struct Validator {
    state: Arc<Mutex<State>>,
}

impl RecordValidator for Validator {
    fn check(&self, topic: &str, is_key: bool, data: &[u8]) -> Result<(), BrokerError> {
        let part = if is_key { "key" } else { "value" };
        let subject = format!("{topic}-{part}");
        let refuse = |reason: String| Err(BrokerError::InvalidRecord { reason });
        let id = match data {
            [0, a, b, c, d, ..] => i32::from_be_bytes([*a, *b, *c, *d]),
            _ => {
                return refuse(format!(
                    "the record {part} for topic {topic} does not start with a schema id (magic byte 0 and 4 bytes)"
                ))
            }
        };
        let registered = lock(&self.state)
            .subjects
            .get(&subject)
            .is_some_and(|vs| vs.values().any(|v| v.id == id && !v.deleted));
        if registered {
            Ok(())
        } else {
            refuse(format!(
                "schema id {id} in the record {part} is not registered under subject {subject}"
            ))
        }
    }
}

/// Serves the REST API on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    registry: Arc<Registry>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, api::router(registry))
        .with_graceful_shutdown(shutdown)
        .await
}
