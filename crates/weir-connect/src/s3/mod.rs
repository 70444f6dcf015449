//! `io.confluent.connect.s3.S3SinkConnector`: records into objects of an
//! S3-compatible bucket, with Confluent's configuration names, formats
//! ([`format`]), partitioners ([`partitioner`]) and object names.
//!
//! Each Kafka partition's records are buffered per encoded partition in
//! an open "file"; a file is uploaded when it reaches `flush.size`
//! records, when a record's time is `rotate.interval.ms` past the file's
//! first, when the wall clock passes the next `rotate.schedule.interval.ms`
//! boundary, or when the value schema changes (Avro, Parquet). It is named
//! `<topics.dir>/<topic>/<encoded partition>/<topic>+<partition>+<start
//! offset, zero-padded>.<ext>`.
//!
//! Exactly-once on the store, as Confluent's: the consumer offsets
//! committed for a partition are those of its oldest open file's first
//! record (or everything consumed when none is open), so after a crash
//! the task re-reads exactly the records of unfinished files. With a
//! deterministic partitioner and rotation (not the wall clock), the rerun
//! cuts the same files under the same names: an upload repeated after a
//! crash overwrites the object with the same bytes.

pub mod format;
pub mod partitioner;
pub mod store;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use crate::config::{ConfigDef, ConfigKey, ConfigType};
use crate::connector::{
    Connector, ConnectorType, OffsetChange, Plugin, Props, SinkOffsets, SinkRecord, SinkTask,
};
use crate::data::Schema;
use crate::error::{ConnectError, Result};
use crate::tz::Zone;
use format::Format;
use partitioner::{Partitioner, TimestampExtractor};
use store::Store;

/// The version Weir's implementation reports (Confluent's S3 sink it
/// follows).
const VERSION: &str = "10.6.0";

/// The plugin.
pub const S3_SINK: Plugin = Plugin {
    class: "io.confluent.connect.s3.S3SinkConnector",
    kind: ConnectorType::Sink,
    version: VERSION,
    config_def,
    connector: || Box::new(S3Connector::default()),
    source_task: None,
    sink_task: Some(|| Box::new(S3SinkTask::default())),
};

fn config_def() -> ConfigDef {
    let k = ConfigKey::new;
    let min = |mut key: ConfigKey, m: i64| {
        key.min = Some(m);
        key
    };
    let nullable = |mut key: ConfigKey| {
        key.nullable = true;
        key
    };
    ConfigDef {
        keys: vec![
            k("s3.bucket.name", ConfigType::String, None, "HIGH", "The S3 Bucket."),
            k("s3.region", ConfigType::String, Some("us-west-2"), "MEDIUM", "The AWS region to be used the connector."),
            nullable(k("store.url", ConfigType::String, None, "HIGH", "Store's connection URL, if applicable (any S3-compatible endpoint).")),
            k("topics.dir", ConfigType::String, Some("topics"), "HIGH", "Top level directory to store the data ingested from Kafka."),
            k("storage.class", ConfigType::Class, Some("io.confluent.connect.s3.storage.S3Storage"), "HIGH", "The underlying storage layer."),
            k("format.class", ConfigType::Class, None, "HIGH", "The format class to use when writing data to the store."),
            k("parquet.codec", ConfigType::String, Some("snappy"), "LOW", "The Parquet compression codec to be used for output files (none, snappy, gzip, zstd)."),
            k("avro.codec", ConfigType::String, Some("null"), "LOW", "The Avro compression codec to be used for output files (null)."),
            k("format.bytearray.extension", ConfigType::String, Some(".bin"), "LOW", "Output file extension for ByteArrayFormat."),
            k("format.bytearray.separator", ConfigType::String, Some("\n"), "LOW", "String inserted between records for ByteArrayFormat."),
            min(k("flush.size", ConfigType::Int, None, "HIGH", "Number of records written to store before invoking file commits."), 1),
            k("rotate.interval.ms", ConfigType::Long, Some("-1"), "HIGH", "The time interval in milliseconds to invoke file commits, measured in record time (timestamp.extractor): a file is committed when a record's time is this far past the file's first record."),
            k("rotate.schedule.interval.ms", ConfigType::Long, Some("-1"), "MEDIUM", "The time interval in milliseconds to periodically invoke file commits, on the wall clock (not deterministic: it gives up exactly-once)."),
            k("partitioner.class", ConfigType::Class, Some("io.confluent.connect.storage.partitioner.DefaultPartitioner"), "HIGH", "The partitioner to use when writing data to the store: DefaultPartitioner, FieldPartitioner, TimeBasedPartitioner (HourlyPartitioner, DailyPartitioner)."),
            k("partition.field.name", ConfigType::List, Some(""), "MEDIUM", "The name of the partitioning field when FieldPartitioner is used."),
            k("path.format", ConfigType::String, Some(""), "MEDIUM", "The Joda-Time pattern of the output paths of TimeBasedPartitioner, e.g. 'year'=YYYY/'month'=MM/'day'=dd/'hour'=HH."),
            k("partition.duration.ms", ConfigType::Long, Some("-1"), "MEDIUM", "The duration of a partition in milliseconds used by TimeBasedPartitioner."),
            k("locale", ConfigType::String, Some(""), "MEDIUM", "The locale to use when partitioning with TimeBasedPartitioner (names are English)."),
            k("timezone", ConfigType::String, Some(""), "MEDIUM", "The timezone to use when partitioning with TimeBasedPartitioner: UTC, a fixed offset or a name such as America/New_York."),
            k("timestamp.extractor", ConfigType::String, Some("Wallclock"), "MEDIUM", "The extractor that gets the timestamp for records when partitioning with TimeBasedPartitioner and for rotate.interval.ms: Wallclock, Record or RecordField."),
            k("timestamp.field", ConfigType::String, Some("timestamp"), "MEDIUM", "The record field to be used as timestamp by the RecordField timestamp extractor."),
            min(k("s3.part.size", ConfigType::Int, Some("26214400"), "HIGH", "The Part Size in S3 Multi-part Uploads."), store::MIN_PART_SIZE),
            min(k("s3.part.retries", ConfigType::Int, Some("3"), "MEDIUM", "Maximum number of retry attempts for failed requests."), 0),
            min(k("s3.retry.backoff.ms", ConfigType::Long, Some("200"), "LOW", "How long to wait in milliseconds before attempting the first retry of a failed S3 request."), 0),
            nullable(k("aws.access.key.id", ConfigType::String, None, "HIGH", "The AWS access key ID used to authenticate (else the AWS_* environment).")),
            nullable(k("aws.secret.access.key", ConfigType::Password, None, "HIGH", "The secret access key used to authenticate.")),
            min(k("filename.offset.zero.pad.width", ConfigType::Int, Some("10"), "LOW", "Width to zero-pad offsets in store's filenames if offsets are too short."), 0),
            k("directory.delim", ConfigType::String, Some("/"), "MEDIUM", "Directory delimiter pattern."),
            k("file.delim", ConfigType::String, Some("+"), "MEDIUM", "File delimiter pattern."),
            k("behavior.on.null.values", ConfigType::String, Some("fail"), "LOW", "How to handle records with a null value (tombstones): fail or ignore."),
        ],
    }
}

/// The settings a task runs with, parsed once.
#[derive(Debug)]
struct Settings {
    topics_dir: String,
    dir_delim: String,
    file_delim: String,
    pad: usize,
    format: Format,
    partitioner: Partitioner,
    extractor: TimestampExtractor,
    flush_size: usize,
    rotate_interval: i64,
    rotate_schedule: i64,
    zone: Zone,
    ignore_nulls: bool,
}

impl Settings {
    fn from_config(p: &Props) -> Result<Settings> {
        let flush_size = crate::config::prop_i64(p, "flush.size", -1)?;
        if flush_size < 1 {
            return Err(ConnectError::bad_config(
                "Missing required configuration \"flush.size\" (at least 1)",
            ));
        }
        let text = |k: &str, d: &str| {
            p.get(k)
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .unwrap_or_else(|| d.to_string())
        };
        let ignore_nulls = match text("behavior.on.null.values", "fail").as_str() {
            "fail" => false,
            "ignore" => true,
            other => {
                return Err(ConnectError::bad_config(format!(
                "Invalid value {other} for configuration behavior.on.null.values: fail or ignore"
            )))
            }
        };
        let rotate_schedule = crate::config::prop_i64(p, "rotate.schedule.interval.ms", -1)?;
        let tz = text("timezone", "UTC");
        Ok(Settings {
            topics_dir: text("topics.dir", "topics").trim_matches('/').to_string(),
            dir_delim: text("directory.delim", "/"),
            file_delim: text("file.delim", "+"),
            pad: usize::try_from(crate::config::prop_i64(
                p,
                "filename.offset.zero.pad.width",
                10,
            )?)
            .unwrap_or(10),
            format: Format::from_config(p)?,
            partitioner: Partitioner::from_config(p)?,
            extractor: TimestampExtractor::from_config(p)?,
            flush_size: usize::try_from(flush_size).unwrap_or(usize::MAX),
            rotate_interval: crate::config::prop_i64(p, "rotate.interval.ms", -1)?,
            rotate_schedule,
            zone: Zone::parse(&tz, "timezone")?,
            ignore_nulls,
        })
    }
}

/// The connector: validates, then gives every task the same config (the
/// consumer group spreads the partitions).
#[derive(Debug, Default)]
struct S3Connector {
    props: Props,
}

impl Connector for S3Connector {
    fn start(&mut self, config: &Props) -> Result<()> {
        Settings::from_config(config)?;
        Store::check_config(config)?;
        self.props = config.clone();
        Ok(())
    }

    fn task_configs(&self, max_tasks: usize) -> Result<Vec<Props>> {
        Ok(vec![self.props.clone(); max_tasks.max(1)])
    }

    /// Offsets live in the consumer group only.
    fn alter_offsets(&self, _config: &Props, _offsets: &[OffsetChange]) -> Result<bool> {
        Ok(true)
    }
}

/// An object being filled.
#[derive(Debug)]
struct OpenFile {
    start: i64,
    first_ts: i64,
    schema: Option<Arc<Schema>>,
    records: Vec<SinkRecord>,
}

/// One Kafka partition's open files, by encoded partition.
#[derive(Debug, Default)]
struct PartitionState {
    files: BTreeMap<String, OpenFile>,
    /// The offset after the last record taken.
    next: Option<i64>,
    /// When the open files are due under `rotate.schedule.interval.ms`.
    scheduled: Option<i64>,
}

/// The task.
#[derive(Debug, Default)]
struct S3SinkTask {
    settings: Option<Settings>,
    store: Option<Store>,
    partitions: HashMap<(String, i32), PartitionState>,
}

impl S3SinkTask {
    fn parts(&self) -> Result<(&Settings, &Store)> {
        match (&self.settings, &self.store) {
            (Some(s), Some(st)) => Ok((s, st)),
            _ => Err(ConnectError::data("the S3 sink task is not started")),
        }
    }

    /// Uploads one file.
    fn upload(&self, partition: i32, encoded: &str, file: OpenFile) -> Result<()> {
        let (s, store) = self.parts()?;
        let Some(first) = file.records.first() else {
            return Ok(());
        };
        let topic = &first.record.topic;
        let d = &s.dir_delim;
        let f = &s.file_delim;
        let mut key = String::new();
        if !s.topics_dir.is_empty() {
            key.push_str(&s.topics_dir);
            key.push_str(d);
        }
        key.push_str(&format!(
            "{topic}{d}{encoded}{d}{topic}{f}{partition}{f}{:0width$}{}",
            file.start,
            s.format.extension(),
            width = s.pad
        ));
        let bytes = s.format.encode(&file.records)?;
        tracing::debug!(
            key,
            bytes = bytes.len(),
            records = file.records.len(),
            "S3 sink upload"
        );
        store.put(&key, bytes)
    }

    /// Uploads the files of `tp` that rotation by time says are due.
    fn rotate_due(&mut self, tp: &(String, i32), now: i64) -> Result<()> {
        let Some(s) = &self.settings else {
            return Ok(());
        };
        let wallclock_interval = (s.rotate_interval > 0
            && s.extractor == TimestampExtractor::Wallclock)
            .then_some(s.rotate_interval);
        let Some(state) = self.partitions.get_mut(tp) else {
            return Ok(());
        };
        let mut due: Vec<String> = Vec::new();
        if state.scheduled.is_some_and(|at| now >= at) {
            due.extend(state.files.keys().cloned());
            state.scheduled = None;
        } else if let Some(i) = wallclock_interval {
            due.extend(
                state
                    .files
                    .iter()
                    .filter(|(_, f)| now - f.first_ts >= i)
                    .map(|(k, _)| k.clone()),
            );
        }
        let files: Vec<(String, OpenFile)> = due
            .into_iter()
            .filter_map(|k| state.files.remove(&k).map(|f| (k, f)))
            .collect();
        for (k, f) in files {
            self.upload(tp.1, &k, f)?;
        }
        Ok(())
    }

    fn take(&mut self, r: SinkRecord) -> Result<()> {
        let tp = (r.original_topic.clone(), r.original_partition);
        let now = crate::now_ms();
        let s = self
            .settings
            .as_ref()
            .ok_or_else(|| ConnectError::data("the S3 sink task is not started"))?;
        if r.record.value.value.is_null() {
            if s.ignore_nulls {
                return Ok(());
            }
            return Err(ConnectError::data(format!(
                "Null valued records are not writeable with current behavior.on.null.values 'settings' (fail): {}-{} at offset {}",
                tp.0, tp.1, r.kafka_offset
            )));
        }
        let needs_time = s.partitioner.is_time_based() || s.rotate_interval > 0;
        let ts = if needs_time {
            s.extractor.extract(&r)?
        } else {
            0
        };
        let encoded = s.partitioner.encode(&r, ts, &s.dir_delim)?;
        let (flush_size, rotate_interval, schedule, zone) =
            (s.flush_size, s.rotate_interval, s.rotate_schedule, s.zone);
        let needs_schema = s.format.needs_schema();
        let state = self.partitions.entry(tp.clone()).or_default();
        if state.next.is_some_and(|next| r.kafka_offset < next) {
            // The consumer went back (a rebalance handed the partition back
            // from its committed offset): the open files are re-read.
            state.files.clear();
            state.scheduled = None;
        }
        state.next = Some(r.kafka_offset + 1);
        let close_current = state.files.get(&encoded).is_some_and(|f| {
            (needs_schema && f.schema != r.record.value.schema)
                || (rotate_interval > 0 && ts - f.first_ts >= rotate_interval)
        });
        if close_current {
            if let Some(f) = state.files.remove(&encoded) {
                self.upload(tp.1, &encoded, f)?;
            }
        }
        self.rotate_due(&tp, now)?;
        let state = self.partitions.entry(tp.clone()).or_default();
        if schedule > 0 && state.scheduled.is_none() {
            // The next boundary of the schedule in the zone, as Confluent.
            let offset = zone.offset_ms(now);
            state.scheduled = Some(((now + offset) / schedule + 1) * schedule - offset);
        }
        let file = state
            .files
            .entry(encoded.clone())
            .or_insert_with(|| OpenFile {
                start: r.kafka_offset,
                first_ts: ts,
                schema: r.record.value.schema.clone(),
                records: Vec::new(),
            });
        file.records.push(r);
        if file.records.len() >= flush_size {
            if let Some(f) = state.files.remove(&encoded) {
                self.upload(tp.1, &encoded, f)?;
            }
        }
        Ok(())
    }
}

impl SinkTask for S3SinkTask {
    fn start(&mut self, config: &Props) -> Result<()> {
        let settings = Settings::from_config(config)?;
        let store = Store::new(config)?;
        store.check_bucket(&settings.topics_dir)?;
        self.settings = Some(settings);
        self.store = Some(store);
        Ok(())
    }

    fn put(&mut self, records: Vec<SinkRecord>) -> Result<()> {
        for r in records {
            self.take(r)?;
        }
        Ok(())
    }

    /// Uploads happen at rotation; nothing else to make durable.
    fn flush(&mut self, _offsets: &SinkOffsets) -> Result<()> {
        Ok(())
    }

    /// What is safe to commit: up to the first record of each partition's
    /// oldest open file.
    fn pre_commit(&mut self, offsets: &SinkOffsets) -> Result<SinkOffsets> {
        let now = crate::now_ms();
        let tps: Vec<_> = self.partitions.keys().cloned().collect();
        for tp in &tps {
            self.rotate_due(tp, now)?;
        }
        Ok(offsets
            .iter()
            .map(|(tp, next)| {
                let safe = self
                    .partitions
                    .get(tp)
                    .and_then(|s| s.files.values().map(|f| f.start).min())
                    .unwrap_or(*next);
                (tp.clone(), safe.min(*next))
            })
            .collect())
    }

    /// Open files are dropped: their records are re-read from the
    /// committed offsets.
    fn stop(&mut self) {
        self.partitions.clear();
    }
}
