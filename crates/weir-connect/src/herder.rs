//! The herder: one per worker. It keeps the cluster's configuration (read
//! from the config topic) and statuses (the status topic), holds the
//! worker's membership of the Connect group, and runs the connectors and
//! tasks assigned to it.
//!
//! Every worker, a cluster of one included, is a member of the group
//! `group.id` with protocol type `connect`. The leader assigns work with
//! [`protocol::assign`] and rejoins whenever the set of connectors and
//! tasks changes; the others learn of the rebalance from their heartbeats.
//! Writes (connector configs, target states, restarts) are made by the
//! leader; the REST layer forwards them there. The worker that runs a
//! connector computes its task configs and writes them with their commit
//! record.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::{mpsc, oneshot, watch};
use tracing::{debug, error, info, warn};
use weir_client::group::codes;
use weir_client::{ClientConfig, GroupMember};

use crate::config::WorkerConfig;
use crate::connector::{Connector, Props};
use crate::error::{ConnectError, Result};
use crate::internal_log::{self, LogRecord, LogWriter, TopicLog};
use crate::json::Json;
use crate::metrics::Metrics;
use crate::plugins;
use crate::protocol::{self, Assignment, AssignorState, MemberMetadata, Work};
use crate::storage::{self, ClusterConfig, Status, TargetState};
use crate::worker::{self, StatusUpdate, TaskContext, TaskHandle};

/// A change the leader makes to the cluster's configuration.
#[derive(Debug)]
pub enum Change {
    /// Creates (`create_only`) or replaces a connector's config.
    PutConnector {
        name: String,
        config: Props,
        create_only: bool,
        initial_state: Option<TargetState>,
    },
    /// Deletes a connector.
    DeleteConnector { name: String },
    /// Pauses, resumes or stops a connector.
    SetTarget { name: String, state: TargetState },
    /// Restarts a connector (and its tasks).
    Restart {
        name: String,
        include_tasks: bool,
        only_failed: bool,
    },
    /// Restarts one task on this worker.
    RestartTask { name: String, task: i32 },
    /// Forgets the topics a connector has used (KIP-558).
    ResetTopics { name: String },
    /// Sets a logger's level on every worker: written to the config topic
    /// (`logger-cluster-<namespace>`), applied by each worker that reads it.
    ClusterLogger { namespace: String, level: String },
    /// Alters (`Some`) or resets (`None`) a stopped connector's offsets
    /// (KIP-875); answers whether the connector vouched for the change.
    AlterOffsets {
        name: String,
        offsets: Option<Vec<crate::connector::OffsetChange>>,
    },
}

/// A change and where its answer goes (`true`: something was created).
#[derive(Debug)]
pub struct Request {
    pub change: Change,
    pub reply: oneshot::Sender<Result<bool>>,
}

/// What the REST layer reads and where it sends changes.
#[derive(Debug)]
pub struct Shared {
    pub worker: Arc<WorkerConfig>,
    pub config: RwLock<ClusterConfig>,
    /// Status topic key → latest status.
    pub statuses: RwLock<BTreeMap<String, Status>>,
    /// The leader's REST URL, once the group has one.
    pub leader_url: RwLock<Option<String>>,
    pub is_leader: AtomicBool,
    /// Work running on this worker.
    pub local: RwLock<BTreeSet<Work>>,
    pub metrics: Arc<Metrics>,
    pub requests: mpsc::Sender<Request>,
}

impl Shared {
    /// Sends a change to this worker's herder and waits for the answer.
    pub async fn submit(&self, change: Change) -> Result<bool> {
        let (reply, rx) = oneshot::channel();
        self.requests
            .send(Request { change, reply })
            .await
            .map_err(|_| ConnectError::Unavailable {
                message: "the worker is shutting down".into(),
            })?;
        rx.await.map_err(|_| ConnectError::Unavailable {
            message: "the worker is shutting down".into(),
        })?
    }

    /// The status of `key` (`status-connector-<c>`, `status-task-<c>-<n>`).
    pub fn status(&self, key: &str) -> Option<Status> {
        self.statuses
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(key)
            .cloned()
    }

    /// A read of the cluster configuration.
    pub fn cluster(&self) -> std::sync::RwLockReadGuard<'_, ClusterConfig> {
        self.config.read().unwrap_or_else(|e| e.into_inner())
    }
}

/// A connector instance running here.
struct RunningConnector {
    instance: Box<dyn Connector>,
    config: Props,
    target: TargetState,
}

struct RunningTask {
    handle: TaskHandle,
    config: Props,
    started: Instant,
    failures: u32,
}

struct Herder {
    shared: Arc<Shared>,
    writer: LogWriter,
    config_log: TopicLog,
    config_rx: mpsc::UnboundedReceiver<LogRecord>,
    member: GroupMember,
    assignment: Assignment,
    generation: i32,
    protocol: String,
    need_join: bool,
    rejoin_at: Option<Instant>,
    last_heartbeat: Instant,
    /// The work the leader assigned last (to notice changes).
    assigned_work: BTreeSet<Work>,
    /// Worker URL → work, as of the last assignment (leader only).
    owners: BTreeMap<String, BTreeSet<Work>>,
    assignor: AssignorState,
    connectors: BTreeMap<String, RunningConnector>,
    tasks: BTreeMap<(String, i32), RunningTask>,
    status_tx: mpsc::UnboundedSender<StatusUpdate>,
    /// Restart requests already handled (the config topic's are replayed
    /// at start).
    restarts_seen: usize,
    /// Tasks waiting for an automatic restart, and when.
    auto_restart: BTreeMap<(String, i32), Instant>,
    /// Whether the config topic's history has been read.
    started: bool,
}

/// Runs the herder until `shutdown` turns true: reads the internal topics,
/// joins the group, runs assigned work. `ready` turns true once it has.
pub async fn run(
    shared: Arc<Shared>,
    mut requests: mpsc::Receiver<Request>,
    mut shutdown: watch::Receiver<bool>,
    ready: watch::Sender<bool>,
) -> Result<()> {
    let w = shared.worker.clone();
    internal_log::ensure_topics(&w).await?;
    let (cfg_tx, config_rx) = mpsc::unbounded_channel();
    let (st_tx, mut st_rx) = mpsc::unbounded_channel();
    // Starting a reader asks librdkafka for metadata, which blocks.
    let (config_log, status_log) = {
        let w = w.clone();
        tokio::task::spawn_blocking(move || {
            Ok::<_, ConnectError>((
                TopicLog::start(&w, &w.config_topic, cfg_tx)?,
                TopicLog::start(&w, &w.status_topic, st_tx)?,
            ))
        })
        .await
        .map_err(|e| ConnectError::kafka(format!("cannot start the topic readers: {e}")))??
    };
    config_log.read_to_end(Duration::from_secs(60)).await?;
    status_log.read_to_end(Duration::from_secs(60)).await?;
    let (status_tx, mut status_rx) = mpsc::unbounded_channel();
    let member = GroupMember::new(
        &w.bootstrap,
        ClientConfig {
            timeout: Duration::from_secs(30),
            client_id: format!("connect-{}", w.worker_id()),
            security: w.security.clone(),
        },
        &w.group_id,
        "connect",
        w.session_timeout,
        w.rebalance_timeout,
    );
    let mut h = Herder {
        writer: LogWriter::new(&w)?,
        shared: shared.clone(),
        config_log,
        config_rx,
        member,
        assignment: Assignment::default(),
        generation: -1,
        protocol: protocol::SESSIONED.into(),
        need_join: true,
        rejoin_at: None,
        last_heartbeat: Instant::now(),
        assigned_work: BTreeSet::new(),
        owners: BTreeMap::new(),
        assignor: AssignorState::default(),
        connectors: BTreeMap::new(),
        tasks: BTreeMap::new(),
        status_tx,
        restarts_seen: 0,
        auto_restart: BTreeMap::new(),
        started: false,
    };
    h.drain_config();
    h.started = true;
    h.drain_status(&mut st_rx);
    // Restart requests written before this worker started are history.
    h.restarts_seen = h.shared.cluster().restarts.len();
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    let mut announced = false;
    loop {
        tokio::select! {
                () = async { let _ = shutdown.wait_for(|s| *s).await; } => break,
                Some(r) = h.config_rx.recv() => h.apply_config(r),
                Some(r) = st_rx.recv() => h.apply_status(r),
                Some(u) = status_rx.recv() => h.write_status(u).await,
                Some(req) = requests.recv() => {
                    let result = h.handle(req.change).await;
                    let _ = req.reply.send(result);
                }
                _ = tick.tick() => {
                    h.drain_config();
        h.drain_status(&mut st_rx);
                    h.tick().await;
                    if !announced && !h.need_join && h.generation >= 0 {
                        announced = true;
                        let _ = ready.send(true);
                    }
                }
            }
    }
    h.stop_all().await;
    while let Ok(u) = status_rx.try_recv() {
        h.write_status(u).await;
    }
    if let Err(e) = h.member.leave().await {
        debug!(error = %e, "leaving the Connect group");
    }
    Ok(())
}

impl Herder {
    fn worker(&self) -> &WorkerConfig {
        &self.shared.worker
    }

    fn drain_config(&mut self) {
        while let Ok(r) = self.config_rx.try_recv() {
            self.apply_config(r);
        }
    }

    fn drain_status(&mut self, st_rx: &mut mpsc::UnboundedReceiver<LogRecord>) {
        while let Ok(r) = st_rx.try_recv() {
            self.apply_status(r);
        }
    }

    /// Reads the config topic to its end and applies what was read.
    async fn sync_config(&mut self) -> Result<()> {
        self.config_log.read_to_end(Duration::from_secs(30)).await?;
        self.drain_config();
        Ok(())
    }

    /// Reads the config topic until `seen` holds (at most 30 s). After this
    /// worker's own write one read is not always enough: an end-of-partition
    /// event from a fetch answered just before the write can end it early,
    /// and the REST answer would then miss the change it reports.
    async fn sync_config_until(&mut self, seen: impl Fn(&Self) -> bool) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            self.sync_config().await?;
            if seen(self) || Instant::now() > deadline {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn apply_config(&mut self, r: LogRecord) {
        let Some(key) = r.key.as_deref().and_then(|k| std::str::from_utf8(k).ok()) else {
            return;
        };
        if let Some(namespace) = key.strip_prefix("logger-cluster-") {
            // As Kafka's workers: levels written before this worker started
            // are history, later ones apply here too.
            let level = r
                .value
                .as_deref()
                .and_then(|v| serde_json::from_slice::<serde_json::Value>(v).ok())
                .and_then(|v| v.get("level")?.as_str().map(str::to_string));
            if let (true, Some(level)) = (self.started, level) {
                if let Err(e) = crate::loggers::set(namespace, &level, crate::now_ms()) {
                    warn!(namespace, ?e, "cannot apply a cluster log level");
                }
            }
            return;
        }
        let mut c = self
            .shared
            .config
            .write()
            .unwrap_or_else(|e| e.into_inner());
        c.apply(key, r.value.as_deref(), r.offset);
    }

    fn apply_status(&mut self, r: LogRecord) {
        let Some(key) = r.key.and_then(|k| String::from_utf8(k).ok()) else {
            return;
        };
        let mut s = self
            .shared
            .statuses
            .write()
            .unwrap_or_else(|e| e.into_inner());
        let parsed = if key.starts_with("status-topic-") {
            // A topic a connector used: only its presence matters here.
            r.value.as_ref().map(|_| Status {
                state: "ACTIVE".into(),
                trace: None,
                worker_id: String::new(),
                generation: -1,
            })
        } else {
            r.value.as_deref().and_then(storage::parse_status)
        };
        match parsed {
            Some(st) => {
                s.insert(key, st);
            }
            None if r.value.is_none() => {
                s.remove(&key);
            }
            None => {}
        }
    }

    async fn write_status(&self, u: StatusUpdate) {
        let (key, value) = match u {
            StatusUpdate::State { work, state, trace } => (
                status_key(&work),
                storage::status_value(
                    state,
                    trace.as_deref(),
                    &self.worker().worker_id(),
                    self.generation,
                ),
            ),
            StatusUpdate::Topic {
                connector,
                task,
                topic,
            } => {
                let key = format!("status-topic-{topic}:connector-{connector}");
                if self.shared.status(&key).is_some() {
                    return;
                }
                (
                    key,
                    storage::topic_status_value(&topic, &connector, task, crate::now_ms()),
                )
            }
        };
        let topic = self.worker().status_topic.clone();
        if let Err(e) = self.writer.send(&topic, key.as_bytes(), Some(&value)).await {
            warn!(error = %e, "cannot write a status");
        }
    }

    fn report(&self, work: Work, state: &'static str, trace: Option<String>) {
        let _ = self
            .status_tx
            .send(StatusUpdate::State { work, state, trace });
    }

    /// Every connector and the tasks of those not stopped.
    fn all_work(&self) -> BTreeSet<Work> {
        let c = self.shared.cluster();
        let mut out = BTreeSet::new();
        for name in c.connectors.keys() {
            out.insert(Work::Connector(name.clone()));
            if c.targets.get(name) == Some(&TargetState::Stopped) {
                continue;
            }
            for i in 0..c.tasks.get(name).map_or(0, Vec::len) {
                out.insert(Work::Task(name.clone(), i as i32));
            }
        }
        out
    }

    async fn tick(&mut self) {
        let now = Instant::now();
        if self.rejoin_at.is_some_and(|t| now >= t) {
            self.rejoin_at = None;
            self.need_join = true;
        }
        if self.shared.is_leader.load(Ordering::SeqCst)
            && !self.need_join
            && self.all_work() != self.assigned_work
        {
            debug!("connectors or tasks changed: rebalancing");
            self.need_join = true;
        }
        if self.need_join {
            if let Err(e) = self.rebalance().await {
                warn!(error = %e, "joining the Connect group failed; retrying");
                tokio::time::sleep(Duration::from_millis(500)).await;
                return;
            }
        } else if self.last_heartbeat.elapsed() >= self.worker().heartbeat_interval {
            self.last_heartbeat = Instant::now();
            if let Err(e) = self.member.heartbeat().await {
                match e.code() {
                    Some(codes::REBALANCE_IN_PROGRESS)
                    | Some(codes::ILLEGAL_GENERATION)
                    | Some(codes::UNKNOWN_MEMBER_ID) => {}
                    _ => warn!(error = %e, "heartbeat failed"),
                }
                self.need_join = true;
            }
        }
        self.reconcile().await;
    }

    async fn rebalance(&mut self) -> Result<()> {
        let w = self.shared.worker.clone();
        let meta = MemberMetadata {
            version: 2,
            url: w.advertised_url.clone(),
            config_offset: self.shared.cluster().offset,
            current: Some(self.assignment.clone()),
        };
        let protocols = vec![
            (protocol::SESSIONED.to_string(), meta.encode(2)),
            (protocol::COMPATIBLE.to_string(), meta.encode(1)),
        ];
        let joined = self.member.join(&protocols).await?;
        let version = if joined.protocol == protocol::COMPATIBLE {
            1
        } else {
            2
        };
        let assignments = if joined.is_leader() {
            self.sync_config().await?;
            self.leader_assignments(&joined.members, &joined.member_id, version)?
        } else {
            Vec::new()
        };
        let bytes = self.member.sync(&joined.protocol, assignments).await?;
        let a = Assignment::decode(bytes)?;
        self.protocol = joined.protocol.clone();
        self.generation = joined.generation_id;
        self.shared
            .is_leader
            .store(joined.is_leader(), Ordering::SeqCst);
        *self
            .shared
            .leader_url
            .write()
            .unwrap_or_else(|e| e.into_inner()) = Some(a.leader_url.clone());
        if a.delay_ms > 0 {
            self.rejoin_at = Some(Instant::now() + Duration::from_millis(a.delay_ms as u64));
        }
        info!(
            generation = joined.generation_id,
            leader = joined.is_leader(),
            protocol = %joined.protocol,
            assigned = a.assigned.len(),
            revoked = a.revoked.len(),
            "joined the Connect group"
        );
        self.assignment = a;
        self.need_join = false;
        self.last_heartbeat = Instant::now();
        // The assignment may lag the config the leader saw: read on.
        let _ = self.sync_config().await;
        Ok(())
    }

    fn leader_assignments(
        &mut self,
        members: &[(String, Bytes)],
        leader_id: &str,
        version: i16,
    ) -> Result<Vec<(String, Bytes)>> {
        let mut metas = BTreeMap::new();
        for (id, m) in members {
            metas.insert(id.clone(), MemberMetadata::decode(m.clone())?);
        }
        let all = self.all_work();
        let now = Instant::now();
        let delay = self.worker().scheduled_rebalance_max_delay;
        protocol::note_departures(&mut self.assignor, &self.owners, &metas, delay, now);
        let plan = protocol::assign(&mut self.assignor, &metas, &all, now);
        let leader_url = metas
            .get(leader_id)
            .map(|m| m.url.clone())
            .unwrap_or_else(|| self.worker().advertised_url.clone());
        let offset = self.shared.cluster().offset;
        self.owners.clear();
        let mut out = Vec::new();
        for (id, (assigned, revoked, delay_ms)) in plan {
            if let Some(m) = metas.get(&id) {
                self.owners.insert(m.url.clone(), assigned.clone());
            }
            let a = Assignment {
                error: 0,
                leader: leader_id.to_string(),
                leader_url: leader_url.clone(),
                config_offset: offset,
                assigned,
                revoked,
                delay_ms,
            };
            out.push((id, a.encode(version)));
        }
        self.assigned_work = all;
        Ok(out)
    }

    /// Brings what runs here in line with the assignment, the configs and
    /// the target states.
    async fn reconcile(&mut self) {
        let (connectors, tasks, targets, restarts) = {
            let c = self.shared.cluster();
            (
                c.connectors.clone(),
                c.tasks.clone(),
                c.targets.clone(),
                c.restarts[self.restarts_seen.min(c.restarts.len())..].to_vec(),
            )
        };
        self.restarts_seen += restarts.len();
        for r in restarts {
            self.restart_local(&r.connector, r.include_tasks, r.only_failed);
        }
        let mine: BTreeSet<Work> = self
            .assignment
            .assigned
            .iter()
            .filter(|w| !self.assignment.revoked.contains(*w))
            .cloned()
            .collect();
        // Stop what is no longer ours or no longer exists.
        let running_conns: Vec<String> = self.connectors.keys().cloned().collect();
        for name in running_conns {
            let target = targets.get(&name).copied().unwrap_or(TargetState::Started);
            let keep = mine.contains(&Work::Connector(name.clone()))
                && self.connectors.get(&name).is_some_and(|r| {
                    connectors.get(&name) == Some(&r.config) && r.target == target
                });
            if !keep {
                if let Some(mut r) = self.connectors.remove(&name) {
                    r.instance.stop();
                }
                if !connectors.contains_key(&name) {
                    self.tombstone_statuses(&name, &tasks).await;
                    self.shared.metrics.forget(&name);
                }
            }
        }
        let running_tasks: Vec<(String, i32)> = self.tasks.keys().cloned().collect();
        for (name, n) in running_tasks {
            let config = tasks.get(&name).and_then(|t| t.get(n as usize));
            let keep = mine.contains(&Work::Task(name.clone(), n))
                && targets.get(&name) != Some(&TargetState::Stopped)
                && config == self.tasks.get(&(name.clone(), n)).map(|t| &t.config);
            if !keep {
                if let Some(t) = self.tasks.remove(&(name.clone(), n)) {
                    let h = t.handle;
                    let _ = tokio::task::spawn_blocking(move || h.stop()).await;
                }
            }
        }
        // Start what is ours and not running.
        for w in &mine {
            match w {
                Work::Connector(name) => {
                    let Some(config) = connectors.get(name) else {
                        continue;
                    };
                    let target = targets.get(name).copied().unwrap_or(TargetState::Started);
                    if !self.connectors.contains_key(name) {
                        self.start_connector(name, config, target).await;
                    }
                }
                Work::Task(name, n) => {
                    let target = targets.get(name).copied().unwrap_or(TargetState::Started);
                    if target == TargetState::Stopped {
                        continue;
                    }
                    let paused = target == TargetState::Paused;
                    let key = (name.clone(), *n);
                    if let Some(t) = self.tasks.get(&key) {
                        if t.handle.paused.load(Ordering::SeqCst) != paused {
                            t.handle.paused.store(paused, Ordering::SeqCst);
                        }
                        continue;
                    }
                    if self
                        .auto_restart
                        .get(&key)
                        .is_some_and(|at| *at > Instant::now())
                    {
                        continue;
                    }
                    let (Some(cc), Some(tc)) = (
                        connectors.get(name),
                        tasks.get(name).and_then(|t| t.get(*n as usize)),
                    ) else {
                        continue;
                    };
                    self.start_task(name, *n, cc, tc, paused, 0);
                }
            }
        }
        self.check_tasks();
        *self.shared.local.write().unwrap_or_else(|e| e.into_inner()) = mine;
    }

    async fn start_connector(&mut self, name: &str, config: &Props, target: TargetState) {
        let work = Work::Connector(name.to_string());
        let plugin = match config.get("connector.class").and_then(|c| plugins::find(c)) {
            Some(p) => p,
            None => {
                self.report(
                    work,
                    "FAILED",
                    Some("org.apache.kafka.connect.errors.ConnectException: unknown connector class\n".into()),
                );
                return;
            }
        };
        let mut instance = (plugin.connector)();
        if let Err(e) = instance.start(config) {
            self.report(work, "FAILED", Some(worker::trace(&e)));
            // Remember it so it is not retried on every tick.
            self.connectors.insert(
                name.to_string(),
                RunningConnector {
                    instance,
                    config: config.clone(),
                    target,
                },
            );
            return;
        }
        let state = match target {
            TargetState::Started => "RUNNING",
            TargetState::Paused => "PAUSED",
            TargetState::Stopped => "STOPPED",
        };
        self.report(work, state, None);
        let wanted = if target == TargetState::Stopped {
            Ok(Vec::new())
        } else {
            let max = config
                .get("tasks.max")
                .and_then(|t| t.trim().parse::<usize>().ok())
                .unwrap_or(1)
                .max(1);
            instance.task_configs(max)
        };
        self.connectors.insert(
            name.to_string(),
            RunningConnector {
                instance,
                config: config.clone(),
                target,
            },
        );
        match wanted {
            Ok(wanted) => {
                let current = self.shared.cluster().tasks.get(name).cloned();
                if current.as_ref() != Some(&wanted) {
                    self.write_task_configs(name, &wanted).await;
                }
            }
            Err(e) => self.report(
                Work::Connector(name.to_string()),
                "FAILED",
                Some(worker::trace(&e)),
            ),
        }
    }

    async fn write_task_configs(&self, name: &str, configs: &[Props]) {
        let topic = self.worker().config_topic.clone();
        for (i, c) in configs.iter().enumerate() {
            let key = format!("task-{name}-{i}");
            if let Err(e) = self
                .writer
                .send(&topic, key.as_bytes(), Some(&storage::properties_value(c)))
                .await
            {
                error!(error = %e, "cannot write task configs");
                return;
            }
        }
        let key = format!("commit-{name}");
        if let Err(e) = self
            .writer
            .send(
                &topic,
                key.as_bytes(),
                Some(&storage::commit_value(configs.len())),
            )
            .await
        {
            error!(error = %e, "cannot commit task configs");
        }
    }

    fn start_task(
        &mut self,
        name: &str,
        n: i32,
        cc: &Props,
        tc: &Props,
        paused: bool,
        failures: u32,
    ) {
        let Some(plugin) = cc.get("connector.class").and_then(|c| plugins::find(c)) else {
            return;
        };
        let ctx = TaskContext {
            worker: self.shared.worker.clone(),
            connector: name.to_string(),
            task: n,
            plugin,
            connector_config: cc.clone(),
            task_config: tc.clone(),
            status: self.status_tx.clone(),
            metrics: self.shared.metrics.clone(),
        };
        let handle = worker::start_task(ctx, paused);
        self.tasks.insert(
            (name.to_string(), n),
            RunningTask {
                handle,
                config: tc.clone(),
                started: Instant::now(),
                failures,
            },
        );
    }

    /// Notices failed task threads; with `task.auto.restart.enable` they
    /// restart after a backoff that doubles up to five minutes.
    fn check_tasks(&mut self) {
        let finished: Vec<(String, i32)> = self
            .tasks
            .iter()
            .filter(|(_, t)| t.handle.finished())
            .map(|(k, _)| k.clone())
            .collect();
        for key in finished {
            let Some(t) = self.tasks.remove(&key) else {
                continue;
            };
            if !self.worker().task_auto_restart {
                // Keep the failed task in place so it is not restarted
                // until someone asks.
                self.tasks.insert(key, t);
                continue;
            }
            let failures = if t.started.elapsed() > Duration::from_secs(600) {
                1
            } else {
                t.failures + 1
            };
            let backoff = Duration::from_secs(1 << failures.min(8)).min(Duration::from_secs(300));
            info!(connector = %key.0, task = key.1, ?backoff, "restarting a failed task");
            self.auto_restart
                .insert(key.clone(), Instant::now() + backoff);
        }
        self.auto_restart.retain(|_, at| *at > Instant::now());
    }

    fn restart_local(&mut self, name: &str, include_tasks: bool, only_failed: bool) {
        let failed =
            |s: &Herder, key: &str| s.shared.status(key).is_some_and(|st| st.state == "FAILED");
        if self.connectors.contains_key(name)
            && (!only_failed || failed(self, &format!("status-connector-{name}")))
        {
            if let Some(mut r) = self.connectors.remove(name) {
                r.instance.stop();
                self.report(Work::Connector(name.to_string()), "RESTARTING", None);
            }
        }
        if include_tasks {
            let keys: Vec<(String, i32)> = self
                .tasks
                .keys()
                .filter(|(c, _)| c == name)
                .cloned()
                .collect();
            for key in keys {
                if only_failed && !failed(self, &format!("status-task-{}-{}", key.0, key.1)) {
                    continue;
                }
                if let Some(t) = self.tasks.remove(&key) {
                    self.report(Work::Task(key.0.clone(), key.1), "RESTARTING", None);
                    let h = t.handle;
                    std::thread::spawn(move || h.stop());
                }
            }
        }
    }

    async fn tombstone_statuses(&self, name: &str, tasks: &BTreeMap<String, Vec<Props>>) {
        let topic = self.worker().status_topic.clone();
        let mut keys = vec![format!("status-connector-{name}")];
        let n = tasks.get(name).map_or(0, Vec::len).max(
            self.shared
                .statuses
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .keys()
                .filter(|k| k.starts_with(&format!("status-task-{name}-")))
                .count(),
        );
        for i in 0..n {
            keys.push(format!("status-task-{name}-{i}"));
        }
        for k in keys {
            let _ = self.writer.send(&topic, k.as_bytes(), None).await;
        }
    }

    async fn stop_all(&mut self) {
        for (_, mut r) in std::mem::take(&mut self.connectors) {
            r.instance.stop();
        }
        let handles: Vec<TaskHandle> = std::mem::take(&mut self.tasks)
            .into_values()
            .map(|t| t.handle)
            .collect();
        let _ = tokio::task::spawn_blocking(move || {
            for h in handles {
                h.stop();
            }
        })
        .await;
    }

    /// Applies a change (this worker is the leader, or the change is
    /// local: a task restart).
    async fn handle(&mut self, change: Change) -> Result<bool> {
        if let Change::RestartTask { name, task } = &change {
            let key = (name.clone(), *task);
            let Some(t) = self.tasks.remove(&key) else {
                return Err(ConnectError::not_found(format!("Task {name}-{task}")));
            };
            let h = t.handle;
            let _ = tokio::task::spawn_blocking(move || h.stop()).await;
            self.auto_restart.remove(&key);
            self.reconcile().await;
            return Ok(false);
        }
        if let Change::ClusterLogger { namespace, level } = &change {
            let value = Json::obj([("level", Json::str(level.clone()))]).to_text();
            self.writer
                .send(
                    &self.worker().config_topic.clone(),
                    format!("logger-cluster-{namespace}").as_bytes(),
                    Some(value.as_bytes()),
                )
                .await?;
            return Ok(false);
        }
        if !self.shared.is_leader.load(Ordering::SeqCst) {
            return Err(ConnectError::Unavailable {
                message: "Cannot complete request because of a conflicting operation (e.g. worker rebalance)".into(),
            });
        }
        self.sync_config().await?;
        let topic = self.worker().config_topic.clone();
        let exists = |s: &Self, name: &str| s.shared.cluster().connectors.contains_key(name);
        match change {
            Change::PutConnector {
                name,
                config,
                create_only,
                initial_state,
            } => {
                let existed = exists(self, &name);
                if create_only && existed {
                    return Err(ConnectError::Conflict {
                        message: format!("Connector {name} already exists"),
                    });
                }
                if let (false, Some(state)) = (existed, initial_state) {
                    self.writer
                        .send(
                            &topic,
                            format!("target-state-{name}").as_bytes(),
                            Some(&storage::target_state_value(state)),
                        )
                        .await?;
                }
                self.writer
                    .send(
                        &topic,
                        format!("connector-{name}").as_bytes(),
                        Some(&storage::properties_value(&config)),
                    )
                    .await?;
                self.sync_config_until(|s| exists(s, &name)).await?;
                Ok(!existed)
            }
            Change::DeleteConnector { name } => {
                if !exists(self, &name) {
                    return Err(ConnectError::not_found(format!("Connector {name}")));
                }
                for key in [format!("connector-{name}"), format!("target-state-{name}")] {
                    self.writer.send(&topic, key.as_bytes(), None).await?;
                }
                self.sync_config_until(|s| !exists(s, &name)).await?;
                Ok(false)
            }
            Change::SetTarget { name, state } => {
                if !exists(self, &name) {
                    return Err(ConnectError::not_found(format!("Connector {name}")));
                }
                self.writer
                    .send(
                        &topic,
                        format!("target-state-{name}").as_bytes(),
                        Some(&storage::target_state_value(state)),
                    )
                    .await?;
                self.sync_config().await?;
                Ok(false)
            }
            Change::Restart {
                name,
                include_tasks,
                only_failed,
            } => {
                if !exists(self, &name) {
                    return Err(ConnectError::not_found(format!("Connector {name}")));
                }
                self.writer
                    .send(
                        &topic,
                        format!("restart-connector-{name}").as_bytes(),
                        Some(&storage::restart_value(include_tasks, only_failed)),
                    )
                    .await?;
                self.sync_config().await?;
                Ok(false)
            }
            Change::ResetTopics { name } => {
                if !exists(self, &name) {
                    return Err(ConnectError::not_found(format!("Connector {name}")));
                }
                let suffix = format!(":connector-{name}");
                let keys: Vec<String> = self
                    .shared
                    .statuses
                    .read()
                    .unwrap_or_else(|e| e.into_inner())
                    .keys()
                    .filter(|k| k.starts_with("status-topic-") && k.ends_with(&suffix))
                    .cloned()
                    .collect();
                let status_topic = self.worker().status_topic.clone();
                for k in keys {
                    self.writer.send(&status_topic, k.as_bytes(), None).await?;
                }
                Ok(false)
            }
            Change::AlterOffsets { name, offsets } => {
                let (config, stopped, task_peak) = {
                    let c = self.shared.cluster();
                    let Some(config) = c.connectors.get(&name).cloned() else {
                        return Err(ConnectError::not_found(format!("Connector {name}")));
                    };
                    // Stopping writes an empty set of task configs; until
                    // it is written tasks may still be running.
                    let stopped = c.targets.get(&name) == Some(&TargetState::Stopped)
                        && c.tasks.get(&name).is_none_or(Vec::is_empty);
                    (
                        config,
                        stopped,
                        c.task_peak.get(&name).copied().unwrap_or(0),
                    )
                };
                if !stopped {
                    return Err(ConnectError::bad_request(format!("Connectors must be in the STOPPED state before their offsets can be modified. This can be done for the specified connector by issuing a 'PUT' request to the '/connectors/{name}/stop' endpoint")));
                }
                let w = self.shared.worker.clone();
                crate::offsets::alter(&w, &self.writer, &name, &config, task_peak, offsets).await
            }
            Change::RestartTask { .. } | Change::ClusterLogger { .. } => Ok(false),
        }
    }
}

/// The status topic key of a piece of work.
pub fn status_key(w: &Work) -> String {
    match w {
        Work::Connector(c) => format!("status-connector-{c}"),
        Work::Task(c, n) => format!("status-task-{c}-{n}"),
    }
}
