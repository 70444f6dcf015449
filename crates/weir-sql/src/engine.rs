//! The statement executor: the metastore, persistent queries and the
//! command topic.
//!
//! Statements that change the metastore or start and stop queries are
//! validated, then appended to the command topic
//! (`_confluent-ksql-<service.id>_command_topic`, one partition), then
//! applied. At start the server replays that topic, so streams, tables
//! and queries survive restarts; a query's id carries the offset of its
//! command (`CSAS_NAME_7`), so it is the same after a replay.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use rdkafka::producer::FutureProducer;
use serde_json::{json, Value as J};
use tokio::sync::Mutex;
use tracing::{info, warn};

use crate::ast::*;
use crate::catalog::{source_from_create, MetaStore, Source, WithProps};
use crate::error::{Result, SqlError};
use crate::format::{Codec, Format, RegistryFormat};
use crate::functions;
use crate::parser;
use crate::plan::{self, Feed, Op, Plan};
use crate::processing_log::{self, ProcessingLog};
use crate::registry::Registry;
use crate::runtime::{self, Admin, KafkaSettings, Output, QueryHandle, QuerySpec, Sink};
use crate::sr::{self, SrKind};
use crate::task::OutRow;
use crate::types::{SqlType, Value};

/// Server settings, by ksqlDB's names.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// `ksql.service.id` (default `default_`).
    pub service_id: String,
    pub kafka: KafkaSettings,
    /// Every `ksql.*` setting, for SHOW PROPERTIES and query defaults.
    pub properties: BTreeMap<String, String>,
}

impl EngineConfig {
    pub fn command_topic(&self) -> String {
        format!("_confluent-ksql-{}_command_topic", self.service_id)
    }

    fn prop(&self, name: &str) -> Option<&str> {
        self.properties.get(name).map(String::as_str)
    }

    /// `ksql.streams.commit.interval.ms`: ksqlDB's default is 2000 (Kafka
    /// Streams' 100 ms under exactly-once is overridden by ksqlDB).
    pub fn commit_interval(&self) -> std::time::Duration {
        let ms = self
            .prop("ksql.streams.commit.interval.ms")
            .and_then(|v| v.trim().parse::<u64>().ok())
            .unwrap_or(2000);
        std::time::Duration::from_millis(ms.max(1))
    }

    /// `weir.sql.join.history.retention.ms`: how far behind the table's
    /// latest time a stream–table join through `Join-repartition` keeps
    /// the table's earlier versions (one hour by default; see
    /// `task::History`).
    pub fn history_retention_ms(&self) -> i64 {
        self.prop("weir.sql.join.history.retention.ms")
            .and_then(|v| v.trim().parse::<i64>().ok())
            .unwrap_or(crate::task::HISTORY_RETENTION_MS)
            .max(0)
    }

    /// `ksql.streams.repartition.purge.interval.ms`: how often a query
    /// deletes the repartition records it has consumed (Kafka Streams'
    /// default, 30 s).
    pub fn purge_interval(&self) -> std::time::Duration {
        let ms = self
            .prop("ksql.streams.repartition.purge.interval.ms")
            .and_then(|v| v.trim().parse::<u64>().ok())
            .unwrap_or(30_000);
        std::time::Duration::from_millis(ms)
    }

    fn flag(&self, name: &str) -> bool {
        self.prop(name)
            .is_some_and(|v| v.eq_ignore_ascii_case("true"))
    }

    /// `ksql.logging.processing.topic.name`, by default
    /// `<service id>ksql_processing_log`.
    pub fn processing_log_topic(&self) -> String {
        self.prop("ksql.logging.processing.topic.name").map_or_else(
            || format!("{}ksql_processing_log", self.service_id),
            str::to_string,
        )
    }
}

/// A running persistent query.
#[derive(Debug)]
pub struct PersistentQuery {
    pub id: String,
    pub statement: String,
    pub sink: String,
    pub sink_topic: String,
    pub sources: Vec<String>,
    pub changelog: Option<String>,
    /// The repartition topics of a query that re-keys.
    pub repartitions: Vec<String>,
    /// Kafka Streams' description of the query's topology, for `EXPLAIN`.
    pub topology: String,
    /// ksqlDB's `executionPlan` text, for `EXPLAIN`.
    pub execution_plan: String,
    /// The query's tasks as Kafka Streams names them (`0_1`: sub-topology
    /// 0, partition 1) and the partitions each reads, for `EXPLAIN`.
    pub tasks: Vec<(String, Vec<(String, i32)>)>,
    /// The consumer group its offsets are committed in.
    pub group_id: String,
    pub handle: QueryHandle,
}

#[derive(Debug, Default)]
struct State {
    meta: MetaStore,
    queries: BTreeMap<String, PersistentQuery>,
    /// Command ids to their status messages (GET /status).
    statuses: BTreeMap<String, String>,
}

/// What SELECTs read without the engine's lock, which a DDL statement
/// holds across its command-topic write: the metastore and the tasks of
/// the materialized tables, republished after every change.
#[derive(Debug, Default)]
struct Snapshot {
    meta: MetaStore,
    /// A table's name to the task of the aggregation that materializes it.
    materialized: BTreeMap<String, (Vec<runtime::TaskRef>, Arc<runtime::QueryStats>)>,
}

/// The engine behind the REST API.
pub struct Engine {
    pub config: EngineConfig,
    admin: Admin,
    producer: FutureProducer,
    state: Mutex<State>,
    snapshot: std::sync::RwLock<Arc<Snapshot>>,
    cluster_id: String,
    /// `ksql.schema.registry.url`, for AVRO, PROTOBUF and JSON_SR.
    registry: Option<Arc<Registry>>,
    /// Where persistent queries log undeserializable records: the
    /// processing-log topic, when it exists at start (or was auto-created).
    processing_log: Option<ProcessingLog>,
    /// The REST listener's address, once it listens.
    listener: std::sync::OnceLock<String>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("service_id", &self.config.service_id)
            .finish()
    }
}

/// The result of one statement for `/ksql`.
pub type Entity = J;

/// Request-scoped settings: `streamsProperties` and `sessionVariables`.
#[derive(Debug, Clone, Default)]
pub struct Session {
    pub properties: BTreeMap<String, String>,
    pub variables: BTreeMap<String, String>,
}

impl Session {
    fn offset_reset(&self, config: &EngineConfig) -> String {
        self.properties
            .get("auto.offset.reset")
            .or_else(|| self.properties.get("ksql.streams.auto.offset.reset"))
            .map(String::as_str)
            .or(config.prop("ksql.streams.auto.offset.reset"))
            .unwrap_or("latest")
            .to_ascii_lowercase()
    }
}

/// ksqlDB's name for a query's thread count.
const STREAM_THREADS: &str = "ksql.streams.num.stream.threads";

impl Session {
    /// `ksql.streams.num.stream.threads` (ksqlDB's default, 4): from the
    /// statement's properties, else the server's.
    fn stream_threads(&self, config: &EngineConfig) -> usize {
        self.properties
            .get(STREAM_THREADS)
            .map(String::as_str)
            .or(config.prop(STREAM_THREADS))
            .and_then(|v| v.trim().parse::<usize>().ok())
            .unwrap_or(4)
            .clamp(1, 64)
    }
}

/// The one key a pull query's WHERE clause names (`KEY = literal`, of the
/// key's type), so only that key's rows are read.
fn pull_key(query: &Query, src: &Source) -> Option<Vec<Value>> {
    let [(name, ty)] = src.key.as_slice() else {
        return None;
    };
    let Some(Expr::Binary {
        op: BinOp::Eq,
        left,
        right,
    }) = &query.where_
    else {
        return None;
    };
    let (col, lit) = match (left.as_ref(), right.as_ref()) {
        (Expr::Column { name, .. }, Expr::Literal(l))
        | (Expr::Literal(l), Expr::Column { name, .. }) => (name, l),
        _ => return None,
    };
    if col != name {
        return None;
    }
    let v = match (ty, crate::expr::literal_value(lit).0) {
        (SqlType::Bigint, Value::Int(i)) => Value::Bigint(i64::from(i)),
        (SqlType::Int, v @ Value::Int(_))
        | (SqlType::Bigint, v @ Value::Bigint(_))
        | (SqlType::String, v @ Value::String(_)) => v,
        _ => return None,
    };
    Some(vec![v])
}

/// A command as stored in the command topic.
fn command_value(statement: &str, session: &Session) -> Vec<u8> {
    json!({
        "statement": statement,
        "streamsProperties": session.properties,
        "originalProperties": {},
    })
    .to_string()
    .into_bytes()
}

fn status_entity(
    statement: &str,
    command_id: &str,
    message: &str,
    query_id: Option<&str>,
    seq: i64,
) -> Entity {
    json!({
        "@type": "currentStatus",
        "statementText": statement,
        "commandId": command_id,
        "commandStatus": {"status": "SUCCESS", "message": message, "queryId": query_id},
        "commandSequenceNumber": seq,
        "warnings": [],
    })
}

impl Engine {
    /// Connects, creates the command topic if needed and replays it.
    pub async fn open(config: EngineConfig) -> Result<Arc<Engine>> {
        let admin = Admin::new(&config.kafka)?;
        let producer: FutureProducer = config
            .kafka
            .config()
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("linger.ms", "0")
            .set("partitioner", "murmur2_random")
            .create()
            .map_err(|e| SqlError::kafka("create producer", e))?;
        let cluster_id = runtime::blocking(|| {
            use rdkafka::producer::Producer;
            producer
                .client()
                .fetch_metadata(None, std::time::Duration::from_secs(30))
                .ok();
            producer
                .client()
                .fetch_cluster_id(std::time::Duration::from_secs(10))
        })
        .unwrap_or_default();
        let registry = Registry::from_config(&config)?;
        let processing_log = Self::open_processing_log(&admin, &config).await?;
        let engine = Arc::new(Engine {
            registry,
            processing_log,
            admin,
            producer,
            state: Mutex::new(State::default()),
            snapshot: std::sync::RwLock::default(),
            cluster_id,
            config,
            listener: std::sync::OnceLock::new(),
        });
        let topic = engine.config.command_topic();
        engine
            .admin
            .create(
                &topic,
                1,
                &[("cleanup.policy", "delete"), ("retention.ms", "-1")],
            )
            .await?;
        engine.replay().await?;
        engine.create_processing_log_stream().await?;
        Ok(engine)
    }

    /// ksqlDB's `ksql.logging.processing.topic.auto.create` (with
    /// `.topic.partitions` and `.topic.replication.factor`): the topic is
    /// created at start. Queries log to it whenever it exists.
    async fn open_processing_log(
        admin: &Admin,
        config: &EngineConfig,
    ) -> Result<Option<ProcessingLog>> {
        let topic = config.processing_log_topic();
        if config.flag("ksql.logging.processing.topic.auto.create") {
            let partitions = config
                .prop("ksql.logging.processing.topic.partitions")
                .and_then(|p| p.parse().ok())
                .unwrap_or(1);
            admin.create(&topic, partitions, &[]).await?;
        }
        Ok(admin.partitions(&topic)?.map(|_| ProcessingLog {
            topic,
            include_rows: config.flag("ksql.logging.processing.rows.include"),
        }))
    }

    /// ksqlDB's `ksql.logging.processing.stream.auto.create`: the
    /// processing-log stream (`ksql.logging.processing.stream.name`) is
    /// created over the topic, through the command topic like any
    /// statement, unless it exists.
    async fn create_processing_log_stream(&self) -> Result<()> {
        let Some(log) = &self.processing_log else {
            return Ok(());
        };
        if !self
            .config
            .flag("ksql.logging.processing.stream.auto.create")
        {
            return Ok(());
        }
        let name = self
            .config
            .prop("ksql.logging.processing.stream.name")
            .unwrap_or(processing_log::DEFAULT_STREAM)
            .to_ascii_uppercase();
        if self.state.lock().await.meta.get(&name).is_ok() {
            return Ok(());
        }
        let text = processing_log::create_stream_statement(&name, &log.topic);
        self.execute(&text, &Session::default())
            .await
            .map_err(|(e, _, _)| e)?;
        Ok(())
    }

    pub fn cluster_id(&self) -> &str {
        &self.cluster_id
    }

    async fn replay(&self) -> Result<()> {
        let topic = self.config.command_topic();
        let settings = self.config.kafka.clone();
        let records = tokio::task::spawn_blocking(move || read_all(&settings, &topic))
            .await
            .map_err(|e| SqlError::Internal {
                message: e.to_string(),
            })??;
        let n = records.len();
        for (offset, value) in records {
            let Ok(cmd) = serde_json::from_slice::<J>(&value) else {
                warn!(offset, "skipping an unreadable command");
                continue;
            };
            let text = cmd["statement"].as_str().unwrap_or_default().to_string();
            let mut session = Session::default();
            if let Some(props) = cmd["streamsProperties"].as_object() {
                for (k, v) in props {
                    session.properties.insert(
                        k.clone(),
                        v.as_str().map_or_else(|| v.to_string(), str::to_string),
                    );
                }
            }
            let parsed = match parser::parse_one(&text, &BTreeMap::new()) {
                Ok(p) => p,
                Err(e) => {
                    warn!(offset, error = %e, "skipping a command that no longer parses");
                    continue;
                }
            };
            let mut state = self.state.lock().await;
            let applied = self
                .apply(&mut state, &parsed, &session, offset, true)
                .await;
            self.publish(&state);
            if let Err(e) = applied {
                warn!(offset, statement = %text, error = %e, "command failed on replay");
            }
        }
        info!(commands = n, "command topic replayed");
        Ok(())
    }

    /// Executes every statement of `text` (POST /ksql).
    pub async fn execute(
        &self,
        text: &str,
        session: &Session,
    ) -> std::result::Result<Vec<Entity>, (SqlError, String, Vec<Entity>)> {
        let mut session = session.clone();
        let mut out = Vec::new();
        let statements = parser::parse_script(text, &session.variables)
            .map_err(|e| (e, text.to_string(), Vec::new()))?;
        for parsed in statements {
            match self.execute_one(&parsed, &mut session).await {
                Ok(Some(e)) => out.push(e),
                Ok(None) => {}
                Err(e) => return Err((e, parsed.text, out)),
            }
        }
        Ok(out)
    }

    async fn execute_one(&self, parsed: &Parsed, session: &mut Session) -> Result<Option<Entity>> {
        let text = &parsed.text;
        match &parsed.statement {
            Statement::Select(_) => Err(SqlError::invalid(
                "The following statement types should be issued to the websocket endpoint '/query':\n\t* PRINT\n\t* SELECT",
            )),
            Statement::Print { .. } => Err(SqlError::invalid(
                "The following statement types should be issued to the websocket endpoint '/query':\n\t* PRINT\n\t* SELECT",
            )),
            Statement::Set { name, value } => {
                session.properties.insert(name.clone(), value.clone());
                Ok(None)
            }
            Statement::Unset(name) => {
                session.properties.remove(name);
                Ok(None)
            }
            Statement::Define { name, value } => {
                session.variables.insert(name.clone(), value.clone());
                Ok(None)
            }
            Statement::Undefine(name) => {
                session.variables.remove(name);
                Ok(None)
            }
            Statement::RunScript(_) => Err(SqlError::invalid(
                "RUN SCRIPT is a CLI command: run it in `weir sql`, which sends the script's statements",
            )),
            Statement::Show { what, extended } => self.show(text, *what, *extended, session).await.map(Some),
            Statement::Describe { name, extended } => {
                let state = self.state.lock().await;
                let src = state.meta.get(name).map_err(|_| {
                    SqlError::invalid(format!("Could not find STREAM/TABLE '{name}' in the Metastore"))
                })?;
                Ok(Some(json!({
                    "@type": "sourceDescription",
                    "statementText": text,
                    "sourceDescription": self.describe(&state, src, *extended),
                    "warnings": [],
                })))
            }
            Statement::DescribeAll { kind, extended } => {
                let state = self.state.lock().await;
                let descs: Vec<J> = state
                    .meta
                    .sources
                    .values()
                    .filter(|s| s.kind == *kind)
                    .map(|s| self.describe(&state, s, *extended))
                    .collect();
                Ok(Some(json!({
                    "@type": "source_descriptions",
                    "statementText": text,
                    "sourceDescriptions": descs,
                    "warnings": [],
                })))
            }
            Statement::DescribeFunction(name) => describe_function(text, name).map(Some),
            Statement::Explain(target) => self.explain(text, target).await.map(Some),
            Statement::InsertValues { target, columns, values } => {
                self.insert_values(target, columns, values).await?;
                Ok(None)
            }
            _ => {
                // Metastore changes: validate, log to the command topic, apply.
                let inferred = self.infer_columns(parsed)?;
                let parsed = inferred.as_ref().unwrap_or(parsed);
                let text = &parsed.text;
                // A persistent query's thread count is kept with its
                // statement, so a restart under another server default
                // keeps its threads (and transactional ids); a command
                // without it was written before queries had tasks.
                let pinned;
                let session: &Session = match &parsed.statement {
                    Statement::CreateAsSelect(_) | Statement::InsertInto { .. }
                        if !session.properties.contains_key(STREAM_THREADS) =>
                    {
                        let mut s = session.clone();
                        s.properties.insert(
                            STREAM_THREADS.to_string(),
                            session.stream_threads(&self.config).to_string(),
                        );
                        pinned = s;
                        &pinned
                    }
                    _ => session,
                };
                let mut state = self.state.lock().await;
                self.validate(&state, parsed, session).await?;
                let (_, seq) = runtime::produce_sync(
                    &self.producer,
                    &self.config.command_topic(),
                    Some(0),
                    Some(command_id(&parsed.statement).into_bytes()),
                    Some(command_value(text, session)),
                    None,
                )
                .await?;
                let applied = self.apply(&mut state, parsed, session, seq, false).await;
                self.publish(&state);
                applied.map(Some)
            }
        }
    }

    /// Checks a metastore-changing statement without changing anything.
    async fn validate(&self, state: &State, parsed: &Parsed, session: &Session) -> Result<()> {
        let mut scratch = State {
            meta: state.meta.clone(),
            ..State::default()
        };
        for (id, q) in &state.queries {
            scratch.queries.insert(
                id.clone(),
                PersistentQuery {
                    id: q.id.clone(),
                    statement: q.statement.clone(),
                    sink: q.sink.clone(),
                    sink_topic: q.sink_topic.clone(),
                    sources: q.sources.clone(),
                    changelog: None,
                    repartitions: Vec::new(),
                    topology: String::new(),
                    execution_plan: String::new(),
                    tasks: Vec::new(),
                    group_id: String::new(),
                    handle: QueryHandle {
                        stop: Arc::new(std::sync::atomic::AtomicBool::new(true)),
                        threads: Vec::new(),
                        tasks: q.handle.tasks.clone(),
                        stats: q.handle.stats.clone(),
                        materialized: q.handle.materialized,
                    },
                },
            );
        }
        self.check(&scratch, parsed, session)
    }

    /// Validation that needs no I/O beyond metadata.
    fn check(&self, state: &State, parsed: &Parsed, _session: &Session) -> Result<()> {
        match &parsed.statement {
            Statement::CreateSource(c) => {
                let (src, partitions) = source_from_create(c, &parsed.text)?;
                self.check_new_name(state, &c.name, c.or_replace, c.if_not_exists)?;
                let exists = self.admin.partitions(&src.topic)?;
                if exists.is_none() && partitions.is_none() {
                    return Err(SqlError::invalid(format!(
                        "Topic '{}' does not exist. If you want to create a new topic for the stream/table please re-run the statement providing the required 'PARTITIONS' configuration in the WITH clause (and optionally 'REPLICAS'). For example: CREATE STREAM {} (...) WITH (KAFKA_TOPIC='{}', PARTITIONS=2, REPLICAS=1, FORMAT='JSON');",
                        src.topic, c.name, src.topic
                    )));
                }
                if let (Some(have), Some(want)) = (exists, partitions) {
                    if have != want {
                        return Err(SqlError::invalid(format!(
                            "A Kafka topic with the name '{}' already exists, with different partition/replica configuration than required. KSQL expects {want} partitions (topic has {have}).",
                            src.topic
                        )));
                    }
                }
                Ok(())
            }
            Statement::CreateAsSelect(c) => {
                self.check_new_name(state, &c.name, c.or_replace, c.if_not_exists)?;
                let plan = plan::plan(&c.query, &state.meta, Some(&format!("`{}`", c.name)))?;
                if plan.kind != c.kind {
                    return Err(SqlError::invalid(match c.kind {
                        SourceKind::Stream => "Invalid result type. Your SELECT query produces a TABLE. Please use CREATE TABLE AS SELECT statement instead.".to_string(),
                        SourceKind::Table => "Invalid result type. Your SELECT query produces a STREAM. Please use CREATE STREAM AS SELECT statement instead.".to_string(),
                    }));
                }
                sink_source(c.kind, &c.name, &c.props, &plan, &parsed.text)?;
                Ok(())
            }
            Statement::InsertInto { target, query, .. } => {
                let sink = state.meta.get(target)?;
                if sink.read_only {
                    return Err(SqlError::invalid(format!(
                        "Cannot insert into read-only {}: {target}",
                        sink.kind.name().to_lowercase()
                    )));
                }
                if sink.is_table() {
                    return Err(SqlError::invalid(format!("INSERT INTO can only be used to insert into a stream. {target} is a table.")));
                }
                if !sink.headers.is_empty() {
                    return Err(SqlError::invalid(format!(
                        "Cannot insert into {target} because it has header columns"
                    )));
                }
                let plan = plan::plan(query, &state.meta, Some(&format!("`{target}`")))?;
                if plan.key != sink.key || plan.value != sink.value {
                    return Err(SqlError::invalid(format!(
                        "Incompatible schema between results and sink.\nResult schema is {}\nSink schema is {}",
                        schema_text(&plan.key, &plan.value),
                        schema_text(&sink.key, &sink.value)
                    )));
                }
                Ok(())
            }
            Statement::Drop {
                kind,
                name,
                if_exists,
                ..
            } => match state.meta.sources.get(name) {
                None if *if_exists => Ok(()),
                None => Err(SqlError::invalid(format!(
                    "{} {name} does not exist.",
                    title(*kind)
                ))),
                Some(s) if s.kind != *kind => Err(SqlError::invalid(format!(
                    "Incompatible data source type is {}, but statement was DROP {}",
                    s.kind.name(),
                    kind.name()
                ))),
                Some(_) => {
                    let readers: Vec<&str> = state
                        .queries
                        .values()
                        .filter(|q| q.sources.contains(name))
                        .map(|q| q.id.as_str())
                        .collect();
                    let writers: Vec<&str> = state
                        .queries
                        .values()
                        .filter(|q| q.sink == *name)
                        .map(|q| q.id.as_str())
                        .collect();
                    if readers.is_empty() && writers.is_empty() {
                        Ok(())
                    } else {
                        Err(SqlError::invalid(format!(
                                "Cannot drop {name}.\nThe following queries read from this source: [{}].\nThe following queries write into this source: [{}].\nYou need to terminate them before dropping {name}.",
                                readers.join(", "),
                                writers.join(", ")
                            )))
                    }
                }
            },
            Statement::Terminate { query_id: Some(id) } => {
                if state.queries.contains_key(id) {
                    Ok(())
                } else {
                    Err(SqlError::invalid(format!("Unknown queryId: {id}")))
                }
            }
            _ => Ok(()),
        }
    }

    fn check_new_name(
        &self,
        state: &State,
        name: &str,
        or_replace: bool,
        if_not_exists: bool,
    ) -> Result<()> {
        if let Some(existing) = state.meta.sources.get(name) {
            if or_replace {
                return Err(SqlError::invalid(format!(
                    "CREATE OR REPLACE of an existing {} is not supported by Weir yet: drop {name} first",
                    existing.kind.name().to_lowercase()
                )));
            }
            if !if_not_exists {
                return Err(SqlError::invalid(format!(
                    "Cannot add {} '{name}': A {} with the same name already exists",
                    existing.kind.name().to_lowercase(),
                    existing.kind.name().to_lowercase()
                )));
            }
        }
        Ok(())
    }

    /// Applies a validated (or replayed) statement.
    async fn apply(
        &self,
        state: &mut State,
        parsed: &Parsed,
        session: &Session,
        seq: i64,
        replaying: bool,
    ) -> Result<Entity> {
        if replaying {
            self.check(state, parsed, session)?;
        }
        let text = &parsed.text;
        let id = command_id(&parsed.statement);
        let entity = match &parsed.statement {
            Statement::CreateSource(c) => {
                if let Some(m) = exists_message(state, &c.name, c.kind, c.if_not_exists) {
                    return Ok(status_entity(text, &id, &m, None, seq));
                }
                let (mut src, partitions) = source_from_create(c, text)?;
                if let Some(p) = partitions {
                    if self.admin.partitions(&src.topic)?.is_none() {
                        self.admin.create(&src.topic, p, &[]).await?;
                    }
                }
                self.bind_formats(&mut src, &c.props, false)?;
                state.meta.sources.insert(c.name.clone(), src);
                status_entity(text, &id, &format!("{} created", title(c.kind)), None, seq)
            }
            Statement::CreateAsSelect(c) => {
                if let Some(m) = exists_message(state, &c.name, c.kind, c.if_not_exists) {
                    return Ok(status_entity(text, &id, &m, None, seq));
                }
                let plan = plan::plan(&c.query, &state.meta, Some(&format!("`{}`", c.name)))?;
                let (mut sink, partitions) = sink_source(c.kind, &c.name, &c.props, &plan, text)?;
                self.bind_formats(&mut sink, &c.props, true)?;
                let partitions = match partitions {
                    Some(p) => p,
                    None => self
                        .admin
                        .partitions(&plan.inputs[0].source.topic)?
                        .unwrap_or(1),
                };
                let prefix = if c.kind == SourceKind::Stream {
                    "CSAS"
                } else {
                    "CTAS"
                };
                let query_id = format!("{prefix}_{}_{seq}", c.name);
                self.start_query(state, &query_id, text, plan, &sink, partitions, session)
                    .await?;
                state.meta.sources.insert(c.name.clone(), sink);
                status_entity(
                    text,
                    &id,
                    &format!("Created query with ID {query_id}"),
                    Some(&query_id),
                    seq,
                )
            }
            Statement::InsertInto {
                target,
                query,
                props,
            } => {
                let sink = state.meta.get(target)?.clone();
                let plan = plan::plan(query, &state.meta, Some(&format!("`{target}`")))?;
                let partitions = self.admin.partitions(&sink.topic)?.unwrap_or(1);
                let query_id = WithProps(props)
                    .text("QUERY_ID")
                    .unwrap_or_else(|| format!("INSERTQUERY_{seq}"));
                self.start_query(state, &query_id, text, plan, &sink, partitions, session)
                    .await?;
                status_entity(
                    text,
                    &id,
                    &format!("Created query with ID {query_id}"),
                    Some(&query_id),
                    seq,
                )
            }
            Statement::Drop {
                kind,
                name,
                delete_topic,
                ..
            } => {
                let Some(src) = state.meta.sources.remove(name) else {
                    return Ok(status_entity(
                        text,
                        &id,
                        &format!("Source `{name}` does not exist."),
                        None,
                        seq,
                    ));
                };
                if *delete_topic {
                    self.admin.delete(&[&src.topic]).await?;
                }
                let _ = kind;
                status_entity(
                    text,
                    &id,
                    &format!("Source `{name}` (topic: {}) was dropped.", src.topic),
                    None,
                    seq,
                )
            }
            Statement::Terminate { query_id } => {
                let ids: Vec<String> = match query_id {
                    Some(q) => vec![q.clone()],
                    None => state.queries.keys().cloned().collect(),
                };
                for q in ids {
                    if let Some(mut pq) = state.queries.remove(&q) {
                        runtime::blocking(|| pq.handle.stop());
                        // Its internal topics go with it, as ksqlDB deletes them.
                        for t in pq.changelog.iter().chain(&pq.repartitions) {
                            if let Err(e) = self.admin.delete(&[t]).await {
                                warn!(query = %q, topic = %t, error = %e, "could not delete an internal topic");
                            }
                        }
                    }
                }
                status_entity(text, &id, "Query terminated.", None, seq)
            }
            other => {
                return Err(SqlError::Internal {
                    message: format!("not a command: {other:?}"),
                })
            }
        };
        if let Some(m) = entity["commandStatus"]["message"].as_str() {
            state.statuses.insert(id, m.to_string());
        }
        Ok(entity)
    }

    /// Binds the registry formats of a new source to their subjects
    /// (`<topic>-key`, `<topic>-value`): the schema of `KEY_SCHEMA_ID` /
    /// `VALUE_SCHEMA_ID` (registered under the subject too for a query's
    /// output when `register_ids`), else the schema of the columns,
    /// registered as ksqlDB registers it.
    fn bind_formats(&self, src: &mut Source, props: &Props, register_ids: bool) -> Result<()> {
        let p = WithProps(props);
        for (key, id_prop) in [(true, "KEY_SCHEMA_ID"), (false, "VALUE_SCHEMA_ID")] {
            let id = p.int(id_prop)?.map(|i| i as i32);
            let fmt = if key {
                &src.key_format
            } else {
                &src.value_format
            };
            let name_prop = if key {
                "KEY_SCHEMA_FULL_NAME"
            } else {
                "VALUE_SCHEMA_FULL_NAME"
            };
            let full_name = p.text(name_prop);
            if full_name.is_some() && fmt.name() != "PROTOBUF_NOSR" {
                return Err(SqlError::invalid(format!(
                    "{name_prop} is supported by Weir only with the PROTOBUF_NOSR format, not {}",
                    fmt.name()
                )));
            }
            if fmt.is_nosr() {
                if id.is_some() {
                    return Err(SqlError::invalid(format!(
                        "{id_prop} is only allowed with a schema registry format (AVRO, PROTOBUF, JSON_SR), not {}",
                        fmt.name()
                    )));
                }
                // The schema ksqlDB derives from the columns, without a
                // registry.
                let kind = fmt.sr_kind().unwrap_or(SrKind::Avro);
                if !key && kind == SrKind::Protobuf && src.value.len() == 1 && !src.wrap_single {
                    return Err(SqlError::invalid(
                        "'WRAP_SINGLE_VALUE' is not supported by the PROTOBUF_NOSR format",
                    ));
                }
                let (cols, wrapped) = if key {
                    (&src.key, src.key.len() != 1 || kind == SrKind::Protobuf)
                } else {
                    (&src.value, src.value.len() != 1 || src.wrap_single)
                };
                let schema = sr::schema_named(kind, cols, wrapped, full_name.as_deref());
                let parsed = sr::Parsed::parse(kind, &schema, &[])?;
                let bound = Format::Registry(RegistryFormat {
                    kind,
                    bound: Some(Arc::new(sr::Bound::new(0, parsed, Arc::new(sr::NoLookup)))),
                    framed: false,
                });
                if key {
                    src.key_format = bound;
                } else {
                    src.value_format = bound;
                }
                continue;
            }
            let Some(kind) = fmt.sr_kind() else {
                if id.is_some() {
                    return Err(SqlError::invalid(format!(
                        "{id_prop} is only allowed with a schema registry format (AVRO, PROTOBUF, JSON_SR), not {}",
                        fmt.name()
                    )));
                }
                continue;
            };
            let registry = self.registry.as_ref().ok_or_else(|| {
                SqlError::invalid(format!(
                    "Cannot use the {} format: no schema registry is configured (set ksql.schema.registry.url)",
                    kind.name()
                ))
            })?;
            let (cols, wrapped) = if key {
                (&src.key, src.key.len() != 1 || kind == SrKind::Protobuf)
            } else {
                if kind == SrKind::Protobuf && src.value.len() == 1 && !src.wrap_single {
                    return Err(SqlError::invalid(
                        "'WRAP_SINGLE_VALUE' is not supported by the PROTOBUF format",
                    ));
                }
                (&src.value, src.value.len() != 1 || src.wrap_single)
            };
            let subject = format!("{}-{}", src.topic, if key { "key" } else { "value" });
            let bound = runtime::blocking(|| {
                registry.bind(kind, &subject, cols, wrapped, id, register_ids)
            })?;
            let bound = Format::Registry(RegistryFormat {
                kind,
                bound: Some(bound),
                framed: true,
            });
            if key {
                src.key_format = bound;
            } else {
                src.value_format = bound;
            }
        }
        Ok(())
    }

    /// A repartition topic's key codec in a registry format that needs a
    /// schema of its own (a join key of another type than its format's
    /// source key): bound to the schema of its column, registered under
    /// the topic's `-key` subject as ksqlDB registers it (the `_NOSR`
    /// formats: derived from the column, without a registry). `None`: the
    /// plan's codec serves as it is.
    fn bind_rekey(&self, codec: &Codec, topic: &str) -> Result<Option<Codec>> {
        let Format::Registry(r) = &codec.format else {
            return Ok(None);
        };
        if r.bound.is_some() {
            return Ok(None);
        }
        let wrapped = codec.columns.len() != 1 || r.kind == SrKind::Protobuf;
        let bound = if r.framed {
            let registry = self.registry.as_ref().ok_or_else(|| {
                SqlError::invalid(format!(
                    "Cannot use the {} format: no schema registry is configured (set ksql.schema.registry.url)",
                    r.kind.name()
                ))
            })?;
            let subject = format!("{topic}-key");
            runtime::blocking(|| {
                registry.bind(r.kind, &subject, &codec.columns, wrapped, None, false)
            })?
        } else {
            let schema = sr::schema_named(r.kind, &codec.columns, wrapped, None);
            let parsed = sr::Parsed::parse(r.kind, &schema, &[])?;
            Arc::new(sr::Bound::new(0, parsed, Arc::new(sr::NoLookup)))
        };
        let format = Format::Registry(RegistryFormat {
            kind: r.kind,
            bound: Some(bound),
            framed: r.framed,
        });
        Ok(Some(Codec::new(format, codec.columns.clone(), false)))
    }

    /// A CREATE STREAM|TABLE in a registry format that declares no key or
    /// no value columns gets them from the registry (the schema of
    /// `KEY_SCHEMA_ID`/`VALUE_SCHEMA_ID`, else the subject's latest), as
    /// ksqlDB infers them. The statement is rewritten with the columns and
    /// the schema ids, so replaying it gives the same source.
    fn infer_columns(&self, parsed: &Parsed) -> Result<Option<Parsed>> {
        let Statement::CreateSource(c) = &parsed.statement else {
            return Ok(None);
        };
        let p = WithProps(&c.props);
        let Ok((key_format, value_format)) = p.formats(None, None) else {
            return Ok(None);
        };
        let Some(topic) = p.text("KAFKA_TOPIC") else {
            return Ok(None);
        };
        let has_key = c
            .columns
            .iter()
            .any(|col| matches!(col.role, ColumnRole::Key | ColumnRole::PrimaryKey));
        let has_value = c.columns.iter().any(|col| col.role == ColumnRole::Value);
        let mut out = c.clone();
        let mut changed = false;
        for (key, fmt, declared) in [
            (true, &key_format, has_key),
            (false, &value_format, has_value),
        ] {
            if fmt.is_nosr() {
                if !declared && !key {
                    return Err(SqlError::invalid(format!(
                        "The {} format needs declared value columns: without a schema registry there is nothing to infer them from",
                        fmt.name()
                    )));
                }
                continue;
            }
            let Some(kind) = fmt.sr_kind() else { continue };
            let id_prop = if key {
                "KEY_SCHEMA_ID"
            } else {
                "VALUE_SCHEMA_ID"
            };
            let id = p.int(id_prop)?.map(|i| i as i32);
            if declared {
                if id.is_some() {
                    return Err(SqlError::invalid(format!(
                        "Table elements and {id_prop} cannot both exist for create statement."
                    )));
                }
                continue;
            }
            // A stream may have no key; it is inferred only when asked for.
            if key && c.kind == SourceKind::Stream && id.is_none() && p.text("KEY_FORMAT").is_none()
            {
                continue;
            }
            let registry = self.registry.as_ref().ok_or_else(|| {
                SqlError::invalid(format!(
                    "Cannot infer columns from the {} format: no schema registry is configured (set ksql.schema.registry.url)",
                    kind.name()
                ))
            })?;
            let (what, subject) = if key {
                ("keys", format!("{topic}-key"))
            } else {
                ("values", format!("{topic}-value"))
            };
            let (id, schema, parsed) = match id {
                Some(id) => {
                    let (s, p) = runtime::blocking(|| registry.by_id_parsed(kind, id))?;
                    (id, s, p)
                }
                None => runtime::blocking(|| registry.latest(kind, &subject))?.ok_or_else(|| {
                    SqlError::invalid(format!(
                        "Schema for message {what} on topic '{topic}' does not exist in the Schema Registry.Subject: {subject}\n\nPossible causes include:\n- The topic itself does not exist\n\t-> Use SHOW TOPICS; to check\n- Messages on the topic are not serialized using a format Schema Registry supports\n\t-> Use PRINT '{topic}' FROM BEGINNING; to verify\n- Messages on the topic have not been serialized using a Confluent Schema Registry supported serializer\n\t-> See https://docs.confluent.io/current/schema-registry/docs/serdes-develop/index.html\n- The schema is registered on a different instance of the Schema Registry\n\t-> Use the REST API to query the target Schema Registry."
                    ))
                })?,
            };
            let single = if key { "ROWKEY" } else { "ROWVAL" };
            let (cols, wrapped) = if kind == SrKind::JsonSr {
                crate::sr::json_schema_columns(&schema.schema, single)?
            } else {
                crate::sr::columns_of(&parsed, single)?
            };
            let role = match (key, c.kind) {
                (false, _) => ColumnRole::Value,
                (true, SourceKind::Table) => ColumnRole::PrimaryKey,
                (true, SourceKind::Stream) => ColumnRole::Key,
            };
            out.columns
                .extend(cols.into_iter().map(|(name, ty)| ColumnDef {
                    name,
                    ty,
                    role,
                    header_key: None,
                }));
            out.props
                .insert(id_prop.to_string(), Literal::Integer(i64::from(id)));
            if !key && !wrapped {
                out.props
                    .insert("WRAP_SINGLE_VALUE".to_string(), Literal::Boolean(false));
            }
            changed = true;
        }
        if !changed {
            return Ok(None);
        }
        // Key columns first, as declared ones are.
        out.columns.sort_by_key(|col| col.role == ColumnRole::Value);
        Ok(Some(Parsed {
            text: create_text(&out),
            statement: Statement::CreateSource(out),
        }))
    }

    #[allow(clippy::too_many_arguments)]
    async fn start_query(
        &self,
        state: &mut State,
        query_id: &str,
        text: &str,
        plan: Plan,
        sink: &Source,
        partitions: i32,
        session: &Session,
    ) -> Result<()> {
        if self.admin.partitions(&sink.topic)?.is_none() {
            let cleanup = if sink.is_table() { "compact" } else { "delete" };
            self.admin
                .create(&sink.topic, partitions, &[("cleanup.policy", cleanup)])
                .await?;
        }
        let sink_partitions = self.admin.partitions(&sink.topic)?.unwrap_or(partitions);
        let prefix = format!("_confluent-ksql-{}query_{query_id}", self.config.service_id);
        let inputs = self.input_topics(&plan)?;
        // A query split into tasks by partition has a changelog partition
        // per task, as Kafka Streams sizes changelogs.
        let source_partitions = inputs.first().map_or(partitions, |(_, n)| *n);
        let changelog = if let Some(suffix) = plan.changelog_suffix() {
            let t = format!("{prefix}-{suffix}");
            let n = if plan.partitioned() {
                source_partitions
            } else {
                partitions
            };
            self.admin
                .create(&t, n, &[("cleanup.policy", "compact")])
                .await?;
            Some(t)
        } else {
            None
        };
        // Sized as Kafka Streams sizes them (`Plan::repartition_counts`);
        // kept until the query has committed it read them (then purged).
        let input_counts: Vec<i32> = inputs.iter().map(|(_, n)| *n).collect();
        let mut repartitions = Vec::new();
        let mut repartition_keys = Vec::new();
        for (r, n) in plan
            .repartitions()
            .iter()
            .zip(plan.repartition_counts(&input_counts))
        {
            let t = format!("{prefix}-{}", r.suffix);
            self.admin
                .create(
                    &t,
                    n,
                    &[("cleanup.policy", "delete"), ("retention.ms", "-1")],
                )
                .await?;
            let n = self.admin.partitions(&t)?.unwrap_or(n);
            repartition_keys.push(match &r.key {
                Some(codec) => self.bind_rekey(codec, &t)?,
                None => None,
            });
            repartitions.push((t, n));
        }
        // One task per partition only when every partition count agrees
        // (a changelog made before tasks existed may not): else one task.
        let mut counts: Vec<i32> = inputs.iter().map(|(_, n)| *n).collect();
        counts.extend(repartitions.iter().map(|(_, n)| *n));
        if let Some(cl) = &changelog {
            counts.push(self.admin.partitions(cl)?.unwrap_or(0));
        }
        // A query logged before queries had tasks (its statement carries
        // no thread count) keeps one task: its changelog's records were
        // placed by the producer's partitioner, not by task.
        let legacy = !session.properties.contains_key(STREAM_THREADS);
        // A re-keyed join's rows reach the task of the table's partition
        // only if the re-keyed key's bytes are the table record's: not
        // when its key has a registry schema of its own.
        let own_key_schema = matches!(plan.op, Op::StreamTable { .. })
            && repartition_keys.iter().any(Option::is_some);
        let tasks = if plan.partitioned()
            && !legacy
            && !own_key_schema
            && counts.iter().all(|n| *n == source_partitions)
        {
            usize::try_from(source_partitions).unwrap_or(1).max(1)
        } else {
            1
        };
        let topology = topology_text(&plan, &inputs, &sink.topic);
        let execution_plan = execution_plan(&plan, query_id, &sink.name);
        let fed: Vec<usize> = plan
            .repartitions()
            .iter()
            .filter_map(|r| match r.feed {
                Feed::Input(i) => Some(i),
                Feed::Stage(_) => None,
            })
            .collect();
        let task_layout = task_layout(&inputs, &repartitions, &fed, tasks);
        let sources = plan.inputs.iter().map(|i| i.source.name.clone()).collect();
        let group_id = prefix.clone();
        let spec = QuerySpec {
            id: query_id.to_string(),
            repartitions: repartitions.clone(),
            repartition_keys,
            inputs,
            group_id: prefix.clone(),
            settings: self.config.kafka.clone(),
            offset_reset: session.offset_reset(&self.config),
            commit_interval: self.config.commit_interval(),
            history_retention_ms: self.config.history_retention_ms(),
            purge_interval: self.config.purge_interval(),
            tasks,
            threads: session.stream_threads(&self.config),
            plan,
        };
        let output = Output::Topic {
            sink: Sink {
                topic: sink.topic.clone(),
                partitions: sink_partitions,
                key_codec: sink.key_codec(),
                value_codec: sink.value_codec(),
                window: sink.window.map(|(w, _)| w),
            },
            changelog: changelog.clone(),
            transactional_id: prefix,
            processing_log: self.processing_log.clone(),
        };
        let handle = runtime::start(spec, output);
        state.queries.insert(
            query_id.to_string(),
            PersistentQuery {
                id: query_id.to_string(),
                statement: text.to_string(),
                sink: sink.name.clone(),
                sink_topic: sink.topic.clone(),
                sources,
                changelog,
                repartitions: repartitions.into_iter().map(|(t, _)| t).collect(),
                topology,
                execution_plan,
                tasks: task_layout,
                group_id: group_id.clone(),
                handle,
            },
        );
        Ok(())
    }

    async fn insert_values(&self, target: &str, columns: &[String], values: &[Expr]) -> Result<()> {
        let src = self.state.lock().await.meta.get(target)?.clone();
        if src.read_only {
            return Err(SqlError::invalid(format!(
                "Cannot insert values into read-only {}: {target}",
                src.kind.name().to_lowercase()
            )));
        }
        let all: Vec<(String, SqlType)> = src.columns().cloned().collect();
        let names: Vec<String> = if columns.is_empty() {
            all.iter().map(|(n, _)| n.clone()).collect()
        } else {
            columns.to_vec()
        };
        // Header columns are read-only: naming one, or listing no columns
        // (which means all of them), is refused as ksqlDB does.
        refuse_header_columns(&src, names.iter())?;
        if names.len() != values.len() {
            return Err(SqlError::invalid(format!(
                "Expected a value for each column. Expected Columns: [{}]. Got [{}]",
                names.join(", "),
                values
                    .iter()
                    .map(|v| v.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        let mut row: BTreeMap<String, Value> = BTreeMap::new();
        let mut rowtime = None;
        for (name, e) in names.iter().zip(values) {
            let v = crate::expr::compile(e, &crate::expr::Scope::default(), "VALUES")?
                .node
                .eval(&[]);
            if name == "ROWTIME" {
                rowtime = v.as_i64();
                continue;
            }
            let ty = all
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, t)| t)
                .ok_or_else(|| SqlError::invalid(format!("Column name {name} does not exist.")))?;
            let cast = crate::expr::cast_value(&v, ty);
            if !v.is_null() && cast.is_null() {
                return Err(SqlError::invalid(format!(
                    "Expected type {ty} for field {name} but got {v:?}"
                )));
            }
            row.insert(name.clone(), cast);
        }
        self.insert_row(&src, &row, rowtime).await
    }

    /// Writes one row to a source's topic (INSERT VALUES, /inserts-stream).
    pub async fn insert_row(
        &self,
        src: &Source,
        row: &BTreeMap<String, Value>,
        rowtime: Option<i64>,
    ) -> Result<()> {
        refuse_header_columns(src, row.keys())?;
        let get = |n: &str| row.get(n).cloned().unwrap_or(Value::Null);
        let key: Vec<Value> = src.key.iter().map(|(n, _)| get(n)).collect();
        let value: Vec<Value> = src.value.iter().map(|(n, _)| get(n)).collect();
        if src.is_table() && key.iter().any(Value::is_null) {
            return Err(SqlError::invalid(format!(
                "Value for primary key column(s) {} is required for tables",
                src.key
                    .iter()
                    .map(|(n, _)| n.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        let kb = src.key_codec().try_encode(&key)?;
        let vb = src.value_codec().try_encode(&value)?;
        let partitions = self.admin.partitions(&src.topic)?.unwrap_or(1);
        let partition = kb.as_deref().map(|k| runtime::partition_for(k, partitions));
        runtime::produce_sync(&self.producer, &src.topic, partition, kb, vb, rowtime).await?;
        Ok(())
    }

    /// A plan's input topics with their partition counts.
    fn input_topics(&self, plan: &Plan) -> Result<Vec<(String, i32)>> {
        plan.inputs
            .iter()
            .map(|i| {
                let n = self.admin.partitions(&i.source.topic)?.ok_or_else(|| {
                    SqlError::invalid(format!(
                        "Topic '{}' of {} does not exist",
                        i.source.topic, i.source.name
                    ))
                })?;
                Ok((i.source.topic.clone(), n))
            })
            .collect()
    }

    /// Looks up a source (for /inserts-stream).
    pub async fn source(&self, name: &str) -> Result<Source> {
        Ok(self.state.lock().await.meta.get(name)?.clone())
    }

    async fn show(
        &self,
        text: &str,
        what: ShowWhat,
        extended: bool,
        session: &Session,
    ) -> Result<Entity> {
        let state = self.state.lock().await;
        Ok(match what {
            ShowWhat::Streams | ShowWhat::Tables => {
                let kind = if what == ShowWhat::Streams {
                    SourceKind::Stream
                } else {
                    SourceKind::Table
                };
                let list: Vec<J> = state
                    .meta
                    .sources
                    .values()
                    .filter(|s| s.kind == kind)
                    .map(|s| {
                        if extended {
                            self.describe(&state, s, true)
                        } else {
                            json!({
                                "type": s.kind.name(),
                                "name": s.name,
                                "topic": s.topic,
                                "keyFormat": s.key_format.name(),
                                "valueFormat": s.value_format.name(),
                                "isWindowed": s.window.is_some(),
                            })
                        }
                    })
                    .collect();
                match (kind, extended) {
                    (_, true) => {
                        json!({"@type": "source_descriptions", "statementText": text, "sourceDescriptions": list, "warnings": []})
                    }
                    (SourceKind::Stream, false) => {
                        json!({"@type": "streams", "statementText": text, "streams": list, "warnings": []})
                    }
                    (SourceKind::Table, false) => {
                        json!({"@type": "tables", "statementText": text, "tables": list, "warnings": []})
                    }
                }
            }
            ShowWhat::Queries => {
                let list: Vec<J> = state.queries.values().map(query_info).collect();
                json!({"@type": "queries", "statementText": text, "queries": list, "warnings": []})
            }
            ShowWhat::Topics { all } => {
                let topics = self.admin.topics()?;
                let shown = topics
                    .iter()
                    .filter(|(n, _)| all || !(n.starts_with('_') || n.starts_with("__")));
                if extended {
                    // ksqlDB's `kafka_topics_extended`: consumers and
                    // groups per topic, from the cluster's groups.
                    let consumers = self.admin.topic_consumers().await?;
                    let list: Vec<J> = shown
                        .map(|(n, p)| {
                            let (c, g) = consumers.get(n).copied().unwrap_or((0, 0));
                            json!({"name": n, "replicaInfo": vec![1; *p as usize],
                                   "consumerCount": c, "consumerGroupCount": g})
                        })
                        .collect();
                    json!({"@type": "kafka_topics_extended", "statementText": text, "topics": list, "warnings": []})
                } else {
                    let list: Vec<J> = shown
                        .map(|(n, p)| json!({"name": n, "replicaInfo": vec![1; *p as usize]}))
                        .collect();
                    json!({"@type": "kafka_topics", "statementText": text, "topics": list, "warnings": []})
                }
            }
            ShowWhat::Properties => {
                let mut props: Vec<J> = Vec::new();
                for (k, v) in &self.config.properties {
                    props.push(json!({"name": k, "scope": "KSQL", "editable": false, "value": v}));
                }
                for (k, v) in &session.properties {
                    props.push(json!({"name": k, "scope": "KSQL", "editable": true, "value": v}));
                }
                json!({
                    "@type": "properties",
                    "statementText": text,
                    "properties": props,
                    "overwrittenProperties": session.properties.keys().collect::<Vec<_>>(),
                    "defaultProperties": [],
                    "warnings": [],
                })
            }
            ShowWhat::Functions => {
                let list: Vec<J> = functions::all_names()
                    .into_iter()
                    .map(|(n, t, c)| json!({"name": n, "type": t, "category": c}))
                    .collect();
                json!({"@type": "function_names", "statementText": text, "functions": list, "warnings": []})
            }
            ShowWhat::Variables => {
                let list: Vec<J> = session
                    .variables
                    .iter()
                    .map(|(n, v)| json!({"name": n, "value": v}))
                    .collect();
                json!({"@type": "variables", "statementText": text, "variables": list, "warnings": []})
            }
        })
    }

    fn describe(&self, state: &State, s: &Source, extended: bool) -> J {
        let fields = source_fields(s);
        let readers: Vec<J> = state
            .queries
            .values()
            .filter(|q| q.sources.contains(&s.name))
            .map(query_info)
            .collect();
        let writers: Vec<J> = state
            .queries
            .values()
            .filter(|q| q.sink == s.name)
            .map(query_info)
            .collect();
        let (processed, skipped) =
            state
                .queries
                .values()
                .filter(|q| q.sink == s.name)
                .fold((0, 0), |(p, k), q| {
                    (
                        p + q
                            .handle
                            .stats
                            .processed
                            .load(std::sync::atomic::Ordering::Relaxed),
                        k + q
                            .handle
                            .stats
                            .skipped
                            .load(std::sync::atomic::Ordering::Relaxed),
                    )
                });
        json!({
            "name": s.name,
            "windowType": s.window.map(|(w, _)| w.name()),
            "readQueries": readers,
            "writeQueries": writers,
            "fields": fields,
            "type": s.kind.name(),
            "timestamp": s.timestamp.as_ref().map_or(String::new(), |(c, _)| c.clone()),
            "statistics": if extended { format!("messages-processed: {processed}") } else { String::new() },
            "errorStats": if extended { format!("records-skipped: {skipped}") } else { String::new() },
            "extended": extended,
            "keyFormat": s.key_format.name(),
            "valueFormat": s.value_format.name(),
            "topic": s.topic,
            "partitions": if extended { self.admin.partitions(&s.topic).ok().flatten().unwrap_or(0) } else { 0 },
            "replication": if extended { 1 } else { 0 },
            "statement": s.statement,
            "queryOffsetSummaries": [],
            "sourceConstraints": [],
            "clusterStatistics": [],
            "clusterErrorStats": [],
        })
    }

    /// ksqlDB's `queryDescription`. For a running query: the state on
    /// this server (`ksqlHostQueryStatus`) and its tasks with the offsets
    /// of each partition they read (`tasksMetadata`), as Kafka Streams'
    /// task metadata has them; for a statement, what it would run.
    async fn explain(&self, text: &str, target: &ExplainTarget) -> Result<Entity> {
        let state = self.state.lock().await;
        let mut tasks = Vec::new();
        let mut group_id = String::new();
        let mut plan_text = String::new();
        let (id, statement, sinks, sources, topology, sink) = match target {
            ExplainTarget::QueryId(id) => {
                let q = state.queries.get(id).ok_or_else(|| SqlError::invalid(format!("Query with id:{id} does not exist, use SHOW QUERIES to view the full set of queries.")))?;
                tasks.clone_from(&q.tasks);
                plan_text.clone_from(&q.execution_plan);
                group_id.clone_from(&q.group_id);
                (
                    q.id.clone(),
                    q.statement.clone(),
                    vec![q.sink.clone()],
                    q.sources.clone(),
                    q.topology.clone(),
                    state.meta.sources.get(&q.sink).cloned(),
                )
            }
            ExplainTarget::Statement(s) => {
                let query = match s.as_ref() {
                    Statement::Select(q) => q,
                    Statement::CreateAsSelect(c) => &c.query,
                    Statement::InsertInto { query, .. } => query,
                    _ => return Err(SqlError::invalid("EXPLAIN takes a query id or a SELECT, CREATE ... AS SELECT or INSERT INTO statement")),
                };
                let plan = plan::plan(query, &state.meta, None)?;
                (
                    String::new(),
                    text.trim_start_matches("EXPLAIN").trim().to_string(),
                    vec![],
                    plan.inputs.iter().map(|i| i.source.name.clone()).collect(),
                    String::new(),
                    None,
                )
            }
        };
        drop(state);
        let running = !id.is_empty();
        let tasks_metadata = if running {
            let partitions: Vec<(String, i32)> = tasks
                .iter()
                .flat_map(|(_, ps)| ps.iter().cloned())
                .collect();
            let (committed, end) = self.admin.offsets(&group_id, &partitions).await?;
            tasks
                .iter()
                .map(|(task, ps)| {
                    let offsets: Vec<J> = ps
                        .iter()
                        .map(|tp| {
                            json!({
                                "topicPartitionEntity": {"topic": tp.0, "partition": tp.1},
                                "endOffset": end.get(tp).copied().unwrap_or(0),
                                "committedOffset": committed.get(tp).copied().unwrap_or(0),
                            })
                        })
                        .collect();
                    json!({"taskId": task, "topicOffsets": offsets, "timeCurrentIdlingStarted": null})
                })
                .collect()
        } else {
            Vec::new()
        };
        // ksqlDB reports a running query as RUNNING (its threads are
        // replaced when they fail, as Weir's restart from their commit).
        let host_status = if running {
            json!({ self.host(): "RUNNING" })
        } else {
            json!({})
        };
        Ok(json!({
            "@type": "queryDescription",
            "statementText": text,
            "queryDescription": {
                "id": id,
                "statementText": statement,
                "windowType": sink.as_ref().and_then(|s| s.window.map(|(w, _)| w.name())),
                "fields": sink.as_ref().map(source_fields).unwrap_or_default(),
                "sources": sources,
                "sinks": sinks,
                "topology": topology,
                "executionPlan": plan_text,
                "overriddenProperties": {},
                "ksqlHostQueryStatus": host_status,
                "queryType": if running { "PERSISTENT" } else { "PUSH" },
                "queryErrors": [],
                "tasksMetadata": tasks_metadata,
                "state": running.then_some("RUNNING"),
                "consumerGroupId": group_id,
            },
            "warnings": [],
        }))
    }

    /// This server as ksqlDB's `KsqlHostInfoEntity` names it (`host:port`):
    /// `ksql.advertised.listener` if set, else the REST listener's address.
    pub fn host(&self) -> String {
        let advertised = self.config.prop("ksql.advertised.listener").map(|u| {
            let rest = u.split_once("://").map_or(u, |(_, r)| r);
            rest.split('/').next().unwrap_or(rest).to_string()
        });
        advertised
            .or_else(|| self.listener.get().cloned())
            .unwrap_or_else(|| "localhost:8088".into())
    }

    /// Records the REST listener's address (see [`Self::host`]).
    pub fn set_listener(&self, addr: std::net::SocketAddr) {
        let _ = self.listener.set(addr.to_string());
    }

    /// Republishes what SELECTs read (after any change of `state`).
    fn publish(&self, state: &State) {
        let snapshot = Snapshot {
            meta: state.meta.clone(),
            materialized: state
                .queries
                .values()
                .filter(|q| q.handle.materialized)
                .map(|q| {
                    (
                        q.sink.clone(),
                        (q.handle.tasks.clone(), q.handle.stats.clone()),
                    )
                })
                .collect(),
        };
        *self.snapshot.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(snapshot);
    }

    fn snapshot(&self) -> Arc<Snapshot> {
        self.snapshot
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Plans a SELECT for /query and /query-stream.
    pub async fn plan_select(&self, text: &str, session: &Session) -> Result<(Query, Plan)> {
        let parsed = parser::parse_one(text, &session.variables)?;
        let Statement::Select(query) = parsed.statement else {
            return Err(SqlError::invalid(
                "Only SELECT statements are accepted here",
            ));
        };
        let plan = plan::plan(&query, &self.snapshot().meta, None)?;
        Ok((*query, plan))
    }

    /// Starts a push query: rows arrive on the returned channel.
    pub async fn push_query(
        &self,
        plan: Plan,
        session: &Session,
    ) -> Result<(QueryHandle, tokio::sync::mpsc::Receiver<OutRow>)> {
        let inputs = self.input_topics(&plan)?;
        let (tx, rx) = tokio::sync::mpsc::channel(1024);
        let id = format!("transient_{}", uuid::Uuid::new_v4().simple());
        let spec = QuerySpec {
            group_id: format!("_confluent-ksql-{}{id}", self.config.service_id),
            id,
            inputs,
            settings: self.config.kafka.clone(),
            offset_reset: session.offset_reset(&self.config),
            commit_interval: self.config.commit_interval(),
            history_retention_ms: self.config.history_retention_ms(),
            purge_interval: self.config.purge_interval(),
            repartitions: Vec::new(),
            repartition_keys: Vec::new(),
            tasks: 1,
            threads: 1,
            plan,
        };
        let handle = runtime::start(spec, Output::Channel(tx));
        // Answer once the query has its starting offsets, so rows written
        // after the answer are seen.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while !handle
            .stats
            .running
            .load(std::sync::atomic::Ordering::SeqCst)
            && std::time::Instant::now() < deadline
        {
            if let Some(e) = handle.stats.last_error.lock().ok().and_then(|e| e.clone()) {
                handle.stop.store(true, std::sync::atomic::Ordering::SeqCst);
                return Err(SqlError::kafka("push query", e));
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        Ok((handle, rx))
    }

    /// Starts `PRINT topic` (a topic name is matched exactly, or else
    /// case-insensitively, as ksqlDB does for unquoted names).
    pub async fn print(
        &self,
        topic: &str,
        from_beginning: bool,
        interval: Option<u64>,
        limit: Option<u64>,
    ) -> Result<tokio::sync::mpsc::Receiver<String>> {
        let topics = self.admin.topics()?;
        let found = topics.get_key_value(topic).or_else(|| {
            let mut matches = topics.iter().filter(|(n, _)| n.eq_ignore_ascii_case(topic));
            match (matches.next(), matches.next()) {
                (Some(m), None) => Some(m),
                _ => None,
            }
        });
        let Some((name, partitions)) = found else {
            return Err(SqlError::invalid(format!(
                "Could not find topic '{topic}', or the KSQL user does not have permissions to list the topic. Topic names are case-sensitive."
            )));
        };
        runtime::print_topic(
            &self.config.kafka,
            runtime::PrintSpec {
                topic: name.clone(),
                partitions: *partitions,
                from_beginning,
                interval: interval.unwrap_or(1),
                limit,
                registry: self.registry.clone(),
            },
        )
        .await
    }

    /// A pull query on a stream (as ksqlDB >= 0.23 runs one): a scan of
    /// the stream's topic from the beginning to its current end, filtered
    /// and projected; it ends there instead of waiting for new rows.
    async fn pull_stream(&self, query: &Query) -> Result<(Plan, Vec<Vec<Value>>)> {
        if !query.group_by.is_empty()
            || query.window.is_some()
            || !query.from.joins.is_empty()
            || !query.partition_by.is_empty()
        {
            return Err(SqlError::invalid(
                "Pull queries don't support GROUP BY, WINDOW, JOIN or PARTITION BY clauses.",
            ));
        }
        let plan = plan::plan(query, &self.snapshot().meta, None)?;
        if !matches!(plan.op, crate::plan::Op::Select { .. }) {
            return Err(SqlError::invalid(
                "Pull queries don't support aggregate functions.",
            ));
        }
        let id = format!("transient_{}", uuid::Uuid::new_v4().simple());
        let spec = QuerySpec {
            group_id: format!("_confluent-ksql-{}{id}", self.config.service_id),
            id,
            inputs: self.input_topics(&plan)?,
            settings: self.config.kafka.clone(),
            offset_reset: "earliest".into(),
            commit_interval: self.config.commit_interval(),
            history_retention_ms: self.config.history_retention_ms(),
            purge_interval: self.config.purge_interval(),
            repartitions: Vec::new(),
            repartition_keys: Vec::new(),
            tasks: 1,
            threads: 1,
            plan: plan.clone(),
        };
        let limit = query.limit;
        let out = runtime::blocking(|| runtime::scan(&spec, limit))?;
        let rows = out
            .into_iter()
            .filter_map(|r| r.value.map(|v| plan.project(&r.key, &v)))
            .collect();
        Ok((plan, rows))
    }

    /// Runs a pull query against a materialized table; `plan` is the
    /// query's plan from [`Self::plan_select`] (not planned again).
    pub async fn pull_query(&self, query: &Query, plan: Plan) -> Result<(Plan, Vec<Vec<Value>>)> {
        let snapshot = self.snapshot();
        let src = snapshot.meta.get(&query.from.first.name)?;
        if !src.is_table() {
            return self.pull_stream(query).await;
        }
        let (tasks, stats) = snapshot
            .materialized
            .get(&src.name)
            .ok_or_else(|| {
                SqlError::invalid(format!(
                    "The `{0}` table isn't queryable. To derive a queryable table, you can do 'CREATE TABLE QUERYABLE_{0} AS SELECT * FROM {0}'.",
                    src.name
                ))
            })?;
        if !query.group_by.is_empty()
            || query.window.is_some()
            || !query.from.joins.is_empty()
            || !query.partition_by.is_empty()
        {
            return Err(SqlError::invalid(
                "Pull queries don't support GROUP BY, WINDOW, JOIN or PARTITION BY clauses.",
            ));
        }
        let crate::plan::Op::Select {
            filter,
            key,
            values,
        } = &plan.op
        else {
            return Err(SqlError::invalid(
                "Pull queries don't support aggregate functions.",
            ));
        };
        // A lookup by key reads that key's rows only; other filters scan.
        // Either way the WHERE clause below decides, and the engine's lock
        // is not held while the table is read.
        let by_key = pull_key(query, src);
        let windowed = src.window.is_some();
        let read = {
            let by_key = by_key.clone();
            move |t: &crate::task::Task| match &by_key {
                Some(k) => t.results_for(k),
                None => t.results(),
            }
        };
        // A key's rows are in the task of the partition the key hashes to
        // (in the table's key format, with the Java client's partitioner:
        // where the repartition topic put it). A source not partitioned
        // that way (GROUP BY its key, written by another partitioner) may
        // hold it elsewhere: the other tasks are read when the owner has
        // no row for it.
        let n = tasks.len();
        let order: Vec<usize> = match &by_key {
            Some(k) if n > 1 => {
                let owner = src
                    .key_codec()
                    .try_encode(k)
                    .ok()
                    .flatten()
                    .map_or(0, |b| runtime::partition_for(&b, n as i32) as usize)
                    .min(n - 1);
                std::iter::once(owner)
                    .chain((0..n).filter(|i| *i != owner))
                    .collect()
            }
            _ => (0..n).collect(),
        };
        let mut results = Vec::new();
        for i in order {
            let task = &tasks[i];
            // The query thread holds the task while it processes a record:
            // if it does now, wait on a blocking thread, not on this worker
            // (which serves other requests meanwhile).
            let now = match task.try_lock() {
                Ok(t) => Some(read(&t)),
                Err(std::sync::TryLockError::Poisoned(p)) => Some(read(&p.into_inner())),
                Err(std::sync::TryLockError::WouldBlock) => None,
            };
            let rows = match now {
                Some(rows) => rows,
                None => {
                    let (task, stats, read) = (task.clone(), stats.clone(), read.clone());
                    tokio::task::spawn_blocking(move || {
                        // The query thread lets go at its next record.
                        stats.pulls_waiting.fetch_add(1, Ordering::SeqCst);
                        let rows = read(&task.lock().unwrap_or_else(|p| p.into_inner()));
                        stats.pulls_waiting.fetch_sub(1, Ordering::SeqCst);
                        rows
                    })
                    .await
                    .map_err(|e| SqlError::Internal {
                        message: e.to_string(),
                    })?
                }
            };
            results.extend(rows);
            if by_key.is_some() && !results.is_empty() {
                break;
            }
        }
        let mut rows = Vec::new();
        for r in results {
            let Some(v) = r.value else { continue };
            let mut row: Vec<Value> = r.key.clone();
            row.extend(v);
            row.push(Value::Bigint(r.timestamp));
            row.push(Value::Int(0));
            row.push(Value::Bigint(0));
            if windowed {
                let w = r
                    .window
                    .unwrap_or(crate::format::Window { start: 0, end: 0 });
                row.push(Value::Bigint(w.start));
                row.push(Value::Bigint(w.end));
            }
            if filter
                .as_ref()
                .is_some_and(|f| f.eval(&row) != Value::Boolean(true))
            {
                continue;
            }
            let k: Vec<Value> = key.iter().map(|n| n.eval(&row)).collect();
            let v: Vec<Value> = values.iter().map(|n| n.eval(&row)).collect();
            rows.push(plan.project(&k, &v));
            if query.limit.is_some_and(|l| rows.len() as u64 >= l) {
                break;
            }
        }
        Ok((plan, rows))
    }

    /// GET /status/{commandId}.
    pub async fn status(&self, command_id: &str) -> Option<String> {
        self.state.lock().await.statuses.get(command_id).cloned()
    }

    /// Reads a topic for PRINT: up to `limit` records formatted as ksqlDB does.
    pub fn kafka(&self) -> &KafkaSettings {
        &self.config.kafka
    }

    /// Stops every query (server shutdown).
    pub async fn shutdown(&self) {
        let mut state = self.state.lock().await;
        let queries = std::mem::take(&mut state.queries);
        self.publish(&state);
        runtime::blocking(|| {
            for (_, mut q) in queries {
                q.handle.stop();
            }
        });
    }
}

/// `IF NOT EXISTS` of an existing source: the message to answer with.
/// A CREATE STREAM|TABLE statement's text.
fn create_text(c: &CreateSource) -> String {
    let quote = |n: &str| format!("`{}`", n.replace('`', "``"));
    let columns: Vec<String> = c
        .columns
        .iter()
        .map(|col| {
            let role = match (col.role, &col.header_key) {
                (ColumnRole::Key, _) => " KEY".to_string(),
                (ColumnRole::PrimaryKey, _) => " PRIMARY KEY".to_string(),
                (ColumnRole::Headers, Some(k)) => format!(" HEADER('{}')", k.replace('\'', "''")),
                (ColumnRole::Headers, None) => " HEADERS".to_string(),
                (ColumnRole::Value, _) => String::new(),
            };
            format!("{} {}{role}", quote(&col.name), col.ty)
        })
        .collect();
    let props: Vec<String> = c.props.iter().map(|(k, v)| format!("{k}={v}")).collect();
    format!(
        "CREATE {}{}{} {}{} ({}) WITH ({});",
        if c.or_replace { "OR REPLACE " } else { "" },
        if c.source { "SOURCE " } else { "" },
        c.kind.name(),
        if c.if_not_exists {
            "IF NOT EXISTS "
        } else {
            ""
        },
        quote(&c.name),
        columns.join(", "),
        props.join(", ")
    )
}

fn exists_message(
    state: &State,
    name: &str,
    kind: SourceKind,
    if_not_exists: bool,
) -> Option<String> {
    (if_not_exists && state.meta.sources.contains_key(name)).then(|| {
        let k = kind.name().to_lowercase();
        format!("Cannot add {k} '{name}': A {k} with the same name already exists")
    })
}

fn title(kind: SourceKind) -> &'static str {
    match kind {
        SourceKind::Stream => "Stream",
        SourceKind::Table => "Table",
    }
}

fn schema_text(key: &[(String, SqlType)], value: &[(String, SqlType)]) -> String {
    key.iter()
        .map(|(n, t)| format!("`{n}` {t} KEY"))
        .chain(value.iter().map(|(n, t)| format!("`{n}` {t}")))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The shape of Kafka Streams' topology description (what ksqlDB's
/// `EXPLAIN` shows): one sub-topology per stage between topics, with the
/// topics it reads and writes and its state store. Internal topics and
/// stores go by their short names (without the query's prefix), as
/// Kafka Streams names them; the processors inside a stage are not listed.
fn topology_text(plan: &Plan, inputs: &[(String, i32)], sink_topic: &str) -> String {
    let store = plan
        .changelog_suffix()
        .map(|s| s.trim_end_matches("-changelog").to_string());
    let rekeys = plan.repartitions();
    // Repartition topics by their short names, as Kafka Streams names them.
    let short: Vec<&str> = rekeys.iter().map(|r| r.suffix.as_str()).collect();
    let mut out = String::from("Topologies:\n");
    let mut n = 0;
    let mut sub = |from: &[&str], store: Option<&str>, to: &str| {
        out.push_str(&format!("   Sub-topology: {n}\n"));
        out.push_str(&format!(
            "    Source: KSTREAM-SOURCE-{n} (topics: [{}])\n",
            from.join(", ")
        ));
        if let Some(st) = store {
            out.push_str(&format!("    Processor: {st} (stores: [{st}])\n"));
        }
        out.push_str(&format!("    Sink: KSTREAM-SINK-{n} (topic: {to})\n"));
        n += 1;
    };
    // Each input that re-keys: read, re-keyed, written to its topic.
    for (j, r) in rekeys.iter().enumerate() {
        if let Feed::Input(i) = r.feed {
            sub(&[inputs[i].0.as_str()], None, short[j]);
        }
    }
    // The rest reads each input directly or through its topic, and a
    // chain's stage whose rows re-key ends one sub-topology and starts
    // the next.
    let topic_of = |feed: Feed| rekeys.iter().position(|r| r.feed == feed).map(|j| short[j]);
    let stages = match &plan.op {
        Op::Joins { stages, .. } => stages.len(),
        _ => 1,
    };
    let mut from: Vec<&str> = vec![topic_of(Feed::Input(0)).unwrap_or(inputs[0].0.as_str())];
    for s in 0..stages {
        for i in (s + 1..inputs.len()).take(match plan.op {
            Op::Joins { .. } => 1,
            _ => inputs.len(),
        }) {
            from.push(topic_of(Feed::Input(i)).unwrap_or(inputs[i].0.as_str()));
        }
        match topic_of(Feed::Stage(s)) {
            Some(t) => {
                sub(&from, store.as_deref(), t);
                from = vec![t];
            }
            None if s + 1 == stages => sub(&from, store.as_deref(), sink_topic),
            None => {}
        }
    }
    out
}

/// ksqlDB's `executionPlan` (its `PlanSummary`): the query's steps from
/// the sink down to the sources, one line each, `\t`-indented by depth:
/// ` > [ STEP ] | Schema: ... | Logger: <query id>.<context>`. The steps
/// are Weir's operators named as ksqlDB names its own.
fn execution_plan(plan: &Plan, query_id: &str, sink: &str) -> String {
    let output = schema_text(&plan.key, &plan.value);
    let mut steps: Vec<(usize, &str, String, String)> = vec![
        (0, "SINK", output.clone(), sink.to_string()),
        (1, "PROJECT", output.clone(), "Project".into()),
    ];
    let input_schema = |i: usize| {
        let s = &plan.inputs[i].source;
        schema_text(&s.key, &s.value)
    };
    let filter = |f: &Option<crate::expr::Node>| f.is_some();
    let mut depth = 2;
    match &plan.op {
        Op::Select { filter: f, .. } => {
            if filter(f) {
                steps.push((depth, "FILTER", input_schema(0), "WhereFilter".into()));
                depth += 1;
            }
            steps.push((depth, "SOURCE", input_schema(0), "KsqlTopic.Source".into()));
        }
        Op::Aggregate {
            filter: f, window, ..
        } => {
            let agg = if window.is_some() {
                "WINDOWED_AGGREGATE"
            } else {
                "AGGREGATE"
            };
            steps[1].3 = "Aggregate.Project".into();
            steps.push((depth, agg, output.clone(), "Aggregate.Aggregate".into()));
            steps.push((
                depth + 1,
                "GROUP_BY",
                input_schema(0),
                "Aggregate.GroupBy".into(),
            ));
            depth += 2;
            if filter(f) {
                steps.push((depth, "FILTER", input_schema(0), "WhereFilter".into()));
                depth += 1;
            }
            steps.push((depth, "SOURCE", input_schema(0), "KsqlTopic.Source".into()));
        }
        Op::StreamTable { filter: f, .. }
        | Op::Joins { filter: f, .. }
        | Op::TableChain { filter: f, .. }
        | Op::TableTable { filter: f, .. } => {
            if filter(f) {
                steps.push((depth, "FILTER", output.clone(), "WhereFilter".into()));
                depth += 1;
            }
            steps.push((depth, "JOIN", output.clone(), "Join".into()));
            let sides = plan.inputs.len();
            for i in 0..sides {
                let side = match (sides, i) {
                    (2, 0) => "Left".to_string(),
                    (2, _) => "Right".to_string(),
                    _ => i.to_string(),
                };
                steps.push((
                    depth + 1,
                    "SOURCE",
                    input_schema(i),
                    format!("KafkaTopic_{side}.Source"),
                ));
            }
        }
    }
    steps
        .iter()
        .map(|(d, step, schema, ctx)| {
            format!(
                "{} > [ {step} ] | Schema: {schema} | Logger: {query_id}.{ctx}\n",
                "\t".repeat(*d)
            )
        })
        .collect()
}

/// Header columns are read-only: a write naming any is refused.
fn refuse_header_columns<'a>(src: &Source, names: impl Iterator<Item = &'a String>) -> Result<()> {
    let headers: Vec<&str> = names
        .filter_map(|n| src.header(n).map(|h| h.column.0.as_str()))
        .collect();
    if headers.is_empty() {
        return Ok(());
    }
    Err(SqlError::invalid(format!(
        "Cannot insert into HEADER columns: {}",
        headers.join(", ")
    )))
}

/// A source's columns as ksqlDB's `fields` (DESCRIBE, EXPLAIN): keys,
/// window bounds, values, then header columns.
fn source_fields(s: &Source) -> Vec<J> {
    let mut fields: Vec<J> = s
        .key
        .iter()
        .map(|(n, t)| json!({"name": n, "schema": t.rest_schema(), "type": "KEY"}))
        .collect();
    if s.window.is_some() {
        fields.push(json!({"name": "WINDOWSTART", "schema": SqlType::Bigint.rest_schema(), "type": "SYSTEM"}));
        fields.push(
            json!({"name": "WINDOWEND", "schema": SqlType::Bigint.rest_schema(), "type": "SYSTEM"}),
        );
    }
    fields.extend(
        s.value
            .iter()
            .map(|(n, t)| json!({"name": n, "schema": t.rest_schema()})),
    );
    fields.extend(s.headers.iter().map(|h| {
        let (n, t) = &h.column;
        let mut f = json!({"name": n, "schema": t.rest_schema(), "type": "HEADER"});
        if let Some(k) = &h.key {
            f["headerKey"] = json!(k);
        }
        f
    }));
    fields
}

/// A persistent query's tasks as Kafka Streams ids them (`<sub-topology>_<partition>`)
/// and the partitions each reads, following [`topology_text`]'s
/// sub-topologies: with `tasks` tasks, task `p` reads partition `p` of
/// its sub-topology's topics; one task reads every partition.
fn task_layout(
    inputs: &[(String, i32)],
    repartitions: &[(String, i32)],
    fed: &[usize],
    tasks: usize,
) -> Vec<(String, Vec<(String, i32)>)> {
    // Each re-keyed input is read by a stage of its own; the last stage
    // reads the re-keyed rows and the other inputs.
    let mut subs: Vec<Vec<&(String, i32)>> = fed
        .iter()
        .filter(|_| !repartitions.is_empty())
        .filter_map(|&i| inputs.get(i).map(|t| vec![t]))
        .collect();
    subs.push(
        repartitions
            .iter()
            .chain(
                inputs
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| repartitions.is_empty() || !fed.contains(i))
                    .map(|(_, t)| t),
            )
            .collect(),
    );
    let mut out = Vec::new();
    for (sub, topics) in subs.iter().enumerate() {
        if tasks > 1 {
            for p in 0..tasks as i32 {
                let parts = topics
                    .iter()
                    .filter(|(_, n)| p < *n)
                    .map(|(t, _)| (t.clone(), p))
                    .collect();
                out.push((format!("{sub}_{p}"), parts));
            }
        } else {
            let parts = topics
                .iter()
                .flat_map(|(t, n)| (0..*n).map(move |p| (t.clone(), p)))
                .collect();
            out.push((format!("{sub}_0"), parts));
        }
    }
    out
}

fn query_info(q: &PersistentQuery) -> J {
    json!({
        "queryString": q.statement,
        "sinks": [q.sink],
        "sinkKafkaTopics": [q.sink_topic],
        "id": q.id,
        "statusCount": {"RUNNING": 1},
        "queryType": "PERSISTENT",
        "state": "RUNNING",
    })
}

/// ksqlDB's command ids: `stream/`NAME`/create`, `table/`NAME`/drop`, ...
fn command_id(s: &Statement) -> String {
    match s {
        Statement::CreateSource(c) => {
            format!("{}/`{}`/create", c.kind.name().to_lowercase(), c.name)
        }
        Statement::CreateAsSelect(c) => {
            format!("{}/`{}`/create", c.kind.name().to_lowercase(), c.name)
        }
        Statement::InsertInto { target, .. } => format!("stream/`{target}`/create"),
        Statement::Drop { kind, name, .. } => {
            format!("{}/`{name}`/drop", kind.name().to_lowercase())
        }
        Statement::Terminate { query_id: Some(id) } => format!("terminate/{id}/execute"),
        Statement::Terminate { query_id: None } => "terminate/ALL/execute".into(),
        _ => "unknown".into(),
    }
}

/// The sink source of a CREATE ... AS SELECT, and requested partitions.
fn sink_source(
    kind: SourceKind,
    name: &str,
    props: &Props,
    plan: &Plan,
    text: &str,
) -> Result<(Source, Option<i32>)> {
    let p = WithProps(props);
    p.only(crate::catalog::CREATE_AS_PROPS)?;
    let src = &plan.inputs[0].source;
    let requested_key = match p.text("KEY_FORMAT").or_else(|| p.text("FORMAT")) {
        Some(f) => Some(Format::parse(&f, p.text("KEY_DELIMITER").as_deref())?),
        None => None,
    };
    let key_format = plan::output_key_format(plan, requested_key);
    let (_, value_format) = p.formats(Some(&key_format), Some(&src.value_format))?;
    key_format.check(&plan.key, "key")?;
    value_format.check(&plan.value, "value")?;
    let partitions = p.int("PARTITIONS")?.map(|v| v as i32);
    let timestamp = p
        .text("TIMESTAMP")
        .map(|t| (t.to_ascii_uppercase(), p.text("TIMESTAMP_FORMAT")));
    Ok((
        Source {
            name: name.to_string(),
            kind,
            topic: p.text("KAFKA_TOPIC").unwrap_or_else(|| name.to_string()),
            key: plan.key.clone(),
            value: plan.value.clone(),
            headers: Vec::new(),
            key_format,
            value_format,
            wrap_single: p.boolean("WRAP_SINGLE_VALUE")?.unwrap_or(true),
            timestamp,
            window: plan.output_window(),
            read_only: false,
            statement: text.to_string(),
        },
        partitions,
    ))
}

fn describe_function(text: &str, name: &str) -> Result<Entity> {
    if let Some(s) = functions::scalar(name) {
        let variants: Vec<J> = s
            .sigs
            .iter()
            .map(|sig| {
                json!({
                    "arguments": sig.params.iter().enumerate().map(|(i, (n, p))| json!({
                        "name": n,
                        "type": functions::p_name(*p),
                        "description": "",
                        "isVariadic": sig.variadic && i + 1 == sig.params.len(),
                    })).collect::<Vec<_>>(),
                    "returnType": functions::ret_text(sig.ret),
                    "description": s.description,
                    "argumentTypes": sig.params.iter().map(|(_, p)| functions::p_name(*p)).collect::<Vec<_>>(),
                })
            })
            .collect();
        return Ok(json!({
            "@type": "describe_function",
            "statementText": text,
            "name": s.name,
            "description": s.description,
            "author": "Weir",
            "version": env!("CARGO_PKG_VERSION"),
            "path": "internal",
            "functions": variants,
            "type": "SCALAR",
            "warnings": [],
        }));
    }
    if let Some(a) = functions::aggregate(name) {
        let variants: Vec<J> = a
            .signatures
            .iter()
            .map(|(args, ret)| json!({"arguments": args, "returnType": ret, "description": a.description, "argumentTypes": []}))
            .collect();
        return Ok(json!({
            "@type": "describe_function",
            "statementText": text,
            "name": a.name,
            "description": a.description,
            "author": "Weir",
            "version": env!("CARGO_PKG_VERSION"),
            "path": "internal",
            "functions": variants,
            "type": "AGGREGATE",
            "warnings": [],
        }));
    }
    Err(SqlError::invalid(format!(
        "Can't find any functions with the name '{name}'"
    )))
}

/// Reads a whole topic (the command topic) as (offset, value).
fn read_all(settings: &KafkaSettings, topic: &str) -> Result<Vec<(i64, Vec<u8>)>> {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::message::Message;
    let consumer: BaseConsumer = settings
        .config()
        .set(
            "group.id",
            format!("weir-sql-replay-{}", uuid::Uuid::new_v4()),
        )
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "true")
        .set("isolation.level", "read_committed")
        .create()
        .map_err(|e| SqlError::kafka("create consumer", e))?;
    let timeout = std::time::Duration::from_secs(30);
    let (_, hi) = consumer
        .fetch_watermarks(topic, 0, timeout)
        .map_err(|e| SqlError::kafka("ListOffsets", e))?;
    let mut out = Vec::new();
    if hi == 0 {
        return Ok(out);
    }
    let mut tpl = rdkafka::TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, rdkafka::Offset::Beginning)
        .map_err(|e| SqlError::kafka("assign", e))?;
    consumer
        .assign(&tpl)
        .map_err(|e| SqlError::kafka("assign", e))?;
    let deadline = std::time::Instant::now() + timeout;
    while std::time::Instant::now() < deadline {
        match consumer.poll(std::time::Duration::from_millis(200)) {
            Some(Ok(m)) => {
                out.push((m.offset(), m.payload().unwrap_or_default().to_vec()));
                if m.offset() + 1 >= hi {
                    break;
                }
            }
            Some(Err(rdkafka::error::KafkaError::PartitionEOF(_))) => break,
            Some(Err(e)) => return Err(SqlError::kafka("Fetch", e)),
            None => {}
        }
    }
    Ok(out)
}

/// A row as the text of a JSON array for REST answers, decimals exact
/// (ksqlDB's API writes BigDecimals as plain numbers).
pub fn row_json(values: &[Value]) -> String {
    crate::json::array_text(values)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An inferred CREATE is logged as text and parsed again on replay:
    /// the text must give back the same statement.
    #[test]
    fn inferred_create_text_parses_back() {
        let text = "CREATE TABLE t (`ID` BIGINT PRIMARY KEY, `S` STRUCT<`A` INTEGER, `B` ARRAY<MAP<STRING, DOUBLE>>>, \
                    `T` TIMESTAMP, `lower` BYTES, `H` BYTES HEADER('it''s'), \
                    `HS` ARRAY<STRUCT<`KEY` STRING, `VALUE` BYTES>> HEADERS) WITH (KAFKA_TOPIC='x''y', VALUE_FORMAT='AVRO', VALUE_SCHEMA_ID=3, WRAP_SINGLE_VALUE=false);";
        let parsed = parser::parse_one(text, &BTreeMap::new()).unwrap();
        let Statement::CreateSource(c) = &parsed.statement else {
            panic!("not a CREATE: {parsed:?}")
        };
        let again = parser::parse_one(&create_text(c), &BTreeMap::new()).unwrap();
        assert_eq!(again.statement, parsed.statement, "{}", create_text(c));
    }
}
