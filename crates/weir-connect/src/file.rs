//! Kafka's file connectors, with Kafka's configs.
//!
//! `FileStreamSourceConnector` reads `file` line by line into `topic`
//! (`batch.size` lines per poll at most), with source partition
//! `{"filename": file}` and offset `{"position": bytes}`: the byte position
//! after the line, so a restarted task continues exactly there. Only
//! complete lines (ending in `\n`, `\r` or `\r\n`) are sent.
//!
//! `FileStreamSinkConnector` appends each record's value and a newline to
//! `file`. Unlike Kafka's, it is exactly-once: each flush syncs the file
//! and records the file's length with the committed consumer offsets
//! (their metadata), and a restarted task first cuts the file back to that
//! length, so records written after the last commit are not duplicated.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Seek, SeekFrom, Write};
use std::sync::Arc;
use std::time::Duration;

use crate::config::{ConfigDef, ConfigKey, ConfigType};
use crate::connector::{
    ConnectRecord, Connector, ConnectorType, OffsetChange, OffsetReader, Plugin, Props,
    SinkOffsets, SinkRecord, SinkTask, SourceRecord, SourceTask,
};
use crate::converter::java_to_string;
use crate::data::{Schema, SchemaAndValue, Type, Value};
use crate::error::{ConnectError, Result};
use crate::json::Json;

const VERSION: &str = "4.3.0";

/// The source plugin.
pub const FILE_SOURCE: Plugin = Plugin {
    class: "org.apache.kafka.connect.file.FileStreamSourceConnector",
    kind: ConnectorType::Source,
    version: VERSION,
    config_def: source_def,
    connector: || {
        Box::new(FileConnector {
            sink: false,
            props: Props::new(),
        })
    },
    source_task: Some(|| Box::new(FileSourceTask::default())),
    sink_task: None,
};

/// The sink plugin.
pub const FILE_SINK: Plugin = Plugin {
    class: "org.apache.kafka.connect.file.FileStreamSinkConnector",
    kind: ConnectorType::Sink,
    version: VERSION,
    config_def: sink_def,
    connector: || {
        Box::new(FileConnector {
            sink: true,
            props: Props::new(),
        })
    },
    source_task: None,
    sink_task: Some(|| Box::new(FileSinkTask::default())),
};

fn source_def() -> ConfigDef {
    ConfigDef {
        keys: vec![
            ConfigKey {
                nullable: true,
                ..ConfigKey::new(
                    "file",
                    ConfigType::String,
                    None,
                    "HIGH",
                    "Source filename. If not specified, the standard input will be used",
                )
            },
            ConfigKey::new(
                "topic",
                ConfigType::String,
                None,
                "HIGH",
                "The topic to publish data to",
            ),
            ConfigKey {
                min: Some(1),
                ..ConfigKey::new(
                    "batch.size",
                    ConfigType::Int,
                    Some("2000"),
                    "LOW",
                    "The maximum number of records the source task can read from the file each time it is polled",
                )
            },
        ],
    }
}

fn sink_def() -> ConfigDef {
    ConfigDef {
        keys: vec![ConfigKey {
            nullable: true,
            ..ConfigKey::new(
                "file",
                ConfigType::String,
                None,
                "HIGH",
                "Destination filename. If not specified, the standard output will be used",
            )
        }],
    }
}

/// Both connectors: one task with the connector's config.
#[derive(Debug)]
struct FileConnector {
    sink: bool,
    props: Props,
}

impl Connector for FileConnector {
    fn start(&mut self, config: &Props) -> Result<()> {
        if !self.sink {
            let topics = crate::config::list(config, "topic");
            if topics.len() != 1 {
                return Err(ConnectError::bad_config(
                    "'topic' in FileStreamSourceConnector configuration requires definition of a single topic",
                ));
            }
        }
        if config.get("file").is_none_or(|f| f.trim().is_empty()) {
            // Kafka reads stdin / writes stdout here; a worker serving many
            // connectors has no terminal to share.
            return Err(ConnectError::bad_config(
                "'file' is required: Weir's file connectors do not use the worker's standard input or output",
            ));
        }
        self.props = config.clone();
        Ok(())
    }

    fn task_configs(&self, _max_tasks: usize) -> Result<Vec<Props>> {
        Ok(vec![self.props.clone()])
    }

    /// Kafka's checks: the sink takes any offsets; the source needs a file
    /// and `{"filename"}` partitions with non-negative integer
    /// `{"position"}` offsets (or none), checked offset first.
    fn alter_offsets(&self, config: &Props, offsets: &[OffsetChange]) -> Result<bool> {
        if self.sink {
            return Ok(true);
        }
        if config.get("file").is_none_or(|f| f.is_empty()) {
            return Err(ConnectError::failed("Offsets cannot be modified if the 'file' configuration is unspecified. This is because stdin is used for input and offsets are not tracked."));
        }
        for (partition, offset) in offsets {
            let Some(offset) = offset else { continue };
            let Some(position) = offset.get("position") else {
                return Err(ConnectError::failed(
                    "Offset objects should either be null or contain the key 'position'",
                ));
            };
            let Some(position) = position.as_i64() else {
                return Err(ConnectError::failed(
                    "The value for the 'position' key in the offset is expected to be a Long value",
                ));
            };
            if position < 0 {
                return Err(ConnectError::failed(
                    "The value for the 'position' key in the offset should be a non-negative value",
                ));
            }
            if partition.is_null() {
                return Err(ConnectError::failed("Partition objects cannot be null"));
            }
            if partition.get("filename").is_none() {
                return Err(ConnectError::failed(
                    "Partition objects should contain the key 'filename'",
                ));
            }
        }
        Ok(true)
    }
}

/// Reads lines and remembers the byte position after each.
#[derive(Default)]
struct FileSourceTask {
    path: String,
    topic: String,
    batch: usize,
    reader: Option<BufReader<File>>,
    position: u64,
    partition: Option<Json>,
    schema: Option<Arc<Schema>>,
    /// A line read without its terminator yet.
    pending: Vec<u8>,
}

impl SourceTask for FileSourceTask {
    fn start(&mut self, config: &Props, offsets: &dyn OffsetReader) -> Result<()> {
        self.path = config.get("file").cloned().unwrap_or_default();
        self.topic = crate::config::list(config, "topic")
            .into_iter()
            .next()
            .unwrap_or_default();
        self.batch = usize::try_from(crate::config::prop_i64(config, "batch.size", 2000)?)
            .unwrap_or(2000)
            .max(1);
        let partition = Json::obj([("filename", Json::str(self.path.clone()))]);
        self.position = offsets
            .offset(&partition)
            .and_then(|o| o.get("position").and_then(|p| p.as_u64()))
            .unwrap_or(0);
        self.partition = Some(partition);
        self.schema = Some(Arc::new(Schema::of(Type::String)));
        Ok(())
    }

    fn poll(&mut self) -> Result<Vec<SourceRecord>> {
        if self.reader.is_none() {
            match File::open(&self.path) {
                Ok(mut f) => {
                    f.seek(SeekFrom::Start(self.position))
                        .map_err(|e| self.io(e))?;
                    self.reader = Some(BufReader::with_capacity(1 << 20, f));
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    // Kafka waits for the file to appear.
                    std::thread::sleep(Duration::from_millis(200));
                    return Ok(Vec::new());
                }
                Err(e) => return Err(self.io(e)),
            }
        }
        let mut out = Vec::new();
        let Some(mut reader) = self.reader.take() else {
            return Ok(out);
        };
        let mut line = std::mem::take(&mut self.pending);
        while out.len() < self.batch {
            let n = match reader.read_until(b'\n', &mut line) {
                Ok(n) => n,
                Err(e) => {
                    self.reader = Some(reader);
                    return Err(self.io(e));
                }
            };
            if n == 0 || line.last() != Some(&b'\n') {
                break;
            }
            let len = line.len() as u64;
            let mut text = &line[..line.len() - 1];
            if text.last() == Some(&b'\r') {
                text = &text[..text.len() - 1];
            }
            // A lone `\r` also ends a line, as in Kafka's task.
            for part in text.split(|b| *b == b'\r') {
                out.push(self.record(part));
            }
            self.position += len;
            if let Some(last) = out.last_mut() {
                last.source_offset = Json::obj([("position", Json::Int(self.position as i64))]);
            }
            line.clear();
        }
        self.pending = line;
        self.reader = Some(reader);
        if out.is_empty() {
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(out)
    }
}

impl FileSourceTask {
    fn record(&self, line: &[u8]) -> SourceRecord {
        let value = SchemaAndValue {
            schema: self.schema.clone(),
            value: Value::String(String::from_utf8_lossy(line).into_owned()),
        };
        let mut record = ConnectRecord::new(&self.topic, value);
        record.timestamp = Some(crate::now_ms());
        SourceRecord {
            source_partition: self.partition.clone().unwrap_or(Json::Null),
            source_offset: Json::obj([("position", Json::Int(self.position as i64))]),
            record,
        }
    }

    fn io(&self, e: std::io::Error) -> ConnectError {
        io_err(&self.path, e)
    }
}

fn io_err(path: &str, e: std::io::Error) -> ConnectError {
    ConnectError::Io {
        context: format!("file {path}"),
        source: e,
    }
}

/// Appends values, syncing at each flush.
#[derive(Default)]
struct FileSinkTask {
    path: String,
    out: Option<std::io::BufWriter<File>>,
}

impl FileSinkTask {
    fn file(&mut self) -> Result<&mut std::io::BufWriter<File>> {
        if self.out.is_none() {
            let f = OpenOptions::new()
                .create(true)
                .append(true)
                .open(&self.path)
                // Opening can succeed later (a directory not mounted or
                // created yet): retriable, nothing was written.
                .map_err(|e| ConnectError::Retriable {
                    message: format!("cannot open {}: {e}", self.path),
                })?;
            self.out = Some(std::io::BufWriter::with_capacity(1 << 20, f));
        }
        self.out
            .as_mut()
            .ok_or_else(|| ConnectError::data("file not open"))
    }
}

impl SinkTask for FileSinkTask {
    fn start(&mut self, config: &Props) -> Result<()> {
        self.path = config.get("file").cloned().unwrap_or_default();
        Ok(())
    }

    fn put(&mut self, records: Vec<SinkRecord>) -> Result<()> {
        let path = self.path.clone();
        let out = self.file()?;
        for r in records {
            let text = match &r.record.value.value {
                Value::String(s) => s.clone(),
                other => java_to_string(other),
            };
            out.write_all(text.as_bytes())
                .and_then(|()| out.write_all(b"\n"))
                .map_err(|e| io_err(&path, e))?;
        }
        Ok(())
    }

    fn flush(&mut self, _offsets: &SinkOffsets) -> Result<()> {
        // A file that cannot be opened holds nothing of this run (`put`
        // opens it first): nothing to make durable.
        if self.out.is_none() && self.file().is_err() {
            return Ok(());
        }
        let path = self.path.clone();
        let out = self.file()?;
        out.flush().map_err(|e| io_err(&path, e))?;
        out.get_ref().sync_data().map_err(|e| io_err(&path, e))
    }

    fn commit_metadata(&mut self) -> Option<String> {
        let out = self.out.as_mut()?;
        let len = out.get_mut().metadata().ok()?.len();
        Some(format!("weir.file.length={len}"))
    }

    fn restore(&mut self, metadata: Option<&str>) -> Result<()> {
        let Some(len) = metadata
            .and_then(|m| m.strip_prefix("weir.file.length="))
            .and_then(|l| l.parse::<u64>().ok())
        else {
            return Ok(());
        };
        match OpenOptions::new().write(true).open(&self.path) {
            Ok(f) => {
                let current = f.metadata().map_err(|e| io_err(&self.path, e))?.len();
                if current > len {
                    f.set_len(len).map_err(|e| io_err(&self.path, e))?;
                    f.sync_data().map_err(|e| io_err(&self.path, e))?;
                }
                Ok(())
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io_err(&self.path, e)),
        }
    }

    fn stop(&mut self) {
        if let Some(mut out) = self.out.take() {
            let _ = out.flush();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(path: &std::path::Path) -> String {
        std::fs::read_to_string(path).unwrap()
    }

    struct Offsets(Option<serde_json::Value>);
    impl OffsetReader for Offsets {
        fn offset(&self, _p: &Json) -> Option<serde_json::Value> {
            self.0.clone()
        }
    }

    fn props(file: &std::path::Path) -> Props {
        [
            ("file".to_string(), file.display().to_string()),
            ("topic".to_string(), "t".to_string()),
            ("batch.size".to_string(), "2".to_string()),
        ]
        .into()
    }

    #[test]
    fn source_reads_complete_lines_and_resumes_at_the_offset() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("in.txt");
        std::fs::write(&path, "a\r\nbb\ncc\nhalf").unwrap();
        let mut t = FileSourceTask::default();
        t.start(&props(&path), &Offsets(None)).unwrap();
        let lines: Vec<_> = t.poll().unwrap();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0].record.value.value, Value::String("a".into()));
        assert_eq!(lines[1].source_offset.to_text(), r#"{"position":6}"#);
        assert_eq!(
            lines[0].source_partition.to_text(),
            format!(r#"{{"filename":"{}"}}"#, path.display())
        );
        let more = t.poll().unwrap();
        assert_eq!(more.len(), 1);
        assert!(t.poll().unwrap().is_empty());
        let mut again = FileSourceTask::default();
        again
            .start(
                &props(&path),
                &Offsets(Some(serde_json::json!({"position": 6}))),
            )
            .unwrap();
        let rest = again.poll().unwrap();
        assert_eq!(rest[0].record.value.value, Value::String("cc".into()));
    }

    #[test]
    fn sink_cuts_back_to_the_committed_length() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.txt");
        let mut t = FileSinkTask::default();
        t.start(&props(&path)).unwrap();
        let rec = |v: &str| SinkRecord {
            record: ConnectRecord::new("t", SchemaAndValue::schemaless(Value::String(v.into()))),
            kafka_offset: 0,
            original_topic: "t".into(),
            original_partition: 0,
        };
        t.put(vec![rec("one"), rec("two")]).unwrap();
        t.flush(&SinkOffsets::new()).unwrap();
        let meta = t.commit_metadata().unwrap();
        t.put(vec![rec("three")]).unwrap();
        t.stop();
        assert_eq!(read(&path), "one\ntwo\nthree\n");
        let mut again = FileSinkTask::default();
        again.start(&props(&path)).unwrap();
        again.restore(Some(&meta)).unwrap();
        assert_eq!(read(&path), "one\ntwo\n");
    }
}
