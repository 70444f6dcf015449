//! The HTTP sink's task: batches records and sends them with reqwest (a
//! pooled client, so batches reuse connections) on a runtime of its own,
//! since a task runs on a thread of its own and may block.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tracing::{debug, warn};

use super::{excerpt, OnError, OnNull, Settings};
use crate::connector::{ErrantRecord, Props, SinkOffsets, SinkRecord, SinkTask};
use crate::error::{ConnectError, Result};

/// A batch waiting to be sent: its URL and records, with their body parts.
#[derive(Default)]
struct Pending {
    url: String,
    records: Vec<SinkRecord>,
    parts: Vec<String>,
}

/// The task.
#[derive(Default)]
pub struct HttpSinkTask {
    settings: Option<Settings>,
    rt: Option<tokio::runtime::Runtime>,
    client: Option<reqwest::Client>,
    pending: Pending,
    errant: Vec<ErrantRecord>,
    /// `errors.tolerance=all`: go on after an errant record. Otherwise the
    /// runtime fails the task on the first, so nothing after it is sent
    /// (Kafka's reporter throws inside `put`).
    tolerate_all: bool,
    /// Set when the runtime stops the task: retries give up.
    stop: Option<Arc<AtomicBool>>,
}

/// How a request ended.
enum Outcome {
    Sent,
    /// Failed for good, with the reason.
    Failed(String),
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

fn jitter() -> f64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    f64::from(nanos % 1000) / 1000.0
}

impl HttpSinkTask {
    fn settings(&self) -> Result<&Settings> {
        self.settings
            .as_ref()
            .ok_or_else(|| ConnectError::failed("the HTTP sink task was not started"))
    }

    fn stopping(&self) -> bool {
        self.stop.as_ref().is_some_and(|s| s.load(Ordering::SeqCst))
    }

    /// Sends one request, retrying per the settings.
    fn request(&self, method: &str, url: &str, body: Option<String>) -> Result<Outcome> {
        let s = self.settings()?;
        let (Some(rt), Some(client)) = (&self.rt, &self.client) else {
            return Err(ConnectError::failed("the HTTP sink task was not started"));
        };
        let method = reqwest::Method::from_bytes(method.as_bytes())
            .map_err(|e| ConnectError::bad_config(e.to_string()))?;
        let mut attempt = 0u32;
        loop {
            let mut req = client.request(method.clone(), url);
            if body.is_some()
                && !s
                    .headers
                    .iter()
                    .any(|(k, _)| k.eq_ignore_ascii_case("content-type"))
            {
                req = req.header("content-type", s.content_type());
            }
            for (k, v) in &s.headers {
                req = req.header(k.as_str(), v.as_str());
            }
            if let Some((user, password)) = &s.basic_auth {
                req = req.basic_auth(user, Some(password));
            }
            if let Some(b) = &body {
                req = req.body(b.clone());
            }
            let result = rt.block_on(async {
                let resp = req.send().await?;
                let status = resp.status();
                let bytes = resp.bytes().await?;
                Ok::<_, reqwest::Error>((status, bytes))
            });
            let (retriable, why) = match result {
                Ok((status, _)) if status.is_success() => return Ok(Outcome::Sent),
                Ok((status, bytes)) => (
                    s.retriable(status.as_u16()),
                    format!("HTTP {status} from {method} {url}: {}", excerpt(&bytes)),
                ),
                Err(e) => (true, format!("{method} {url} failed: {}", error_chain(&e))),
            };
            if !retriable || attempt >= s.max_retries {
                let why = if retriable {
                    format!("{why} (after {} retries)", s.max_retries)
                } else {
                    why
                };
                return Ok(Outcome::Failed(why));
            }
            let wait = s.backoff(attempt, jitter());
            warn!(error = %why, ?wait, attempt = attempt + 1, "HTTP sink retrying a request");
            // Sleep in slices so a stop is prompt.
            let until = Instant::now() + wait;
            loop {
                if self.stopping() {
                    return Err(ConnectError::failed(format!(
                        "stopped while retrying: {why}"
                    )));
                }
                let left = until.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    break;
                }
                std::thread::sleep(left.min(Duration::from_millis(50)));
            }
            attempt += 1;
        }
    }

    /// What a batch that failed for good does, per `behavior.on.error`.
    fn failed(&mut self, records: Vec<SinkRecord>, why: String) {
        let on_error = self.settings.as_ref().map_or(OnError::Fail, |s| s.on_error);
        match on_error {
            OnError::Fail => {
                for r in records {
                    self.errant.push((r, ConnectError::failed(why.clone())));
                }
            }
            OnError::Log => {
                warn!(error = %why, records = records.len(), "HTTP sink skipped a failed batch (behavior.on.error=log)")
            }
            OnError::Ignore => {
                debug!(error = %why, records = records.len(), "HTTP sink skipped a failed batch (behavior.on.error=ignore)")
            }
        }
    }

    /// Sends the pending batch.
    fn send_pending(&mut self) -> Result<()> {
        if self.pending.records.is_empty() {
            return Ok(());
        }
        let Pending {
            url,
            records,
            parts,
        } = std::mem::take(&mut self.pending);
        let s = self.settings()?;
        let body = s.batch_body(&parts);
        let method = s.method.clone();
        if let Outcome::Failed(why) = self.request(&method, &url, Some(body))? {
            self.failed(records, why);
        }
        Ok(())
    }
}

impl SinkTask for HttpSinkTask {
    fn start(&mut self, config: &Props) -> Result<()> {
        let s = Settings::from_props(config)?;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| ConnectError::Io {
                context: "starting the HTTP sink's runtime".into(),
                source: e,
            })?;
        let mut b = reqwest::Client::builder().timeout(Duration::from_millis(s.request_timeout_ms));
        if s.connect_timeout_ms > 0 {
            b = b.connect_timeout(Duration::from_millis(s.connect_timeout_ms));
        }
        let client = b.build().map_err(|e| {
            ConnectError::failed(format!("building the HTTP client: {}", error_chain(&e)))
        })?;
        self.tolerate_all = config.get("errors.tolerance").map(String::as_str) == Some("all");
        self.settings = Some(s);
        self.rt = Some(rt);
        self.client = Some(client);
        Ok(())
    }

    fn put(&mut self, records: Vec<SinkRecord>) -> Result<()> {
        for r in records {
            if !self.tolerate_all && !self.errant.is_empty() {
                break;
            }
            let s = self.settings()?;
            let url = s.url_for(&r.record.topic, &r.record.key);
            if r.record.value.value.is_null() {
                match s.on_null {
                    OnNull::Ignore => continue,
                    OnNull::Fail => {
                        let e = ConnectError::data(format!(
                            "Null valued record from topic '{}', partition {} and offset {} was failed (the configuration property 'behavior.on.null.values' is 'fail').",
                            r.original_topic, r.original_partition, r.kafka_offset
                        ));
                        self.errant.push((r, e));
                        continue;
                    }
                    OnNull::Delete => {
                        // In order with the records before it.
                        self.send_pending()?;
                        if let Outcome::Failed(why) = self.request("DELETE", &url, None)? {
                            self.failed(vec![r], why);
                        }
                        continue;
                    }
                }
            }
            let part = match s.record_body(&r.record.value) {
                Ok(p) => p,
                Err(e) => {
                    self.errant.push((r, e));
                    continue;
                }
            };
            if !self.pending.records.is_empty() && self.pending.url != url {
                self.send_pending()?;
            }
            let max = self.settings()?.batch_max_size;
            self.pending.url = url;
            self.pending.records.push(r);
            self.pending.parts.push(part);
            if self.pending.records.len() >= max {
                self.send_pending()?;
            }
        }
        Ok(())
    }

    fn flush(&mut self, _offsets: &SinkOffsets) -> Result<()> {
        self.send_pending()
    }

    fn watch_stop(&mut self, stop: Arc<AtomicBool>) {
        self.stop = Some(stop);
    }

    fn errant_records(&mut self) -> Vec<ErrantRecord> {
        std::mem::take(&mut self.errant)
    }

    fn stop(&mut self) {
        self.client = None;
        self.rt = None;
    }
}
