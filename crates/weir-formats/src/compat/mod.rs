//! The schema registry's compatibility rules, shared by the registry and
//! by the serializers' `latest.compatibility.strict` check: schema types,
//! compatibility levels, and the per-type dispatch of parsing, canonical
//! forms and compatibility checks.

pub mod avro;
pub mod json_schema;
pub mod protobuf;

use std::collections::HashMap;

pub use crate::{Reference, ResolvedReference as Resolved, SchemaType};

/// A compatibility level.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// No checks.
    None,
    /// The new schema reads data of the latest.
    Backward,
    /// ... of every version.
    BackwardTransitive,
    /// The latest reads data of the new schema.
    Forward,
    /// Every version reads data of the new schema.
    ForwardTransitive,
    /// Backward and forward against the latest.
    Full,
    /// Backward and forward against every version.
    FullTransitive,
}

impl Level {
    /// From the REST name, case-insensitively.
    pub fn from_name(s: &str) -> Option<Self> {
        Some(match s.to_ascii_uppercase().as_str() {
            "NONE" => Self::None,
            "BACKWARD" => Self::Backward,
            "BACKWARD_TRANSITIVE" => Self::BackwardTransitive,
            "FORWARD" => Self::Forward,
            "FORWARD_TRANSITIVE" => Self::ForwardTransitive,
            "FULL" => Self::Full,
            "FULL_TRANSITIVE" => Self::FullTransitive,
            _ => return None,
        })
    }

    /// The REST name.
    pub fn name(self) -> &'static str {
        match self {
            Self::None => "NONE",
            Self::Backward => "BACKWARD",
            Self::BackwardTransitive => "BACKWARD_TRANSITIVE",
            Self::Forward => "FORWARD",
            Self::ForwardTransitive => "FORWARD_TRANSITIVE",
            Self::Full => "FULL",
            Self::FullTransitive => "FULL_TRANSITIVE",
        }
    }

    fn transitive(self) -> bool {
        matches!(
            self,
            Self::BackwardTransitive | Self::ForwardTransitive | Self::FullTransitive
        )
    }

    fn backward(self) -> bool {
        matches!(
            self,
            Self::Backward | Self::BackwardTransitive | Self::Full | Self::FullTransitive
        )
    }

    fn forward(self) -> bool {
        matches!(
            self,
            Self::Forward | Self::ForwardTransitive | Self::Full | Self::FullTransitive
        )
    }
}

/// A parsed schema.
#[derive(Debug, Clone)]
pub enum Parsed {
    /// Avro.
    Avro(avro::Schema),
    /// JSON Schema.
    Json(json_schema::Doc),
    /// Protobuf.
    Protobuf(protobuf::File),
}

/// Parses `text` of type `ty`; `deps` are its references, transitively,
/// dependencies first.
pub fn parse(ty: SchemaType, text: &str, deps: &[Resolved]) -> Result<Parsed, String> {
    match ty {
        SchemaType::Avro => {
            let mut seen: Vec<avro::Schema> = Vec::new();
            for d in deps.iter().filter(|d| d.schema_type == SchemaType::Avro) {
                let s = avro::parse(&d.schema, &seen)
                    .map_err(|e| format!("reference {}: {e}", d.name))?;
                seen.push(s);
            }
            avro::parse(text, &seen).map(Parsed::Avro)
        }
        SchemaType::Json => {
            let root = json_schema::parse(text)?;
            let mut refs = HashMap::new();
            for d in deps {
                refs.insert(d.name.clone(), json_schema::parse(&d.schema)?);
            }
            // Every `$ref` must resolve, within the document or to a
            // reference, as Confluent requires.
            crate::json_schema::JsonSchema::parse_with_references(text, deps)
                .map_err(|e| e.to_string())?;
            Ok(Parsed::Json(json_schema::Doc { root, refs }))
        }
        SchemaType::Protobuf => {
            let mut files = HashMap::new();
            for d in deps {
                files.insert(d.name.clone(), d.schema.clone());
            }
            protobuf::parse(text, &files).map(Parsed::Protobuf)
        }
    }
}

/// The form a schema is stored and compared in. Without `normalize` it is
/// the document as registered without insignificant whitespace (JSON
/// types; keys keep their order, as Confluent returns them) or as given
/// (Protobuf); with it, semantically equal spellings become one string.
pub fn canonical(ty: SchemaType, text: &str, normalize: bool) -> Result<String, String> {
    match ty {
        SchemaType::Avro if normalize => avro::normalize(text),
        SchemaType::Json if normalize => sorted_json(text),
        SchemaType::Avro | SchemaType::Json => {
            serde_json::from_str::<serde::de::IgnoredAny>(text)
                .map_err(|e| format!("not JSON: {e}"))?;
            Ok(minify_json(text))
        }
        SchemaType::Protobuf if normalize => protobuf::normalize(text),
        SchemaType::Protobuf => Ok(text.to_string()),
    }
}

/// A JSON document with its keys sorted and no insignificant whitespace.
fn sorted_json(text: &str) -> Result<String, String> {
    let v: serde_json::Value = serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
    Ok(v.to_string())
}

/// Valid JSON without the whitespace between tokens (strings untouched).
fn minify_json(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let (mut in_string, mut escaped) = (false, false);
    for c in text.chars() {
        if in_string {
            out.push(c);
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_string = false;
            }
        } else if c == '"' {
            in_string = true;
            out.push(c);
        } else if !c.is_ascii_whitespace() {
            out.push(c);
        }
    }
    out
}

/// Whether two stored texts are one schema for sharing an id: equal, or
/// (JSON types) equal up to whitespace and key order.
pub fn same_text(ty: SchemaType, a: &str, b: &str) -> bool {
    a == b
        || (ty != SchemaType::Protobuf
            && sorted_json(a).is_ok_and(|x| sorted_json(b).is_ok_and(|y| x == y)))
}

fn incompatibilities(reader: &Parsed, writer: &Parsed) -> Vec<String> {
    match (reader, writer) {
        (Parsed::Avro(r), Parsed::Avro(w)) => avro::incompatibilities(r, w),
        (Parsed::Json(r), Parsed::Json(w)) => json_schema::incompatibilities(r, w),
        (Parsed::Protobuf(r), Parsed::Protobuf(w)) => protobuf::incompatibilities(r, w),
        _ => vec!["{errorType:'TYPE_MISMATCH', description:'the schema type changed'}".into()],
    }
}

/// Checks `new` against `previous` (oldest first) at `level`; the reasons
/// it is incompatible, empty when it is compatible.
pub fn check(level: Level, new: &Parsed, previous: &[Parsed]) -> Vec<String> {
    let olds: &[Parsed] = if level.transitive() {
        previous
    } else {
        match previous.last() {
            Some(_) => &previous[previous.len() - 1..],
            None => &[],
        }
    };
    let mut out = Vec::new();
    for old in olds.iter().rev() {
        if level.backward() {
            out.extend(incompatibilities(new, old));
        }
        if level.forward() {
            out.extend(incompatibilities(old, new));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const AVRO_V1: &str = r#"{"type":"record","name":"R","fields":[{"name":"a","type":"int"}]}"#;
    const AVRO_V2: &str = r#"{"type":"record","name":"R","fields":[{"name":"a","type":"int"},{"name":"b","type":"int"}]}"#;
    const AVRO_V3: &str = r#"{"type":"record","name":"R","fields":[{"name":"a","type":"long"}]}"#;

    fn avro(s: &str) -> Parsed {
        parse(SchemaType::Avro, s, &[]).unwrap()
    }

    #[test]
    fn levels_pick_direction_and_history() {
        let (v1, v2, v3) = (avro(AVRO_V1), avro(AVRO_V2), avro(AVRO_V3));
        // v2 adds a field without default: old data lacks it.
        assert!(!check(Level::Backward, &v2, std::slice::from_ref(&v1)).is_empty());
        assert!(check(Level::Forward, &v2, std::slice::from_ref(&v1)).is_empty());
        assert!(!check(Level::Full, &v2, std::slice::from_ref(&v1)).is_empty());
        assert!(check(Level::None, &v2, std::slice::from_ref(&v1)).is_empty());
        // v3 (a: long) reads v1's data, not the reverse; against history
        // [v1, v3] only the transitive level sees v1.
        assert!(check(Level::Backward, &v3, std::slice::from_ref(&v1)).is_empty());
        assert!(!check(Level::Forward, &v3, std::slice::from_ref(&v1)).is_empty());
        assert!(check(Level::Forward, &v3, &[v1.clone(), v3.clone()]).is_empty());
        assert!(!check(Level::ForwardTransitive, &v3, &[v1.clone(), v3.clone()]).is_empty());
        assert!(!check(Level::FullTransitive, &v3, &[v1.clone(), v3.clone()]).is_empty());
        assert!(check(Level::BackwardTransitive, &v1, &[]).is_empty());
        for name in ["NONE", "backward", "Full_Transitive"] {
            let l = Level::from_name(name).unwrap();
            assert!(l.name().eq_ignore_ascii_case(name));
        }
        assert!(Level::from_name("SIDEWAYS").is_none());
    }

    #[test]
    fn canonical_forms() {
        let spaced = "{ \"type\" : \"record\", \"name\":\"R\", \"fields\":[{\"name\":\"a\",\"type\":\"int\"}] }";
        assert_eq!(
            canonical(SchemaType::Avro, spaced, false).unwrap(),
            canonical(SchemaType::Avro, AVRO_V1, false).unwrap()
        );
        assert_ne!(
            canonical(SchemaType::Avro, AVRO_V1, false).unwrap(),
            canonical(SchemaType::Avro, AVRO_V2, false).unwrap()
        );
        // Keys keep the order they were registered in; strings keep their
        // spaces; key order still does not split an id.
        let ordered =
            "{ \"type\": \"record\", \"name\": \"R\", \"doc\": \"a b\",\n \"fields\": [] }";
        let stored = canonical(SchemaType::Avro, ordered, false).unwrap();
        assert_eq!(
            stored,
            r#"{"type":"record","name":"R","doc":"a b","fields":[]}"#
        );
        let other = r#"{"fields":[],"doc":"a b","name":"R","type":"record"}"#;
        assert!(same_text(SchemaType::Avro, &stored, other));
        assert!(!same_text(SchemaType::Avro, &stored, AVRO_V1));
        assert_eq!(
            canonical(SchemaType::Json, r#"{"b":1, "a":"\" x"}"#, false).unwrap(),
            r#"{"b":1,"a":"\" x"}"#
        );
        let p1 = "syntax = \"proto3\";\nmessage M {\n  int32 a = 1; // c\n}";
        let p2 = "syntax = \"proto3\"; message M { int32 a = 1; }";
        assert_eq!(
            canonical(SchemaType::Protobuf, p1, true).unwrap(),
            canonical(SchemaType::Protobuf, p2, true).unwrap()
        );
        assert_ne!(
            canonical(SchemaType::Protobuf, p1, false).unwrap(),
            canonical(SchemaType::Protobuf, p2, false).unwrap()
        );
    }

    proptest! {
        #[test]
        fn parsers_never_panic(s in "[\\[\\]{}\",:a-z0-9 .=;<>\\n\"]{0,200}") {
            for ty in [SchemaType::Avro, SchemaType::Json, SchemaType::Protobuf] {
                if let Ok(p) = parse(ty, &s, &[]) {
                    let _ = check(Level::FullTransitive, &p, std::slice::from_ref(&p));
                }
                let _ = canonical(ty, &s, true);
            }
        }
    }
}
