//! Debezium's `io.debezium.transforms.ExtractNewRecordState` ("unwrap"):
//! replaces a change event's envelope (`before`, `after`, `source`, `op`,
//! ...) by the row it leaves, so sinks that want rows (the JDBC sink)
//! read CDC topics.
//!
//! As Debezium 3.6 does it: records whose value schema is not a Debezium
//! envelope pass unchanged; truncates are dropped; deletes and tombstones
//! follow `delete.tombstone.handling.mode` (`drop`, `tombstone` (the
//! default: the delete becomes a null value with the row's schema and
//! the tombstone is dropped), `rewrite`, `rewrite-with-tombstone`, `delete-to-tombstone`);
//! the rewrite modes add `__deleted` ("true"/"false"); `add.fields` and
//! `add.headers` copy envelope, `source` or `transaction` fields (with
//! their prefixes and `old:new` renames); `route.by.field` renames the
//! topic by a column. Debezium 2.x's `drop.tombstones` and
//! `delete.handling.mode` (removed in 3.x, where they are ignored) are
//! honoured when the new setting is absent, so 2.x configs keep their
//! meaning.

use std::sync::Arc;

use crate::config::list;
use crate::connector::{ConnectRecord, Header, Props};
use crate::data::{Schema, SchemaAndValue, Struct, Type, Value};
use crate::error::{ConnectError, Result};

/// The transform's class name.
pub const CLASS: &str = "io.debezium.transforms.ExtractNewRecordState";

/// The field the rewrite modes add.
const DELETED: &str = "__deleted";

/// What happens to deletes and tombstones.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Handling {
    /// Tombstones are kept.
    keep_tombstones: bool,
    /// A delete event becomes...
    delete: OnDelete,
    /// `__deleted` is added (rewrite modes).
    rewrite: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OnDelete {
    Drop,
    /// A record with `after`'s schema and a null value (3.x's
    /// `tombstone` mode keeps this beside the real tombstone).
    NullRow,
    /// The `before` row with `__deleted=true`.
    Rewrite,
    /// A record with a null value (Debezium 2.x's `none`, 3.x's
    /// `delete-to-tombstone`).
    Tombstone,
}

/// One `add.fields`/`add.headers` entry: `[struct.]field[:newName]`.
#[derive(Debug, Clone, PartialEq)]
struct FieldRef {
    /// `None`: a top-level envelope field (`op`, `ts_ms`, ...).
    parent: Option<String>,
    field: String,
    new_name: String,
}

impl FieldRef {
    fn parse(prefix: &str, spec: &str) -> Result<FieldRef> {
        let (path, rename) = match spec.split_once(':') {
            Some((p, n)) => (p, Some(n)),
            None => (spec, None),
        };
        let (parent, field) = match path.split_once('.') {
            Some((s, f)) => (Some(s.to_string()), f.to_string()),
            None => {
                // Debezium's rule for unqualified names.
                let parent = match path {
                    "op" | "ts_ms" | "ts_us" | "ts_ns" => None,
                    "id" | "total_order" | "data_collection_order" => Some("transaction"),
                    _ => Some("source"),
                };
                (parent.map(str::to_string), path.to_string())
            }
        };
        if field.is_empty() {
            return Err(ConnectError::bad_config(format!(
                "Invalid field reference {spec} in ExtractNewRecordState"
            )));
        }
        let new_name = match rename {
            Some(n) => format!("{prefix}{n}"),
            None if path.contains('.') => {
                format!("{prefix}{}_{field}", parent.as_deref().unwrap_or_default())
            }
            None => format!("{prefix}{field}"),
        };
        Ok(FieldRef {
            parent,
            field,
            new_name,
        })
    }

    /// The field's schema in the envelope, made optional; `None` when the
    /// envelope has no such field (it is then left out, as Debezium does).
    fn schema(&self, envelope: &Schema) -> Option<Schema> {
        let parent = match &self.parent {
            Some(p) => envelope.field(p)?.schema.as_ref(),
            None => envelope,
        };
        let f = parent.field(&self.field)?;
        let mut s = (*f.schema).clone();
        s.optional = true;
        s.default = None;
        Some(s)
    }

    fn value(&self, envelope: &Struct) -> Value {
        let parent = match &self.parent {
            Some(p) => match envelope.get(p) {
                Some(Value::Struct(s)) => s,
                _ => return Value::Null,
            },
            None => envelope,
        };
        parent.get(&self.field).cloned().unwrap_or(Value::Null)
    }
}

/// A configured ExtractNewRecordState.
#[derive(Debug, Clone, PartialEq)]
pub struct ExtractNewRecordState {
    handling: Handling,
    fields: Vec<FieldRef>,
    headers: Vec<FieldRef>,
    route_by_field: Option<String>,
}

fn bool_setting(p: &Props, key: &str, default: bool) -> Result<bool> {
    match p.get(key).map(|v| v.trim().to_ascii_lowercase()) {
        None => Ok(default),
        Some(v) if v == "true" => Ok(true),
        Some(v) if v == "false" => Ok(false),
        Some(v) => Err(ConnectError::bad_config(format!(
            "Invalid value {v} for configuration {key}: Expected value to be either true or false"
        ))),
    }
}

impl ExtractNewRecordState {
    /// From the transform's own settings (`transforms.<alias>.` removed).
    pub fn from_props(p: &Props) -> Result<Self> {
        let mode = p
            .get("delete.tombstone.handling.mode")
            .map(|v| v.trim().to_ascii_lowercase());
        let handling = match mode.as_deref() {
            Some(m) => match m {
                "drop" => Handling {
                    keep_tombstones: false,
                    delete: OnDelete::Drop,
                    rewrite: false,
                },
                // The delete becomes the tombstone: the original one goes.
                "tombstone" => Handling {
                    keep_tombstones: false,
                    delete: OnDelete::NullRow,
                    rewrite: false,
                },
                "rewrite" => Handling {
                    keep_tombstones: false,
                    delete: OnDelete::Rewrite,
                    rewrite: true,
                },
                "rewrite-with-tombstone" => Handling {
                    keep_tombstones: true,
                    delete: OnDelete::Rewrite,
                    rewrite: true,
                },
                "delete-to-tombstone" => Handling {
                    keep_tombstones: false,
                    delete: OnDelete::Tombstone,
                    rewrite: false,
                },
                other => {
                    return Err(ConnectError::bad_config(format!(
                        "Invalid value {other} for configuration delete.tombstone.handling.mode: The 'delete.tombstone.handling.mode' value is invalid: Value must be one of drop, tombstone, rewrite, rewrite-with-tombstone, delete-to-tombstone"
                    )))
                }
            },
            None if p.contains_key("drop.tombstones") || p.contains_key("delete.handling.mode") => {
                // Debezium 2.x's pair, with its defaults.
                let keep_tombstones = !bool_setting(p, "drop.tombstones", true)?;
                let legacy = p
                    .get("delete.handling.mode")
                    .map(|v| v.trim().to_ascii_lowercase())
                    .unwrap_or_else(|| "drop".into());
                let delete = match legacy.as_str() {
                    "drop" => OnDelete::Drop,
                    "rewrite" => OnDelete::Rewrite,
                    "none" => OnDelete::Tombstone,
                    other => {
                        return Err(ConnectError::bad_config(format!(
                            "Invalid value {other} for configuration delete.handling.mode: Value must be one of drop, rewrite, none"
                        )))
                    }
                };
                Handling {
                    keep_tombstones,
                    delete,
                    rewrite: delete == OnDelete::Rewrite,
                }
            }
            None => Handling {
                keep_tombstones: false,
                delete: OnDelete::NullRow,
                rewrite: false,
            },
        };
        let refs = |list_key: &str, prefix_key: &str| -> Result<Vec<FieldRef>> {
            let prefix = p.get(prefix_key).cloned().unwrap_or_else(|| "__".into());
            list(p, list_key)
                .iter()
                .map(|f| FieldRef::parse(&prefix, f))
                .collect()
        };
        Ok(ExtractNewRecordState {
            handling,
            fields: refs("add.fields", "add.fields.prefix")?,
            headers: refs("add.headers", "add.headers.prefix")?,
            route_by_field: p
                .get("route.by.field")
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty()),
        })
    }

    /// Applies the transform; `None` drops the record.
    pub fn apply(&self, mut r: ConnectRecord) -> Result<Option<ConnectRecord>> {
        if r.value.value.is_null() {
            return Ok(self.handling.keep_tombstones.then_some(r));
        }
        let envelope = match (&r.value.schema, &r.value.value) {
            (Some(s), Value::Struct(st))
                if s.name.as_deref().is_some_and(|n| n.ends_with("Envelope")) =>
            {
                st.clone()
            }
            // Not a change event (a heartbeat, schemaless data): unchanged.
            _ => return Ok(Some(r)),
        };
        for h in &self.headers {
            if let Some(schema) = h.schema(&envelope.schema) {
                r.headers.push(Header {
                    key: h.new_name.clone(),
                    value: SchemaAndValue {
                        schema: Some(Arc::new(schema)),
                        value: h.value(&envelope),
                    },
                });
            }
        }
        let part = |name: &str| -> Option<(Arc<Schema>, Struct)> {
            let f = envelope.schema.field(name)?;
            match &envelope.values[f.index] {
                Value::Struct(s) => Some((f.schema.clone(), s.clone())),
                _ => None,
            }
        };
        let route = |r: &mut ConnectRecord, row: &Struct| {
            if let Some(field) = &self.route_by_field {
                if let Some(Value::String(topic)) = row.get(field) {
                    r.topic = topic.clone();
                }
            }
        };
        let (row_schema, row, deleted) = match part("after") {
            Some((s, row)) => (s, row, false),
            None => match part("before") {
                // A truncate (neither before nor after): dropped.
                None => return Ok(None),
                Some((s, row)) => match self.handling.delete {
                    OnDelete::Drop => return Ok(None),
                    OnDelete::NullRow | OnDelete::Tombstone => {
                        route(&mut r, &row);
                        r.value = match self.handling.delete {
                            OnDelete::NullRow => SchemaAndValue {
                                schema: envelope.schema.field("after").map(|f| f.schema.clone()),
                                value: Value::Null,
                            },
                            _ => SchemaAndValue::null(),
                        };
                        return Ok(Some(r));
                    }
                    OnDelete::Rewrite => (s, row, true),
                },
            },
        };
        route(&mut r, &row);
        let mut fields: Vec<(String, Schema)> = row_schema
            .fields
            .iter()
            .map(|f| (f.name.clone(), (*f.schema).clone()))
            .collect();
        let mut values = row.values;
        if self.handling.rewrite {
            fields.push((DELETED.into(), Schema::of(Type::String).optional()));
            values.push(Value::String(deleted.to_string()));
        }
        for f in &self.fields {
            if let Some(schema) = f.schema(&envelope.schema) {
                fields.push((f.new_name.clone(), schema));
                values.push(f.value(&envelope));
            }
        }
        // Debezium's row schema is required whatever `after`'s was (Kafka's
        // copySchemaBasics leaves optionality out).
        let schema = if fields.len() == row_schema.fields.len() && !row_schema.optional {
            row_schema
        } else {
            let mut s = Schema::structure(fields);
            s.name = row_schema.name.clone();
            s.version = row_schema.version;
            s.doc = row_schema.doc.clone();
            s.parameters = row_schema.parameters.clone();
            Arc::new(s)
        };
        r.value = SchemaAndValue {
            schema: Some(schema.clone()),
            value: Value::Struct(Struct { schema, values }),
        };
        Ok(Some(r))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::connector::props;

    fn row_schema() -> Arc<Schema> {
        Arc::new(
            Schema::structure(vec![
                ("id".into(), Schema::of(Type::Int32)),
                ("name".into(), Schema::of(Type::String).optional()),
            ])
            .optional()
            .named("db.public.t.Value"),
        )
    }

    fn envelope(
        op: &str,
        before: Option<(i32, &str)>,
        after: Option<(i32, &str)>,
    ) -> ConnectRecord {
        let row = row_schema();
        let source = Arc::new(
            Schema::structure(vec![
                ("table".into(), Schema::of(Type::String)),
                ("lsn".into(), Schema::of(Type::Int64).optional()),
            ])
            .named("io.debezium.connector.postgresql.Source"),
        );
        let schema = Arc::new(
            Schema::structure(vec![
                ("before".into(), (*row).clone()),
                ("after".into(), (*row).clone()),
                ("source".into(), (*source).clone()),
                ("op".into(), Schema::of(Type::String)),
                ("ts_ms".into(), Schema::of(Type::Int64).optional()),
            ])
            .named("db.public.t.Envelope"),
        );
        let mk = |v: Option<(i32, &str)>| match v {
            None => Value::Null,
            Some((id, name)) => Value::Struct(Struct {
                schema: row.clone(),
                values: vec![Value::Int32(id), Value::String(name.into())],
            }),
        };
        let value = Value::Struct(Struct {
            schema: schema.clone(),
            values: vec![
                mk(before),
                mk(after),
                Value::Struct(Struct {
                    schema: source,
                    values: vec![Value::String("t".into()), Value::Int64(42)],
                }),
                Value::String(op.into()),
                Value::Int64(1000),
            ],
        });
        ConnectRecord::new(
            "db.public.t",
            SchemaAndValue {
                schema: Some(schema),
                value,
            },
        )
    }

    fn names(r: &ConnectRecord) -> Vec<String> {
        r.value
            .schema
            .as_ref()
            .unwrap()
            .fields
            .iter()
            .map(|f| f.name.clone())
            .collect()
    }

    #[test]
    fn rows_are_unwrapped_with_added_fields_and_headers() {
        let t = ExtractNewRecordState::from_props(&props(&[
            ("add.fields", "op,table,source.lsn:pos,ts_ms"),
            ("add.headers", "op"),
            ("delete.tombstone.handling.mode", "rewrite"),
        ]))
        .unwrap();
        let out = t
            .apply(envelope("u", None, Some((1, "a"))))
            .unwrap()
            .unwrap();
        assert_eq!(
            names(&out),
            [
                "id",
                "name",
                "__deleted",
                "__op",
                "__table",
                "__pos",
                "__ts_ms"
            ]
        );
        let Value::Struct(s) = &out.value.value else {
            panic!()
        };
        assert_eq!(s.get("__deleted"), Some(&Value::String("false".into())));
        assert_eq!(s.get("__op"), Some(&Value::String("u".into())));
        assert_eq!(s.get("__pos"), Some(&Value::Int64(42)));
        assert_eq!(
            out.value.schema.as_ref().unwrap().name.as_deref(),
            Some("db.public.t.Value")
        );
        assert_eq!(out.headers[0].key, "__op");

        let del = t
            .apply(envelope("d", Some((1, "a")), None))
            .unwrap()
            .unwrap();
        let Value::Struct(s) = &del.value.value else {
            panic!()
        };
        assert_eq!(s.get("__deleted"), Some(&Value::String("true".into())));
        assert_eq!(s.get("id"), Some(&Value::Int32(1)));
        // Tombstones are dropped in rewrite mode; truncates always.
        let mut tomb = envelope("d", None, None);
        tomb.value = SchemaAndValue::null();
        assert!(t.apply(tomb.clone()).unwrap().is_none());
        assert!(t.apply(envelope("t", None, None)).unwrap().is_none());
    }

    #[test]
    fn delete_modes_and_legacy_settings() {
        let mut tomb = envelope("d", None, None);
        tomb.value = SchemaAndValue::null();
        let del = envelope("d", Some((1, "a")), None);
        let run = |cfg: &[(&str, &str)]| {
            let t = ExtractNewRecordState::from_props(&props(cfg)).unwrap();
            (
                t.apply(del.clone())
                    .unwrap()
                    .map(|r| r.value.value.is_null()),
                t.apply(tomb.clone()).unwrap().is_some(),
            )
        };
        assert_eq!(run(&[]), (Some(true), false));
        assert_eq!(
            run(&[("delete.tombstone.handling.mode", "drop")]),
            (None, false)
        );
        assert_eq!(
            run(&[("delete.tombstone.handling.mode", "rewrite-with-tombstone")]),
            (Some(false), true)
        );
        assert_eq!(
            run(&[("delete.tombstone.handling.mode", "delete-to-tombstone")]),
            (Some(true), false)
        );
        assert_eq!(run(&[("drop.tombstones", "true")]), (None, false));
        assert_eq!(
            run(&[
                ("drop.tombstones", "false"),
                ("delete.handling.mode", "rewrite")
            ]),
            (Some(false), true)
        );
        assert_eq!(
            run(&[("delete.handling.mode", "none")]),
            (Some(true), false)
        );
        assert!(ExtractNewRecordState::from_props(&props(&[(
            "delete.tombstone.handling.mode",
            "nope"
        )]))
        .is_err());
    }

    #[test]
    fn non_envelopes_pass_unchanged() {
        let t = ExtractNewRecordState::from_props(&props(&[])).unwrap();
        let r = ConnectRecord::new("hb", SchemaAndValue::schemaless(Value::Int32(3)));
        assert_eq!(t.apply(r.clone()).unwrap(), Some(r));
    }
}
