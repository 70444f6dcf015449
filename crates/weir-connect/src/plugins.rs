//! The connector plugins this runtime has, found by the class names users
//! already have in their configs, and connector config validation (the
//! runtime's common configs plus the plugin's own).

use crate::config::{ConfigDef, ConfigKey, ConfigType, ConfigValue};
use crate::connector::{ConnectorType, Plugin, Props};
use crate::converter::make_converter;
use crate::datagen::DATAGEN_SOURCE;
use crate::file::{FILE_SINK, FILE_SOURCE};
use crate::http_sink::HTTP_SINK;
use crate::jdbc::JDBC_SINK;
use crate::postgres::POSTGRES_SOURCE;

/// Every connector plugin, in the order `/connector-plugins` lists them.
pub const PLUGINS: &[Plugin] = &[
    FILE_SINK,
    FILE_SOURCE,
    DATAGEN_SOURCE,
    POSTGRES_SOURCE,
    JDBC_SINK,
    HTTP_SINK,
    #[cfg(feature = "runtime")]
    crate::s3::S3_SINK,
];

/// The plugin called `name` (class name, simple name, or alias).
pub fn find(name: &str) -> Option<Plugin> {
    let name = name.trim();
    PLUGINS.iter().copied().find(|p| p.matches(name))
}

/// The error Kafka gives for a class it cannot find, naming what exists.
pub fn unknown_class_message(name: &str) -> String {
    let names: Vec<String> = PLUGINS
        .iter()
        .map(|p| {
            format!(
                "PluginDesc{{klass=class {}, name='{}', version='{}', encodedVersion={}, type={}, typeName='{}', location='classpath'}}",
                p.class,
                p.class,
                p.version,
                p.version,
                p.kind.name(),
                p.kind.name()
            )
        })
        .collect();
    format!(
        "Failed to find any class that implements Connector and which name matches {name}, available connectors are: {}",
        names.join(", ")
    )
}

const COMMON: &str = "Common";
const ERRORS: &str = "Error Handling";

/// The runtime's own configs for a connector of `plugin`'s kind, as Kafka
/// Connect 4.3 defines them (names, types, defaults, groups, order, docs).
pub fn common_keys(plugin: &Plugin) -> Vec<ConfigKey> {
    let mut keys = common(plugin.kind);
    if let Some(k) = keys
        .iter_mut()
        .find(|k| k.name == "connector.plugin.version")
    {
        k.default = Some(plugin.version);
    }
    keys
}

fn common(kind: ConnectorType) -> Vec<ConfigKey> {
    let g = |mut k: ConfigKey, group: &'static str, order: i32, display: &'static str| {
        k.group = Some(group);
        k.order = order;
        k.display = display;
        k
    };
    let mut keys = vec![
        g(ConfigKey { width: "MEDIUM", ..ConfigKey::new("name", ConfigType::String, None, "HIGH", "Globally unique name to use for this connector.") }, "Common", 1, "Connector name"),
        g(ConfigKey { width: "LONG", ..ConfigKey::new("connector.class", ConfigType::String, None, "HIGH", "Name or alias of the class for this connector. Must be a subclass of org.apache.kafka.connect.connector.Connector. If the connector is org.apache.kafka.connect.file.FileStreamSinkConnector, you can either specify this full name,  or use \"FileStreamSink\" or \"FileStreamSinkConnector\" to make the configuration a bit shorter") }, "Common", 2, "Connector class"),
        g(ConfigKey { width: "MEDIUM", ..ConfigKey::new("connector.plugin.version", ConfigType::String, Some("4.3.0"), "MEDIUM", "Version of the connector.") }, "Common", 3, "Connector version"),
        g(ConfigKey { min: Some(1), width: "SHORT", ..ConfigKey::new("tasks.max", ConfigType::Int, Some("1"), "HIGH", "Maximum number of tasks to use for this connector.") }, "Common", 4, "Tasks max"),
        g(ConfigKey { width: "SHORT", ..ConfigKey::new("tasks.max.enforce", ConfigType::Boolean, Some("true"), "LOW", "(Deprecated) Whether to enforce that the tasks.max property is respected by the connector. By default, connectors that generate too many tasks will fail, and existing sets of tasks that exceed the tasks.max property will also be failed. If this property is set to false, then connectors will be allowed to generate more than the maximum number of tasks, and existing sets of tasks that exceed the tasks.max property will be allowed to run. This property is deprecated and will be removed in an upcoming major release.") }, "Common", 5, "Enforce tasks max"),
        g(ConfigKey { nullable: true, width: "SHORT", ..ConfigKey::new("key.converter", ConfigType::Class, None, "LOW", "Converter class used to convert between Kafka Connect format and the serialized form that is written to Kafka. This controls the format of the keys in messages written to or read from Kafka, and since this is independent of connectors it allows any connector to work with any serialization format. Examples of common formats include JSON and Avro.") }, "Common", 6, "Key converter class"),
        g(ConfigKey { nullable: true, width: "SHORT", ..ConfigKey::new("key.converter.plugin.version", ConfigType::String, None, "LOW", "Version of the key converter.") }, "Common", 7, "Key converter version"),
        g(ConfigKey { nullable: true, width: "SHORT", ..ConfigKey::new("value.converter", ConfigType::Class, None, "LOW", "Converter class used to convert between Kafka Connect format and the serialized form that is written to Kafka. This controls the format of the values in messages written to or read from Kafka, and since this is independent of connectors it allows any connector to work with any serialization format. Examples of common formats include JSON and Avro.") }, "Common", 8, "Value converter class"),
        g(ConfigKey { nullable: true, width: "SHORT", ..ConfigKey::new("value.converter.plugin.version", ConfigType::String, None, "LOW", "Version of the value converter.") }, "Common", 9, "Value converter version"),
        g(ConfigKey { nullable: true, width: "SHORT", ..ConfigKey::new("header.converter", ConfigType::Class, None, "LOW", "HeaderConverter class used to convert between Kafka Connect format and the serialized form that is written to Kafka. This controls the format of the header values in messages written to or read from Kafka, and since this is independent of connectors it allows any connector to work with any serialization format. Examples of common formats include JSON and Avro. By default, the SimpleHeaderConverter is used to serialize header values to strings and deserialize them by inferring the schemas.") }, "Common", 10, "Header converter class"),
        g(ConfigKey { nullable: true, width: "SHORT", ..ConfigKey::new("header.converter.plugin.version", ConfigType::String, None, "LOW", "Version of the header converter.") }, "Common", 11, "Header converter version"),
        g(ConfigKey { width: "LONG", ..ConfigKey::new("transforms", ConfigType::List, Some(""), "LOW", "Aliases for the transformations to be applied to records.") }, "Transforms", 12, "Transforms"),
        g(ConfigKey { width: "LONG", ..ConfigKey::new("predicates", ConfigType::List, Some(""), "LOW", "Aliases for the predicates used by transformations.") }, "Predicates", 13, "Predicates"),
        g(ConfigKey { choices: &["none", "restart"], width: "MEDIUM", ..ConfigKey::new("config.action.reload", ConfigType::String, Some("restart"), "LOW", "The action that Connect should take on the connector when changes in external configuration providers result in a change in the connector's configuration properties. A value of 'none' indicates that Connect will do nothing. A value of 'restart' indicates that Connect should restart/reload the connector with the updated configuration properties.The restart may actually be scheduled in the future if the external configuration provider indicates that a configuration value will expire in the future.") }, "Common", 14, "Reload Action"),
        g(ConfigKey { width: "MEDIUM", ..ConfigKey::new("errors.retry.timeout", ConfigType::Long, Some("0"), "MEDIUM", "The maximum duration in milliseconds that a failed operation will be reattempted. The default is 0, which means no retries will be attempted. Use -1 for infinite retries.") }, "Error Handling", 1, "Retry Timeout for Errors"),
        g(ConfigKey { width: "MEDIUM", ..ConfigKey::new("errors.retry.delay.max.ms", ConfigType::Long, Some("60000"), "MEDIUM", "The maximum duration in milliseconds between consecutive retry attempts. Jitter will be added to the delay once this limit is reached to prevent thundering herd issues.") }, "Error Handling", 2, "Maximum Delay Between Retries for Errors"),
        g(ConfigKey { choices: &["none", "all"], width: "SHORT", ..ConfigKey::new("errors.tolerance", ConfigType::String, Some("none"), "MEDIUM", "Behavior for tolerating errors during connector operation. 'none' is the default value and signals that any error will result in an immediate connector task failure; 'all' changes the behavior to skip over problematic records.") }, "Error Handling", 3, "Error Tolerance"),
        g(ConfigKey { width: "SHORT", ..ConfigKey::new("errors.log.enable", ConfigType::Boolean, Some("false"), "MEDIUM", "If true, write each error and the details of the failed operation and problematic record to the Connect application log. This is 'false' by default, so that only errors that are not tolerated are reported.") }, "Error Handling", 4, "Log Errors"),
        g(ConfigKey { width: "SHORT", ..ConfigKey::new("errors.log.include.messages", ConfigType::Boolean, Some("false"), "MEDIUM", "Whether to include in the log the Connect record that resulted in a failure. For sink records, the topic, partition, offset, and timestamp will be logged. For source records, the key and value (and their schemas), all headers, and the timestamp, Kafka topic, Kafka partition, source partition, and source offset will be logged. This is 'false' by default, which will prevent record keys, values, and headers from being written to log files.") }, "Error Handling", 5, "Log Error Details"),
    ];
    if kind == ConnectorType::Sink {
        keys.extend([
            g(ConfigKey { width: "LONG", ..ConfigKey::new("topics", ConfigType::List, Some(""), "HIGH", "List of topics to consume, separated by commas") }, "Common", 4, "Topics"),
            g(ConfigKey { width: "LONG", ..ConfigKey::new("topics.regex", ConfigType::String, Some(""), "HIGH", "Regular expression giving topics to consume. Under the hood, the regex is compiled to a <code>java.util.regex.Pattern</code>. Only one of topics or topics.regex should be specified.") }, "Common", 4, "Topics regex"),
            g(ConfigKey { width: "MEDIUM", ..ConfigKey::new("errors.deadletterqueue.topic.name", ConfigType::String, Some(""), "MEDIUM", "The name of the topic to be used as the dead letter queue (DLQ) for messages that result in an error when processed by this sink connector, or its transformations or converters. The topic name is blank by default, which means that no messages are to be recorded in the DLQ.") }, "Error Handling", 6, "Dead Letter Queue Topic Name"),
            g(ConfigKey { width: "MEDIUM", ..ConfigKey::new("errors.deadletterqueue.topic.replication.factor", ConfigType::Short, Some("3"), "MEDIUM", "Replication factor used to create the dead letter queue topic when it doesn't already exist.") }, "Error Handling", 7, "Dead Letter Queue Topic Replication Factor"),
            g(ConfigKey { width: "MEDIUM", ..ConfigKey::new("errors.deadletterqueue.context.headers.enable", ConfigType::Boolean, Some("false"), "MEDIUM", "If true, add headers containing error context to the messages written to the dead letter queue. To avoid clashing with headers from the original record, all error context header keys, all error context header keys will start with <code>__connect.errors.</code>") }, "Error Handling", 8, "Enable Error Context Headers"),
        ]);
    } else {
        keys.extend([
            g(ConfigKey { width: "LONG", ..ConfigKey::new("topic.creation.groups", ConfigType::List, Some(""), "LOW", "Groups of configurations for topics created by source connectors") }, "Topic Creation", 1, "Topic Creation Groups"),
            g(ConfigKey { choices: &["REQUIRED", "REQUESTED"], width: "SHORT", ..ConfigKey::new("exactly.once.support", ConfigType::String, Some("requested"), "MEDIUM", "Permitted values are requested, required. If set to \"required\", forces a preflight check for the connector to ensure that it can provide exactly-once semantics with the given configuration. Some connectors may be capable of providing exactly-once semantics but not signal to Connect that they support this; in that case, documentation for the connector should be consulted carefully before creating it, and the value for this property should be set to \"requested\". Additionally, if the value is set to \"required\" but the worker that performs preflight validation does not have exactly-once support enabled for source connectors, requests to create or validate the connector will fail.") }, "Exactly Once Support", 2, "Exactly once support"),
            g(ConfigKey { choices: &["POLL", "INTERVAL", "CONNECTOR"], width: "SHORT", ..ConfigKey::new("transaction.boundary", ConfigType::String, Some("poll"), "MEDIUM", "Permitted values are: poll, interval, connector. If set to 'poll', a new producer transaction will be started and committed for every batch of records that each task from this connector provides to Connect. If set to 'connector', relies on connector-defined transaction boundaries; note that not all connectors are capable of defining their own transaction boundaries, and in that case, attempts to instantiate a connector with this value will fail. Finally, if set to 'interval', commits transactions only after a user-defined time interval has passed.") }, "Exactly Once Support", 3, "Transaction Boundary"),
            g(ConfigKey { nullable: true, width: "SHORT", ..ConfigKey::new("transaction.boundary.interval.ms", ConfigType::Long, None, "LOW", "If 'transaction.boundary' is set to 'interval', determines the interval for producer transaction commits by connector tasks. If unset, defaults to the value of the worker-level 'offset.flush.interval.ms' property. It has no effect if a different transaction.boundary is specified.") }, "Exactly Once Support", 4, "Transaction boundary interval"),
            g(ConfigKey { nullable: true, width: "LONG", ..ConfigKey::new("offsets.storage.topic", ConfigType::String, None, "LOW", "The name of a separate offsets topic to use for this connector. If empty or not specified, the worker\u{2019}s global offsets topic name will be used. If specified, the offsets topic will be created if it does not already exist on the Kafka cluster targeted by this connector (which may be different from the one used for the worker's global offsets topic if the bootstrap.servers property of the connector's producer has been overridden from the worker's). Only applicable in distributed mode; in standalone mode, setting this property will have no effect.") }, "offsets.topic", 1, "Offsets topic"),
        ]);
    }
    keys
}

/// Validates `config` for `plugin`: the common configs, the plugin's own,
/// converters, and the sink/source specifics. Returns the groups and the
/// per-config results in Kafka's order.
pub fn validate(plugin: &Plugin, config: &Props) -> (Vec<String>, Vec<ConfigValue>) {
    let mut def = ConfigDef {
        keys: common_keys(plugin),
    };
    // The converters a config leaves out are the worker's, all built in,
    // so their versions are known when validating.
    for k in &mut def.keys {
        if matches!(
            k.name,
            "key.converter.plugin.version"
                | "value.converter.plugin.version"
                | "header.converter.plugin.version"
        ) {
            k.default = Some(crate::KAFKA_VERSION);
        }
    }
    // Kafka's order: the runtime's configs, each transform's and
    // predicate's (ConnectorConfig.enrich), then the connector's own.
    let mut values = def.validate(config);
    let (plugin_groups, plugin_values) = crate::transform_config::validate(config);
    let reported = plugin_values.iter().any(|v| !v.errors.is_empty());
    values.extend(plugin_values);
    values.extend((plugin.config_def)().validate(config));
    for which in ["key.converter", "value.converter", "header.converter"] {
        if let Some(class) = config.get(which).filter(|c| !c.trim().is_empty()) {
            let settings = crate::config::with_prefix(config, &format!("{which}."));
            let class = class.trim();
            let made = if which == "header.converter" {
                Ok(())
            } else {
                make_converter(class, &settings, which == "key.converter").map(|_| ())
            };
            let simple = class.rsplit('.').next().unwrap_or(class);
            let loadable = crate::converter::CONVERTER_CLASSES
                .iter()
                .any(|c| *c == class || c.ends_with(&format!(".{simple}")));
            if let (Err(e), true) = (&made, loadable) {
                // A converter that exists but cannot be configured (such as
                // a registry converter without `schema.registry.url`): its
                // error on the converter setting.
                if let Some(v) = values
                    .iter_mut()
                    .find(|v| v.embedded.is_none() && v.key.name == which)
                {
                    v.errors.push(format!(
                        "Invalid value {class} for configuration {which}: {e}"
                    ));
                }
            } else if made.is_err() {
                let version = format!("{which}.plugin.version");
                for v in values.iter_mut().filter(|v| v.embedded.is_none()) {
                    // Kafka reports an unloadable class with no value, and
                    // knows no version for it.
                    if v.key.name == which {
                        v.value = None;
                        v.errors.push(format!(
                            "Invalid value {class} for configuration {which}: Class {class} could not be found."
                        ));
                    } else if v.key.name == version {
                        v.key.default = None;
                        v.value = None;
                        v.visible = false;
                    }
                }
            }
        }
    }
    let mut add_error = |name: &str, msg: String| {
        if let Some(v) = values
            .iter_mut()
            .find(|v| v.embedded.is_none() && v.key.name == name)
        {
            v.errors.push(msg);
        }
    };
    if plugin.kind == ConnectorType::Sink {
        let topics = crate::config::list(config, "topics");
        let regex = config.get("topics.regex").filter(|r| !r.trim().is_empty());
        if topics.is_empty() && regex.is_none() {
            for k in ["topics", "topics.regex"] {
                add_error(
                    k,
                    "Must configure one of topics or topics.regex".to_string(),
                );
            }
        }
        if let Some(dlq) = config.get("errors.deadletterqueue.topic.name") {
            if topics.iter().any(|t| t == dlq.trim()) {
                add_error(
                    "topics",
                    format!("The DLQ topic '{}' may not be included in the list of topics ('topics=[{}]') consumed by the connector", dlq.trim(), topics.join(", ")),
                );
            }
        }
    }
    if let Err(e) = crate::transforms::Chain::from_config(config) {
        // What the per-key checks above do not catch (a value Kafka's
        // transform itself refuses, such as a bad cast spec): reported on
        // `transforms`, as Weir has no finer place for it.
        if !reported {
            add_error("transforms", e.to_string());
        }
    }
    let mut groups: Vec<String> = [COMMON, "Transforms", "Predicates", ERRORS]
        .map(String::from)
        .to_vec();
    if plugin.kind == ConnectorType::Source {
        groups
            .extend(["Topic Creation", "Exactly Once Support", "offsets.topic"].map(String::from));
    }
    groups.extend(plugin_groups);
    (groups, values)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn class_names_and_aliases_find_plugins() {
        for name in [
            "org.apache.kafka.connect.file.FileStreamSourceConnector",
            "FileStreamSourceConnector",
            "FileStreamSource",
        ] {
            assert_eq!(find(name).unwrap().class, FILE_SOURCE.class, "{name}");
        }
        assert!(find("FileStream").is_none());
        assert!(unknown_class_message("Nope").contains("FileStreamSinkConnector"));
    }

    #[test]
    fn sink_validation_needs_topics() {
        let mut p = Props::new();
        p.insert("connector.class".into(), "FileStreamSink".into());
        p.insert("name".into(), "s".into());
        let (_, values) = validate(&FILE_SINK, &p);
        // As Kafka: reported on both `topics` and `topics.regex`.
        let errors: usize = values.iter().map(|v| v.errors.len()).sum();
        assert_eq!(errors, 2);
        p.insert("topics".into(), "a".into());
        p.insert("value.converter".into(), "com.example.Nope".into());
        let (_, values) = validate(&FILE_SINK, &p);
        let bad: Vec<_> = values.iter().filter(|v| !v.errors.is_empty()).collect();
        assert_eq!(bad.len(), 1);
        assert_eq!(bad[0].key.name, "value.converter");
    }
}
