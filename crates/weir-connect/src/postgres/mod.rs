//! PostgreSQL change data capture compatible with Debezium's PostgreSQL
//! connector (`io.debezium.connector.postgresql.PostgresConnector`):
//! Debezium's configuration names and defaults, its topics, keys,
//! envelopes and Connect schemas, and its offsets.
//!
//! - [`pgoutput`]: the logical replication stream's decoder (fuzzed);
//! - [`wire`]: a blocking client for queries and the replication
//!   connection (the task runs on its own thread);
//! - [`types`]: Debezium's default type mapping.
//!
//! How a task runs: it makes sure the publication and the slot exist; when
//! a snapshot is due it creates the slot with an exported snapshot, reads
//! every captured table in one repeatable-read transaction at that
//! snapshot, then streams from the slot's consistent point, so no change
//! is missed or read twice. A snapshot replacing a completed one
//! (`when_needed` once the slot is gone, `always`) first has the runtime
//! commit an offset saying a snapshot is under way, without a record: a
//! task restarted before the snapshot's own offsets are committed then
//! snapshots again rather than streaming from the new slot as if it were
//! the old one. The slot's confirmed position is moved (a
//! standby status update) only in `commit`, which the runtime calls after
//! Kafka acknowledged the records polled so far and their offsets; a
//! killed worker therefore restarts from a position that loses nothing,
//! and the offsets (`lsn_commit`, `lsn`, `txId`) let it skip what it had
//! already written before the slot moved, so under exactly-once support
//! nothing repeats either.

pub mod pgoutput;
#[cfg(feature = "runtime")]
mod task;
pub mod types;
#[cfg(feature = "runtime")]
pub mod wire;

use crate::config::{ConfigDef, ConfigKey, ConfigType};
use crate::connector::{Connector, ConnectorType, Plugin, Props};
use crate::error::{ConnectError, Result};

/// The Debezium release whose records this connector writes
/// (`source.version`).
pub const DEBEZIUM_VERSION: &str = "3.6.3.Final";

/// The plugin.
pub const POSTGRES_SOURCE: Plugin = Plugin {
    class: "io.debezium.connector.postgresql.PostgresConnector",
    kind: ConnectorType::Source,
    version: DEBEZIUM_VERSION,
    config_def: def,
    connector: || Box::new(PostgresConnector::default()),
    #[cfg(feature = "runtime")]
    source_task: Some(|| Box::new(task::PostgresTask::default())),
    #[cfg(not(feature = "runtime"))]
    source_task: None,
    sink_task: None,
};

const SNAPSHOT_MODES: &[&str] = &[
    "initial",
    "never",
    "no_data",
    "initial_only",
    "always",
    "when_needed",
];

fn def() -> ConfigDef {
    let s = |name, default, doc| ConfigKey::new(name, ConfigType::String, default, "HIGH", doc);
    let l = |name, doc| ConfigKey::new(name, ConfigType::List, Some(""), "MEDIUM", doc);
    ConfigDef {
        keys: vec![
            s("database.hostname", None, "Resolvable hostname or IP address of the database server."),
            ConfigKey::new("database.port", ConfigType::Int, Some("5432"), "HIGH", "Port of the database server."),
            s("database.user", None, "Name of the database user to be used when connecting to the database."),
            ConfigKey { nullable: true, ..ConfigKey::new("database.password", ConfigType::Password, None, "HIGH", "Password of the database user to be used when connecting to the database.") },
            s("database.dbname", None, "The name of the database from which the connector should capture changes"),
            ConfigKey { choices: &["disable", "allow", "prefer", "require", "verify-ca", "verify-full"], ..s("database.sslmode", Some("prefer"), "Whether to use an encrypted connection to the server. Options include: 'disable' to use an unencrypted connection; 'allow' to try an unencrypted connection first and, failing that, a secure (encrypted) one; 'prefer' (the default) to try a secure connection first and, failing that, an unencrypted one; 'require' to use a secure connection, and fail if one cannot be established; 'verify-ca' like 'require' but additionally verify the server TLS certificate against the configured Certificate Authority (CA) certificates; 'verify-full' like 'verify-ca' but additionally verify that the server certificate matches the host to which the connection is attempted.") },
            ConfigKey { nullable: true, ..s("database.sslrootcert", None, "The name of the file (PEM) containing the root certificate(s) against which the server is validated.") },
            ConfigKey { nullable: true, ..s("database.sslcert", None, "File (PEM) containing the SSL Certificate for the client.") },
            ConfigKey { nullable: true, ..s("database.sslkey", None, "File containing the SSL private key for the client (PEM, or PKCS#8 DER).") },
            ConfigKey { nullable: true, ..ConfigKey::new("database.sslpassword", ConfigType::Password, None, "MEDIUM", "Password to access the client private key; encrypted keys are not supported, so this is unused.") },
            s("topic.prefix", None, "Topic prefix that identifies and provides a namespace for the particular database server/cluster is capturing changes."),
            ConfigKey { choices: &["pgoutput"], ..s("plugin.name", Some("pgoutput"), "The name of the Postgres logical decoding plugin installed on the server.") },
            s("slot.name", Some("debezium"), "The name of the Postgres logical decoding slot created for streaming changes from a plugin."),
            s("publication.name", Some("dbz_publication"), "The name of the Postgres 10+ publication used for streaming changes from a plugin."),
            ConfigKey { choices: &["all_tables", "disabled", "filtered"], ..s("publication.autocreate.mode", Some("all_tables"), "Applies only when streaming changes using pgoutput: all_tables, disabled or filtered.") },
            l("schema.include.list", "The schemas for which events should be captured"),
            l("schema.exclude.list", "The schemas for which events must not be captured"),
            l("table.include.list", "The tables for which changes are to be captured"),
            l("table.exclude.list", "A comma-separated list of regular expressions that match the fully-qualified names of tables to be excluded from monitoring"),
            l("column.include.list", "Regular expressions matching columns to include in change events"),
            l("column.exclude.list", "Regular expressions matching columns to exclude from change events"),
            ConfigKey { choices: SNAPSHOT_MODES, ..s("snapshot.mode", Some("initial"), "The criteria for running a snapshot upon startup of the connector: initial, never, no_data, initial_only, always, when_needed (a snapshot when there is no offset or its position is no longer available).") },
            ConfigKey::new("heartbeat.interval.ms", ConfigType::Int, Some("0"), "MEDIUM", "Length of an interval in milli-seconds in in which the connector periodically sends heartbeat messages to a heartbeat topic. Use 0 to disable heartbeat messages."),
            s("topic.heartbeat.prefix", Some("__debezium-heartbeat"), "The prefix that is used to name heartbeat topics."),
            ConfigKey { choices: &["precise", "double", "string"], ..s("decimal.handling.mode", Some("precise"), "Specify how DECIMAL and NUMERIC columns should be represented in change events: precise, double or string.") },
            ConfigKey { choices: &["adaptive", "adaptive_time_microseconds", "connect"], ..s("time.precision.mode", Some("adaptive"), "Time, date, and timestamps can be represented with different kinds of precisions: adaptive, adaptive_time_microseconds or connect.") },
            ConfigKey::new("tombstones.on.delete", ConfigType::Boolean, Some("true"), "MEDIUM", "Whether delete operations should be represented by a delete event and a subsequent tombstone event (true) or only by a delete event (false)."),
            ConfigKey::new("skipped.operations", ConfigType::List, Some("t"), "LOW", "The comma-separated list of operations to skip during streaming: c, u, d, t, or none."),
            ConfigKey::new("errors.max.retries", ConfigType::Int, Some("-1"), "LOW", "The maximum number of retries on connection errors before failing (-1 = no limit, 0 = disabled, > 0 = num of retries)."),
            ConfigKey::new("retriable.restart.connector.wait.ms", ConfigType::Long, Some("10000"), "LOW", "Time to wait before restarting connector after retriable exception occurs. Defaults to 10000ms."),
            ConfigKey { min: Some(1), ..ConfigKey::new("max.batch.size", ConfigType::Int, Some("2048"), "MEDIUM", "Maximum size of each batch of source records.") },
        ],
    }
}

/// The connector: checks the config, runs one task.
#[derive(Debug, Default)]
struct PostgresConnector {
    props: Props,
}

impl Connector for PostgresConnector {
    fn start(&mut self, config: &Props) -> Result<()> {
        for k in [
            "database.hostname",
            "database.user",
            "database.dbname",
            "topic.prefix",
        ] {
            if config.get(k).is_none_or(|v| v.trim().is_empty()) {
                return Err(ConnectError::bad_config(format!(
                    "Missing required configuration \"{k}\" which has no default value."
                )));
            }
        }
        Filters::from_props(config)?;
        self.props = config.clone();
        Ok(())
    }

    /// One task: a slot has one reader.
    fn task_configs(&self, _max_tasks: usize) -> Result<Vec<Props>> {
        Ok(vec![self.props.clone()])
    }
}

/// The include and exclude lists, as Debezium matches them: each item a
/// regular expression matched against the whole name.
#[derive(Debug, Clone, Default)]
pub struct Filters {
    schema_in: Vec<regex::Regex>,
    schema_out: Vec<regex::Regex>,
    table_in: Vec<regex::Regex>,
    table_out: Vec<regex::Regex>,
    column_in: Vec<regex::Regex>,
    column_out: Vec<regex::Regex>,
}

impl Filters {
    /// From a connector config.
    pub fn from_props(p: &Props) -> Result<Filters> {
        let list = |k: &str| -> Result<Vec<regex::Regex>> {
            crate::config::list(p, k)
                .iter()
                .map(|r| {
                    regex::Regex::new(&format!("^(?:{r})$")).map_err(|e| {
                        ConnectError::bad_config(format!(
                            "Invalid value {r} for configuration {k}: {e}"
                        ))
                    })
                })
                .collect()
        };
        Ok(Filters {
            schema_in: list("schema.include.list")?,
            schema_out: list("schema.exclude.list")?,
            table_in: list("table.include.list")?,
            table_out: list("table.exclude.list")?,
            column_in: list("column.include.list")?,
            column_out: list("column.exclude.list")?,
        })
    }

    /// Whether changes of `schema.table` are captured.
    pub fn table(&self, schema: &str, table: &str) -> bool {
        let any = |rs: &[regex::Regex], s: &str| rs.iter().any(|r| r.is_match(s));
        if matches!(schema, "pg_catalog" | "information_schema") || schema.starts_with("pg_") {
            return false;
        }
        if !self.schema_in.is_empty() && !any(&self.schema_in, schema) {
            return false;
        }
        if any(&self.schema_out, schema) {
            return false;
        }
        let full = format!("{schema}.{table}");
        if !self.table_in.is_empty() && !any(&self.table_in, &full) {
            return false;
        }
        !any(&self.table_out, &full)
    }

    /// Whether `schema.table.column` is part of the events.
    pub fn column(&self, schema: &str, table: &str, column: &str) -> bool {
        let full = format!("{schema}.{table}.{column}");
        let any = |rs: &[regex::Regex]| rs.iter().any(|r| r.is_match(&full));
        if !self.column_in.is_empty() && !any(&self.column_in) {
            return false;
        }
        !any(&self.column_out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_match_whole_names() {
        let mut p = Props::new();
        p.insert("table.include.list".into(), "public.items,inv\\..*".into());
        p.insert("column.exclude.list".into(), "public.items.secret".into());
        let f = Filters::from_props(&p).unwrap();
        assert!(f.table("public", "items"));
        assert!(!f.table("public", "items2"));
        assert!(f.table("inv", "x"));
        assert!(!f.table("pg_catalog", "pg_class"));
        assert!(!f.column("public", "items", "secret"));
        assert!(f.column("public", "items", "secret2"));
        p.insert("table.include.list".into(), "(".into());
        assert!(Filters::from_props(&p).is_err());
    }
}
