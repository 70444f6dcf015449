//! The registry's state and its records in the `_schemas` topic, in
//! Confluent Schema Registry's formats, so the state is the topic replayed:
//!
//! - key `{"keytype":"SCHEMA","subject":S,"version":V,"magic":1}`, value
//!   `{"subject","version","id","schemaType"?,"references"?,"schema","deleted"}`
//!   (a null value: the version was permanently deleted);
//! - key `{"keytype":"CONFIG","subject":S|null,"magic":0}`, value
//!   `{"compatibilityLevel":L}`;
//! - key `{"keytype":"MODE","subject":S|null,"magic":0}`, value `{"mode":M}`;
//! - `DELETE_SUBJECT`, `CLEAR_SUBJECT` and `NOOP` keys written by
//!   Confluent's registry are understood when read back.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::schema::{Level, Reference, SchemaType};

/// The internal topic.
pub const SCHEMAS_TOPIC: &str = "_schemas";

/// A registry mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Normal operation.
    ReadWrite,
    /// No registrations or deletions.
    ReadOnly,
    /// Registrations keep the ids and versions they give (migration).
    Import,
}

impl Mode {
    /// From the REST name.
    pub fn from_name(s: &str) -> Option<Self> {
        match s.to_ascii_uppercase().as_str() {
            "READWRITE" => Some(Self::ReadWrite),
            "READONLY" | "READONLY_OVERRIDE" => Some(Self::ReadOnly),
            "IMPORT" => Some(Self::Import),
            _ => None,
        }
    }

    /// The REST name.
    pub fn name(self) -> &'static str {
        match self {
            Self::ReadWrite => "READWRITE",
            Self::ReadOnly => "READONLY",
            Self::Import => "IMPORT",
        }
    }
}

/// One version of a subject: the value of a SCHEMA record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SchemaValue {
    /// Subject.
    pub subject: String,
    /// Version within the subject.
    pub version: i32,
    /// Global schema id.
    pub id: i32,
    /// Type (absent for AVRO).
    #[serde(
        rename = "schemaType",
        default,
        skip_serializing_if = "SchemaType::is_avro"
    )]
    pub schema_type: SchemaType,
    /// References (absent when none).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub references: Vec<Reference>,
    /// The schema text, in canonical form.
    pub schema: String,
    /// Soft-deleted.
    #[serde(default)]
    pub deleted: bool,
}

/// The registry's state, rebuilt from `_schemas` at start.
#[derive(Debug, Default)]
pub struct State {
    /// Versions by subject, then version.
    pub subjects: BTreeMap<String, BTreeMap<i32, SchemaValue>>,
    /// Global compatibility (None: BACKWARD).
    pub global_level: Option<Level>,
    /// Subject-level compatibility.
    pub subject_level: BTreeMap<String, Level>,
    /// Global mode (None: READWRITE).
    pub global_mode: Option<Mode>,
    /// Subject-level modes.
    pub subject_mode: BTreeMap<String, Mode>,
    /// The largest id ever seen, so ids are never reused.
    pub max_id: i32,
}

fn json_str(s: &str) -> String {
    Value::String(s.to_string()).to_string()
}

/// The key of a SCHEMA record, byte for byte as Confluent writes it.
pub fn schema_key(subject: &str, version: i32) -> String {
    format!(
        r#"{{"keytype":"SCHEMA","subject":{},"version":{version},"magic":1}}"#,
        json_str(subject)
    )
}

/// The key of a CONFIG record (`None`: global).
pub fn config_key(subject: Option<&str>) -> String {
    format!(
        r#"{{"keytype":"CONFIG","subject":{},"magic":0}}"#,
        subject.map_or("null".to_string(), json_str)
    )
}

/// The key of a MODE record (`None`: global).
pub fn mode_key(subject: Option<&str>) -> String {
    format!(
        r#"{{"keytype":"MODE","subject":{},"magic":0}}"#,
        subject.map_or("null".to_string(), json_str)
    )
}

/// A CONFIG record value.
pub fn config_value(level: Level) -> String {
    serde_json::json!({ "compatibilityLevel": level.name() }).to_string()
}

/// A MODE record value.
pub fn mode_value(mode: Mode) -> String {
    serde_json::json!({ "mode": mode.name() }).to_string()
}

impl State {
    /// Applies one record of `_schemas`; records that are not understood
    /// are skipped (and logged), so a newer writer cannot stop a reader.
    pub fn apply(&mut self, key: &[u8], value: Option<&[u8]>) {
        let Ok(k) = serde_json::from_slice::<Value>(key) else {
            tracing::warn!("skipping a _schemas record with an undecodable key");
            return;
        };
        let subject = k.get("subject").and_then(Value::as_str).map(str::to_string);
        let value: Option<Value> = value.and_then(|v| serde_json::from_slice(v).ok());
        match k.get("keytype").and_then(Value::as_str) {
            Some("SCHEMA") => {
                let (Some(subject), Some(version)) = (
                    subject,
                    k.get("version")
                        .and_then(Value::as_i64)
                        .and_then(|v| i32::try_from(v).ok()),
                ) else {
                    return;
                };
                match value.and_then(|v| serde_json::from_value::<SchemaValue>(v).ok()) {
                    Some(sv) => {
                        self.max_id = self.max_id.max(sv.id);
                        self.subjects
                            .entry(subject)
                            .or_default()
                            .insert(version, sv);
                    }
                    None => {
                        if let Some(vs) = self.subjects.get_mut(&subject) {
                            vs.remove(&version);
                            if vs.is_empty() {
                                self.subjects.remove(&subject);
                            }
                        }
                    }
                }
            }
            Some("CONFIG") => {
                let level = value
                    .as_ref()
                    .and_then(|v| v.get("compatibilityLevel"))
                    .and_then(Value::as_str)
                    .and_then(Level::from_name);
                match (subject, level) {
                    (None, l) => self.global_level = l,
                    (Some(s), Some(l)) => {
                        self.subject_level.insert(s, l);
                    }
                    (Some(s), None) => {
                        self.subject_level.remove(&s);
                    }
                }
            }
            Some("MODE") => {
                let mode = value
                    .as_ref()
                    .and_then(|v| v.get("mode"))
                    .and_then(Value::as_str)
                    .and_then(Mode::from_name);
                match (subject, mode) {
                    (None, m) => self.global_mode = m,
                    (Some(s), Some(m)) => {
                        self.subject_mode.insert(s, m);
                    }
                    (Some(s), None) => {
                        self.subject_mode.remove(&s);
                    }
                }
            }
            Some("DELETE_SUBJECT") => {
                let upto = value
                    .as_ref()
                    .and_then(|v| v.get("version"))
                    .and_then(Value::as_i64)
                    .unwrap_or(i64::MAX);
                if let Some(vs) = subject.and_then(|s| self.subjects.get_mut(&s)) {
                    for (v, sv) in vs.iter_mut() {
                        if i64::from(*v) <= upto {
                            sv.deleted = true;
                        }
                    }
                }
            }
            Some("CLEAR_SUBJECT") => {
                if let Some(s) = subject {
                    if let Some(vs) = self.subjects.get_mut(&s) {
                        vs.retain(|_, sv| !sv.deleted);
                        if vs.is_empty() {
                            self.subjects.remove(&s);
                        }
                    }
                }
            }
            _ => {}
        }
    }

    /// The compatibility level that applies to `subject`.
    pub fn level(&self, subject: &str) -> Level {
        self.subject_level
            .get(subject)
            .copied()
            .or(self.global_level)
            .unwrap_or(Level::Backward)
    }

    /// The mode that applies to `subject`.
    pub fn mode(&self, subject: &str) -> Mode {
        self.subject_mode
            .get(subject)
            .copied()
            .or(self.global_mode)
            .unwrap_or(Mode::ReadWrite)
    }

    /// The live (not soft-deleted) versions of `subject`, oldest first.
    pub fn live(&self, subject: &str) -> Vec<&SchemaValue> {
        self.subjects
            .get(subject)
            .map(|vs| vs.values().filter(|v| !v.deleted).collect())
            .unwrap_or_default()
    }

    /// Any version holding schema `id`.
    pub fn by_id(&self, id: i32) -> Option<&SchemaValue> {
        self.subjects
            .values()
            .flat_map(|vs| vs.values())
            .find(|v| v.id == id)
    }

    /// The id already given to this content, if any.
    pub fn id_of(&self, ty: SchemaType, schema: &str, refs: &[Reference]) -> Option<i32> {
        self.subjects
            .values()
            .flat_map(|vs| vs.values())
            .find(|v| {
                v.schema_type == ty
                    && v.references == refs
                    && crate::schema::same_text(ty, &v.schema, schema)
            })
            .map(|v| v.id)
    }

    /// Live versions that reference `subject` `version`: their ids.
    pub fn referenced_by(&self, subject: &str, version: i32) -> Vec<i32> {
        let mut ids: Vec<i32> = self
            .subjects
            .values()
            .flat_map(|vs| vs.values())
            .filter(|v| !v.deleted)
            .filter(|v| {
                v.references
                    .iter()
                    .any(|r| r.subject == subject && r.version == version)
            })
            .map(|v| v.id)
            .collect();
        ids.sort_unstable();
        ids.dedup();
        ids
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_match_confluent_bytes() {
        assert_eq!(
            schema_key("t-value", 3),
            r#"{"keytype":"SCHEMA","subject":"t-value","version":3,"magic":1}"#
        );
        assert_eq!(
            config_key(None),
            r#"{"keytype":"CONFIG","subject":null,"magic":0}"#
        );
        assert_eq!(
            mode_key(Some("a\"b")),
            r#"{"keytype":"MODE","subject":"a\"b","magic":0}"#
        );
    }

    #[test]
    fn replay() {
        let mut s = State::default();
        let v = |id: i32, deleted: bool| SchemaValue {
            subject: "s".into(),
            version: 1,
            id,
            schema_type: SchemaType::Avro,
            references: vec![],
            schema: "\"int\"".into(),
            deleted,
        };
        let val = serde_json::to_vec(&v(7, false)).unwrap();
        assert!(!String::from_utf8_lossy(&val).contains("schemaType"));
        s.apply(schema_key("s", 1).as_bytes(), Some(&val));
        assert_eq!(s.live("s").len(), 1);
        assert_eq!(s.max_id, 7);
        s.apply(
            schema_key("s", 1).as_bytes(),
            Some(&serde_json::to_vec(&v(7, true)).unwrap()),
        );
        assert!(s.live("s").is_empty());
        s.apply(schema_key("s", 1).as_bytes(), None);
        assert!(s.subjects.is_empty());
        assert_eq!(s.max_id, 7);
        s.apply(
            config_key(None).as_bytes(),
            Some(config_value(Level::Full).as_bytes()),
        );
        assert_eq!(s.level("x"), Level::Full);
        s.apply(
            config_key(Some("x")).as_bytes(),
            Some(config_value(Level::None).as_bytes()),
        );
        assert_eq!(s.level("x"), Level::None);
        s.apply(config_key(Some("x")).as_bytes(), None);
        assert_eq!(s.level("x"), Level::Full);
        s.apply(
            mode_key(None).as_bytes(),
            Some(mode_value(Mode::ReadOnly).as_bytes()),
        );
        assert_eq!(s.mode("x"), Mode::ReadOnly);
        // Garbage is skipped.
        s.apply(b"not json", Some(b"x"));
        s.apply(br#"{"keytype":"SCHEMA"}"#, None);
    }
}
