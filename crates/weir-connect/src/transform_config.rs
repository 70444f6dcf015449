//! Validation of the transforms and predicates a connector config names,
//! as Kafka's `ConnectorConfig.enrich` reports them: for each alias a
//! `Transforms: <alias>` (or `Predicates: <alias>`) group holding its
//! `type` and `plugin.version`, then the plugin's own configs (and, for a
//! transform, `negate` and `predicate`) in `ConfigDef`'s order: required
//! first, then by importance, then by name.

use crate::config::{list, with_prefix, ConfigDef, ConfigKey, ConfigType, ConfigValue, Embedded};
use crate::connector::Props;
use crate::transforms::{PREDICATE_CLASSES, TRANSFORM_CLASSES};

/// One key of a transform's or predicate's own `ConfigDef`, and what its
/// validator adds when the key is missing (Kafka runs validators on null).
struct Key {
    key: ConfigKey,
    on_null: &'static [&'static str],
}

const fn key(
    name: &'static str,
    ty: ConfigType,
    default: Option<&'static str>,
    importance: &'static str,
) -> Key {
    Key {
        key: ConfigKey::new(name, ty, default, importance, ""),
        on_null: &[],
    }
}

/// A key whose default is null without being required.
const fn nullable(name: &'static str, ty: ConfigType, importance: &'static str) -> Key {
    let mut k = key(name, ty, None, importance);
    k.key.nullable = true;
    k
}

const fn on_null(mut k: Key, errors: &'static [&'static str]) -> Key {
    k.on_null = errors;
    k
}

const fn choices(mut k: Key, choices: &'static [&'static str]) -> Key {
    k.key.choices = choices;
    k
}

use ConfigType::{Boolean, Int, List, String as Str};

const REPLACE_NULL: Key = key("replace.null.with.default", Boolean, Some("true"), "MEDIUM");
const NULL_FIELDS: &[&str] = &["Configuration 'fields' values must not be null."];
const NULL_REGEX: &[&str] = &[
    "Invalid value null for configuration regex: Invalid regex: Cannot invoke \"String.isEmpty()\" because \"this.pattern\" is null",
];

/// A transform's own keys by its simple name (without `$Key`/`$Value`).
fn transform_keys(name: &str) -> Option<Vec<Key>> {
    Some(match name {
        "Cast" => vec![
            on_null(
                key("spec", List, None, "HIGH"),
                &["Must specify at least one field to cast."],
            ),
            REPLACE_NULL,
        ],
        "DropHeaders" => vec![on_null(
            key("headers", List, None, "HIGH"),
            &["Configuration 'headers' values must not be null."],
        )],
        "ExtractField" => vec![
            key("field", Str, None, "MEDIUM"),
            key("field.syntax.version", Str, Some("V1"), "HIGH"),
            REPLACE_NULL,
        ],
        "Filter" => vec![],
        "Flatten" => vec![key("delimiter", Str, Some("."), "MEDIUM")],
        "HeaderFrom" => vec![
            on_null(
                key("fields", List, None, "HIGH"),
                &["Invalid value null for configuration fields: Empty list"],
            ),
            on_null(
                key("headers", List, None, "HIGH"),
                &["Invalid value null for configuration headers: Empty list"],
            ),
            on_null(
                choices(key("operation", Str, None, "HIGH"), &["move", "copy"]),
                &["Invalid value null for configuration operation: String must be one of: move, copy"],
            ),
            REPLACE_NULL,
        ],
        "HoistField" => vec![key("field", Str, None, "MEDIUM")],
        "InsertField" => vec![
            nullable("offset.field", Str, "MEDIUM"),
            nullable("partition.field", Str, "MEDIUM"),
            REPLACE_NULL,
            nullable("static.field", Str, "MEDIUM"),
            nullable("static.value", Str, "MEDIUM"),
            nullable("timestamp.field", Str, "MEDIUM"),
            nullable("topic.field", Str, "MEDIUM"),
        ],
        "InsertHeader" => vec![
            on_null(
                key("header", Str, None, "HIGH"),
                &["Invalid value null for configuration header: entry must be non null"],
            ),
            on_null(
                key("value.literal", Str, None, "HIGH"),
                &["Invalid value null for configuration value.literal: entry must be non null"],
            ),
        ],
        "MaskField" => vec![
            on_null(key("fields", List, None, "HIGH"), NULL_FIELDS),
            REPLACE_NULL,
            nullable("replacement", Str, "LOW"),
        ],
        "RegexRouter" => vec![
            on_null(key("regex", Str, None, "HIGH"), NULL_REGEX),
            key("replacement", Str, None, "HIGH"),
        ],
        "ReplaceField" => vec![
            key("exclude", List, Some(""), "MEDIUM"),
            key("include", List, Some(""), "MEDIUM"),
            key("renames", List, Some(""), "MEDIUM"),
            REPLACE_NULL,
        ],
        "SetSchemaMetadata" => vec![
            nullable("schema.name", Str, "HIGH"),
            nullable("schema.version", Int, "HIGH"),
            REPLACE_NULL,
        ],
        "TimestampConverter" => vec![
            on_null(
                choices(
                    key("target.type", Str, None, "HIGH"),
                    &["string", "unix", "Date", "Time", "Timestamp"],
                ),
                &["Invalid value null for configuration target.type: String must be one of: string, unix, Date, Time, Timestamp"],
            ),
            key("field", Str, Some(""), "HIGH"),
            key("format", Str, Some(""), "MEDIUM"),
            choices(
                key("unix.precision", Str, Some("milliseconds"), "LOW"),
                &["nanoseconds", "microseconds", "milliseconds", "seconds"],
            ),
            REPLACE_NULL,
        ],
        "TimestampRouter" => vec![
            key("timestamp.format", Str, Some("yyyyMMdd"), "HIGH"),
            key("topic.format", Str, Some("${topic}-${timestamp}"), "HIGH"),
        ],
        "ValueToKey" => vec![
            on_null(key("fields", List, None, "HIGH"), NULL_FIELDS),
            REPLACE_NULL,
        ],
        _ => return None,
    })
}

/// A predicate's own keys by its simple name.
fn predicate_keys(name: &str) -> Option<Vec<Key>> {
    Some(match name {
        "TopicNameMatches" => vec![on_null(
            key("pattern", Str, None, "MEDIUM"),
            &["Invalid value null for configuration pattern: Invalid regex: Cannot invoke \"String.isEmpty()\" because \"this.pattern\" is null"],
        )],
        "HasHeaderKey" => vec![key("name", Str, None, "MEDIUM")],
        "RecordIsTombstone" => vec![],
        _ => return None,
    })
}

/// `ConfigDef.sortedConfigs` for keys without groups: required first,
/// then HIGH, MEDIUM, LOW, then by name.
fn sort(keys: &mut [Key]) {
    let rank = |i: &str| match i {
        "HIGH" => 0,
        "MEDIUM" => 1,
        _ => 2,
    };
    keys.sort_by(|a, b| {
        let req = |k: &Key| k.key.default.is_some() || k.key.nullable;
        (req(a), rank(a.key.importance), a.key.name).cmp(&(
            req(b),
            rank(b.key.importance),
            b.key.name,
        ))
    });
}

/// The simple name of a plugin class: after the package, without
/// `$Key`/`$Value`.
fn simple(class: &str) -> &str {
    let last = class.rsplit('.').next().unwrap_or(class);
    last.split_once('$').map_or(last, |(n, _)| n)
}

/// Validates one alias of `kind` (`transforms` or `predicates`).
fn validate_alias(config: &Props, kind: &str, alias: &str, out: &mut Vec<ConfigValue>) -> String {
    let (title, noun, classes): (&str, &str, &[&str]) = if kind == "transforms" {
        ("Transforms", "Transformation", TRANSFORM_CLASSES)
    } else {
        ("Predicates", "Predicate", PREDICATE_CLASSES)
    };
    let prefix = format!("{kind}.{alias}.");
    let group = format!("{title}: {alias}");
    let props = with_prefix(config, &prefix);
    let embedded = |display: Option<String>| Embedded {
        prefix: prefix.clone(),
        group: group.clone(),
        display,
    };
    let class = props.get("type").map(|c| c.trim().to_string());
    let known = class
        .as_deref()
        .filter(|c| classes.contains(c) || classes.iter().any(|k| k.rsplit('.').next() == Some(c)));
    let own = known.and_then(|c| {
        if kind == "transforms" {
            transform_keys(simple(c))
        } else {
            predicate_keys(simple(c))
        }
    });
    // `type` and `plugin.version` head the group, as Kafka adds them.
    let mut type_value = ConfigValue {
        key: ConfigKey {
            width: "LONG",
            order: 0,
            ..ConfigKey::new("type", ConfigType::Class, None, "HIGH", "")
        },
        value: known.map(str::to_string),
        errors: Vec::new(),
        visible: true,
        embedded: Some(embedded(Some(format!("{noun} type for {alias}")))),
    };
    match &class {
        None => type_value.errors.push(format!(
            "Missing required configuration \"{prefix}type\" which has no default value."
        )),
        Some(c) if known.is_none() => type_value.errors.push(format!(
            "Invalid value {c} for configuration {prefix}type: Class {c} could not be found."
        )),
        Some(_) => {}
    }
    out.push(type_value);
    let version = known.map(|_| crate::KAFKA_VERSION);
    out.push(ConfigValue {
        key: ConfigKey {
            width: "LONG",
            order: 1,
            nullable: true,
            ..ConfigKey::new("plugin.version", ConfigType::String, version, "HIGH", "")
        },
        value: props
            .get("plugin.version")
            .cloned()
            .or(version.map(str::to_string)),
        errors: Vec::new(),
        visible: true,
        embedded: Some(embedded(Some(format!("{noun} version for {alias}")))),
    });
    let Some(mut own) = own else {
        return group;
    };
    if kind == "transforms" {
        own.push(key("negate", Boolean, Some("false"), "MEDIUM"));
        own.push(nullable("predicate", Str, "MEDIUM"));
    }
    sort(&mut own);
    let def = ConfigDef {
        keys: own.iter().map(|k| k.key.clone()).collect(),
    };
    for (i, (mut v, k)) in def.validate(&props).into_iter().zip(&own).enumerate() {
        // ConfigDef's own errors name the key as embedded (with the
        // prefix); the plugin's validators see its own name.
        let name = k.key.name;
        for e in &mut v.errors {
            if e.starts_with("Missing required configuration")
                || e.ends_with("Expected value to be either true or false")
                || e.contains(": Not a number of type")
            {
                *e = e
                    .replacen(&format!("\"{name}\""), &format!("\"{prefix}{name}\""), 1)
                    .replacen(
                        &format!("for configuration {name}:"),
                        &format!("for configuration {prefix}{name}:"),
                        1,
                    );
            }
        }
        if v.value.is_none() && !k.key.nullable {
            v.errors.extend(k.on_null.iter().map(|e| e.to_string()));
        }
        v.key.order = 2 + i as i32;
        v.embedded = Some(embedded(None));
        out.push(v);
    }
    group
}

/// The validation results of every transform and predicate alias in
/// `config`, and their groups, in Kafka's order.
pub fn validate(config: &Props) -> (Vec<String>, Vec<ConfigValue>) {
    let mut groups = Vec::new();
    let mut values = Vec::new();
    for kind in ["transforms", "predicates"] {
        let mut seen = Vec::new();
        for alias in list(config, kind) {
            if seen.contains(&alias) {
                continue;
            }
            groups.push(validate_alias(config, kind, &alias, &mut values));
            seen.push(alias);
        }
    }
    (groups, values)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn props(kv: &[(&str, &str)]) -> Props {
        kv.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn keys_in_kafkas_order_with_its_errors() {
        let p = props(&[
            ("transforms", "a,b"),
            (
                "transforms.a.type",
                "org.apache.kafka.connect.transforms.TimestampConverter$Value",
            ),
            ("transforms.b.type", "com.example.Nope"),
        ]);
        let (groups, values) = validate(&p);
        assert_eq!(groups, ["Transforms: a", "Transforms: b"]);
        let names: Vec<String> = values.iter().map(ConfigValue::full_name).collect();
        assert_eq!(
            names,
            [
                "transforms.a.type",
                "transforms.a.plugin.version",
                "transforms.a.target.type",
                "transforms.a.field",
                "transforms.a.format",
                "transforms.a.negate",
                "transforms.a.predicate",
                "transforms.a.replace.null.with.default",
                "transforms.a.unix.precision",
                "transforms.b.type",
                "transforms.b.plugin.version",
            ]
        );
        assert_eq!(values[2].errors.len(), 2);
        assert!(values[2].errors[0].contains("\"transforms.a.target.type\""));
        assert!(values[2].errors[1].contains("for configuration target.type:"));
        assert_eq!(values[2].key.order, 2);
        assert!(values[9].errors[0].contains("Class com.example.Nope could not be found."));
        assert!(values[9].value.is_none() && values[10].key.default.is_none());
    }

    #[test]
    fn predicates_have_their_own_groups() {
        let p = props(&[
            ("transforms", "f"),
            (
                "transforms.f.type",
                "org.apache.kafka.connect.transforms.Filter",
            ),
            ("transforms.f.predicate", "p"),
            ("predicates", "p"),
            (
                "predicates.p.type",
                "org.apache.kafka.connect.transforms.predicates.HasHeaderKey",
            ),
            ("predicates.p.name", "h"),
        ]);
        let (groups, values) = validate(&p);
        assert_eq!(groups, ["Transforms: f", "Predicates: p"]);
        assert!(values.iter().all(|v| v.errors.is_empty()));
        let pred = values
            .iter()
            .find(|v| v.full_name() == "transforms.f.predicate")
            .unwrap();
        assert_eq!(pred.value.as_deref(), Some("p"));
    }
}
