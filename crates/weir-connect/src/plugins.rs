//! The connector plugins this runtime has, found by the class names users
//! already have in their configs, and connector config validation (the
//! runtime's common configs plus the plugin's own).

use crate::config::{ConfigDef, ConfigKey, ConfigType, ConfigValue};
use crate::connector::{ConnectorType, Plugin, Props};
use crate::converter::make_converter;
use crate::file::{FILE_SINK, FILE_SOURCE};

/// Every connector plugin, in the order `/connector-plugins` lists them.
pub const PLUGINS: &[Plugin] = &[FILE_SINK, FILE_SOURCE];

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

fn common(kind: ConnectorType) -> Vec<ConfigKey> {
    let g = |mut k: ConfigKey, group: &'static str, order: i32, display: &'static str| {
        k.group = Some(group);
        k.order = order;
        k.display = display;
        k
    };
    let mut keys = vec![
        g(ConfigKey { width: "MEDIUM", ..ConfigKey::new("name", ConfigType::String, None, "HIGH", "Globally unique name to use for this connector.") }, COMMON, 1, "Connector name"),
        g(ConfigKey { width: "LONG", ..ConfigKey::new("connector.class", ConfigType::String, None, "HIGH", "Name or alias of the class for this connector. Must be a subclass of org.apache.kafka.connect.connector.Connector.") }, COMMON, 2, "Connector class"),
        g(ConfigKey { width: "SHORT", min: Some(1), ..ConfigKey::new("tasks.max", ConfigType::Int, Some("1"), "HIGH", "Maximum number of tasks to use for this connector.") }, COMMON, 3, "Tasks max"),
        g(ConfigKey { width: "SHORT", ..ConfigKey::new("key.converter", ConfigType::Class, Some(""), "LOW", "Converter class used to convert between Kafka Connect format and the serialized form that is written to Kafka.") }, COMMON, 5, "Key converter class"),
        g(ConfigKey { width: "SHORT", ..ConfigKey::new("value.converter", ConfigType::Class, Some(""), "LOW", "Converter class used to convert between Kafka Connect format and the serialized form that is written to Kafka.") }, COMMON, 6, "Value converter class"),
        g(ConfigKey { width: "MEDIUM", ..ConfigKey::new("errors.retry.timeout", ConfigType::Long, Some("0"), "MEDIUM", "The maximum duration in milliseconds that a failed operation will be reattempted.") }, ERRORS, 1, "Retry Timeout for Errors"),
        g(ConfigKey { width: "MEDIUM", ..ConfigKey::new("errors.retry.delay.max.ms", ConfigType::Long, Some("60000"), "MEDIUM", "The maximum duration in milliseconds between consecutive retry attempts.") }, ERRORS, 2, "Maximum Delay Between Retries for Errors"),
        g(ConfigKey { width: "SHORT", choices: &["none", "all"], ..ConfigKey::new("errors.tolerance", ConfigType::String, Some("none"), "MEDIUM", "Behavior for tolerating errors during connector operation. 'none' is the default value and signals that any error will result in an immediate connector task failure; 'all' changes the behavior to skip over problematic records.") }, ERRORS, 3, "Error Tolerance"),
        g(ConfigKey { width: "SHORT", ..ConfigKey::new("errors.log.enable", ConfigType::Boolean, Some("false"), "MEDIUM", "If true, write each error and the details of the failed operation and problematic record to the Connect application log.") }, ERRORS, 4, "Log Errors"),
        g(ConfigKey { width: "SHORT", ..ConfigKey::new("errors.log.include.messages", ConfigType::Boolean, Some("false"), "MEDIUM", "Whether to include in the log the Connect record that resulted in a failure.") }, ERRORS, 5, "Log Error Details"),
    ];
    if kind == ConnectorType::Sink {
        keys.push(g(
            ConfigKey {
                width: "LONG",
                ..ConfigKey::new(
                    "topics",
                    ConfigType::List,
                    Some(""),
                    "HIGH",
                    "List of topics to consume, separated by commas",
                )
            },
            COMMON,
            4,
            "Topics",
        ));
        keys.push(g(ConfigKey { width: "MEDIUM", ..ConfigKey::new("errors.deadletterqueue.topic.name", ConfigType::String, Some(""), "MEDIUM", "The name of the topic to be used as the dead letter queue (DLQ) for messages that result in an error when processed by this sink connector, or its transformations or converters.") }, ERRORS, 6, "Dead Letter Queue Topic Name"));
        keys.push(g(ConfigKey { width: "MEDIUM", ..ConfigKey::new("errors.deadletterqueue.topic.replication.factor", ConfigType::Short, Some("3"), "MEDIUM", "Replication factor used to create the dead letter queue topic when it doesn't already exist.") }, ERRORS, 7, "Dead Letter Queue Topic Replication Factor"));
        keys.push(g(ConfigKey { width: "MEDIUM", ..ConfigKey::new("errors.deadletterqueue.context.headers.enable", ConfigType::Boolean, Some("false"), "MEDIUM", "If true, add headers containing error context to the messages written to the dead letter queue.") }, ERRORS, 8, "Enable Error Context Headers"));
    } else {
        keys.push(g(ConfigKey { width: "SHORT", choices: &["requested", "required"], ..ConfigKey::new("exactly.once.support", ConfigType::String, Some("requested"), "MEDIUM", "Permitted values are requested, required. If set to \"required\", forces a preflight check for the connector to ensure that it can provide exactly-once semantics with the given configuration.") }, "Exactly Once Support", 1, "Exactly once support"));
    }
    keys
}

/// Validates `config` for `plugin`: the common configs, the plugin's own,
/// converters, and the sink/source specifics. Returns the groups and the
/// per-config results in Kafka's order.
pub fn validate(plugin: &Plugin, config: &Props) -> (Vec<&'static str>, Vec<ConfigValue>) {
    let mut def = ConfigDef {
        keys: common(plugin.kind),
    };
    let own = (plugin.config_def)();
    def.keys.extend(own.keys);
    let mut values = def.validate(config);
    let mut add_error = |name: &str, msg: String| {
        if let Some(v) = values.iter_mut().find(|v| v.key.name == name) {
            v.errors.push(msg);
        }
    };
    for which in ["key.converter", "value.converter"] {
        if let Some(class) = config.get(which).filter(|c| !c.trim().is_empty()) {
            let settings = crate::config::with_prefix(config, &format!("{which}."));
            if let Err(e) = make_converter(class.trim(), &settings, which == "key.converter") {
                add_error(which, e.to_string());
            }
        }
    }
    if plugin.kind == ConnectorType::Sink {
        let topics = crate::config::list(config, "topics");
        let regex = config.get("topics.regex").filter(|r| !r.trim().is_empty());
        if topics.is_empty() && regex.is_none() {
            add_error(
                "topics",
                "Must configure one of topics or topics.regex".to_string(),
            );
        }
        if let Some(dlq) = config.get("errors.deadletterqueue.topic.name") {
            if topics.iter().any(|t| t == dlq.trim()) {
                add_error(
                    "errors.deadletterqueue.topic.name",
                    format!("The DLQ topic '{}' may not be included in the list of topics ('topics=[{}]') consumed by the connector", dlq.trim(), topics.join(", ")),
                );
            }
        }
    }
    if let Err(e) = crate::transforms::Chain::from_config(config) {
        add_error("name", e.to_string());
    }
    let mut groups = vec![COMMON, "Transforms", "Predicates", ERRORS];
    if plugin.kind == ConnectorType::Source {
        groups.extend(["Topic Creation", "Exactly Once Support", "offsets.topic"]);
    }
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
        let errors: usize = values.iter().map(|v| v.errors.len()).sum();
        assert_eq!(errors, 1);
        p.insert("topics".into(), "a".into());
        p.insert("value.converter".into(), "com.example.Nope".into());
        let (_, values) = validate(&FILE_SINK, &p);
        let bad: Vec<_> = values.iter().filter(|v| !v.errors.is_empty()).collect();
        assert_eq!(bad.len(), 1);
        assert_eq!(bad[0].key.name, "value.converter");
    }
}
