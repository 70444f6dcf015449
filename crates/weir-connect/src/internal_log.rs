//! Reading and writing the internal topics: [`TopicLog`] reads a topic
//! from its start on a thread of its own and knows when it has read to the
//! end (read_committed, so aborted offset writes are never seen); writes
//! go through an idempotent `acks=all` producer; [`ensure_topics`]
//! creates the three topics, compacted.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};
use tokio::sync::mpsc;
use tracing::debug;

use crate::config::WorkerConfig;
use crate::connector::Props;
use crate::error::{ConnectError, Result};
use crate::worker::Quiet;

/// One record read from an internal topic.
#[derive(Debug, Clone)]
pub struct LogRecord {
    pub partition: i32,
    pub offset: i64,
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
}

#[derive(Debug, Default)]
struct Progress {
    /// Next offset to read, per partition.
    positions: HashMap<i32, i64>,
    /// When each partition last reported its end (read_committed: the LSO).
    eof_at: HashMap<i32, Instant>,
    failed: Option<String>,
}

/// Reads one topic from its start, forever, into a channel, remembering
/// how far it got.
pub struct TopicLog {
    topic: String,
    progress: Arc<Mutex<Progress>>,
    stop: Arc<std::sync::atomic::AtomicBool>,
    meta: Arc<BaseConsumer<Quiet>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl std::fmt::Debug for TopicLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TopicLog({})", self.topic)
    }
}

impl TopicLog {
    /// Starts reading `topic` (read_committed) into `tx`.
    pub fn start(
        worker: &WorkerConfig,
        topic: &str,
        tx: mpsc::UnboundedSender<LogRecord>,
    ) -> Result<Self> {
        let mut overrides = Props::new();
        overrides.insert("group.id".into(), format!("{}-reader", worker.group_id));
        overrides.insert("enable.auto.commit".into(), "false".into());
        overrides.insert("enable.partition.eof".into(), "true".into());
        overrides.insert("isolation.level".into(), "read_committed".into());
        overrides.insert("auto.offset.reset".into(), "earliest".into());
        let consumer: BaseConsumer<Quiet> = worker
            .rdkafka("consumer.", &overrides)
            .create_with_context(Quiet)?;
        let meta: BaseConsumer<Quiet> = worker
            .rdkafka("consumer.", &overrides)
            .create_with_context(Quiet)?;
        let md = consumer
            .fetch_metadata(Some(topic), Duration::from_secs(10))
            .map_err(ConnectError::kafka)?;
        let parts: Vec<i32> = md
            .topics()
            .iter()
            .flat_map(|t| t.partitions().iter().map(|p| p.id()))
            .collect();
        if parts.is_empty() {
            return Err(ConnectError::kafka(format!(
                "topic {topic} has no partitions"
            )));
        }
        let mut tpl = TopicPartitionList::new();
        for p in &parts {
            tpl.add_partition_offset(topic, *p, Offset::Beginning)
                .map_err(ConnectError::kafka)?;
        }
        consumer.assign(&tpl)?;
        let progress = Arc::new(Mutex::new(Progress {
            positions: parts.iter().map(|p| (*p, 0)).collect(),
            ..Progress::default()
        }));
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (p2, s2, name) = (progress.clone(), stop.clone(), topic.to_string());
        let thread = std::thread::Builder::new()
            .name(format!("connect-log-{topic}"))
            .spawn(move || read_loop(consumer, name, tx, p2, s2))
            .map_err(|e| ConnectError::Io {
                context: "cannot start a reader thread".into(),
                source: e,
            })?;
        Ok(Self {
            topic: topic.to_string(),
            progress,
            stop,
            meta: Arc::new(meta),
            thread: Some(thread),
        })
    }

    /// Waits until everything written to the topic before this call has
    /// been read (or `timeout` passes).
    pub async fn read_to_end(&self, timeout: Duration) -> Result<()> {
        let asked = Instant::now();
        let parts: Vec<i32> = self.lock().positions.keys().copied().collect();
        let (meta, topic) = (self.meta.clone(), self.topic.clone());
        // librdkafka blocks: off the async workers, which in `weir serve`
        // also run the broker that must answer.
        let ends = tokio::task::spawn_blocking(move || {
            let mut ends = HashMap::new();
            for p in parts {
                let (_, high) = meta
                    .fetch_watermarks(&topic, p, Duration::from_secs(10))
                    .map_err(ConnectError::kafka)?;
                ends.insert(p, high);
            }
            Ok::<_, ConnectError>(ends)
        })
        .await
        .map_err(|e| ConnectError::kafka(format!("watermark lookup failed: {e}")))??;
        let deadline = asked + timeout;
        loop {
            {
                let g = self.lock();
                if let Some(why) = &g.failed {
                    return Err(ConnectError::kafka(format!(
                        "reading {} failed: {why}",
                        self.topic
                    )));
                }
                let done = ends.iter().all(|(p, end)| {
                    g.positions.get(p).copied().unwrap_or(0) >= *end
                        || g.eof_at.get(p).is_some_and(|t| *t > asked)
                });
                if done {
                    return Ok(());
                }
            }
            if Instant::now() > deadline {
                return Err(ConnectError::Unavailable {
                    message: format!("timed out reading to the end of {}", self.topic),
                });
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Progress> {
        self.progress.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Drop for TopicLog {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn read_loop(
    consumer: BaseConsumer<Quiet>,
    topic: String,
    tx: mpsc::UnboundedSender<LogRecord>,
    progress: Arc<Mutex<Progress>>,
    stop: Arc<std::sync::atomic::AtomicBool>,
) {
    while !stop.load(std::sync::atomic::Ordering::SeqCst) {
        match consumer.poll(Duration::from_millis(100)) {
            None => {}
            Some(Ok(m)) => {
                let rec = LogRecord {
                    partition: m.partition(),
                    offset: m.offset(),
                    key: m.key().map(<[u8]>::to_vec),
                    value: m.payload().map(<[u8]>::to_vec),
                };
                progress
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .positions
                    .insert(m.partition(), m.offset() + 1);
                if tx.send(rec).is_err() {
                    return;
                }
            }
            Some(Err(rdkafka::error::KafkaError::PartitionEOF(p))) => {
                let mut g = progress.lock().unwrap_or_else(|e| e.into_inner());
                g.eof_at.insert(p, Instant::now());
            }
            Some(Err(e)) => {
                debug!(%topic, error = %e, "internal topic reader");
                if matches!(
                    e,
                    rdkafka::error::KafkaError::MessageConsumption(
                        rdkafka::types::RDKafkaErrorCode::TopicAuthorizationFailed
                    )
                ) {
                    progress.lock().unwrap_or_else(|e| e.into_inner()).failed = Some(e.to_string());
                }
            }
        }
    }
}

/// Writes records to the internal topics: idempotent, `acks=all`.
#[derive(Clone)]
pub struct LogWriter {
    producer: FutureProducer,
}

impl std::fmt::Debug for LogWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LogWriter")
    }
}

impl LogWriter {
    /// A producer for the worker's internal writes.
    pub fn new(worker: &WorkerConfig) -> Result<Self> {
        let mut o = Props::new();
        o.insert("enable.idempotence".into(), "true".into());
        o.insert("acks".into(), "all".into());
        o.insert("linger.ms".into(), "0".into());
        Ok(Self {
            producer: worker.rdkafka("producer.", &o).create()?,
        })
    }

    /// Writes one record and waits for its acknowledgement.
    pub async fn send(&self, topic: &str, key: &[u8], value: Option<&[u8]>) -> Result<()> {
        let mut r: FutureRecord<'_, [u8], [u8]> = FutureRecord::to(topic).key(key);
        if let Some(v) = value {
            r = r.payload(v);
        }
        self.producer
            .send(r, Duration::from_secs(30))
            .await
            .map_err(|(e, _)| ConnectError::kafka(format!("writing to {topic}: {e}")))?;
        Ok(())
    }
}

/// Creates the internal topics that are missing, compacted, with the
/// worker's partition counts and replication factors.
pub async fn ensure_topics(worker: &WorkerConfig) -> Result<()> {
    let config = weir_client::ClientConfig {
        timeout: Duration::from_secs(30),
        client_id: "weir-connect".into(),
        security: worker.security.clone(),
    };
    let mut admin = weir_client::Admin::connect_with(&worker.bootstrap, config).await?;
    let topics = [
        (&worker.config_topic, 1, worker.config_replication),
        (
            &worker.offset_topic,
            worker.offset_partitions,
            worker.offset_replication,
        ),
        (
            &worker.status_topic,
            worker.status_partitions,
            worker.status_replication,
        ),
    ];
    for (name, partitions, rf) in topics {
        let t = weir_client::NewTopic {
            name: name.clone(),
            partitions,
            replication_factor: rf,
            configs: vec![("cleanup.policy".into(), "compact".into())],
        };
        match admin.create_topic(&t, false).await {
            Ok(_) => {}
            // TOPIC_ALREADY_EXISTS
            Err(e) if e.code() == Some(36) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}
