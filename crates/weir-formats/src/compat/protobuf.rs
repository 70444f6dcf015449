//! Protobuf schemas: `.proto` text or a base64 `FileDescriptorProto`
//! (which confluent-kafka's Python serializer registers), compiled by
//! `protox` and `prost-reflect` through weir-formats and lowered into one
//! model; and Confluent's compatibility rules over it (removed messages
//! and enums, changed field kinds or named types, required fields, fields
//! moved into oneofs).

use std::collections::{BTreeMap, HashMap, HashSet};

use crate::prost_reflect::{Cardinality, EnumDescriptor, Kind as ReflectKind, MessageDescriptor};
use crate::protobuf::{is_descriptor, ProtobufSchema};
use crate::{FormatError, ResolvedReference, SchemaType};

/// A field's label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Label {
    /// Singular (proto3 implicit or `optional`).
    Optional,
    /// proto2 `required`.
    Required,
    /// `repeated`.
    Repeated,
}

/// A field's type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// A scalar (`int32`, `string`, ...).
    Scalar(String),
    /// A message or enum by full name (leading dot).
    Named(String),
    /// `map<key, value>`.
    Map(Box<Kind>, Box<Kind>),
}

/// A field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldDef {
    /// Name.
    pub name: String,
    /// Label.
    pub label: Label,
    /// Type.
    pub kind: Kind,
    /// The oneof holding it.
    pub oneof: Option<String>,
}

/// A parsed file.
#[derive(Debug, Clone, Default)]
pub struct File {
    /// Package.
    pub package: String,
    /// Messages by full name (leading dot), fields by number.
    pub messages: BTreeMap<String, BTreeMap<i32, FieldDef>>,
    /// Enums by full name, values by number.
    pub enums: BTreeMap<String, BTreeMap<i32, String>>,
}

/// Compiles a schema: `.proto` text, or a base64 `FileDescriptorProto`.
/// `deps` are referenced files (import path to schema); well-known types
/// (`google/protobuf/*.proto`) resolve without one.
pub fn parse(text: &str, deps: &HashMap<String, String>) -> Result<File, String> {
    let refs: Vec<ResolvedReference> = deps
        .iter()
        .map(|(name, schema)| ResolvedReference {
            name: name.clone(),
            schema_type: SchemaType::Protobuf,
            schema: schema.clone(),
        })
        .collect();
    let compiled = ProtobufSchema::parse_with_references(text, &refs).map_err(|e| match e {
        FormatError::InvalidSchema { reason, .. } => reason,
        other => other.to_string(),
    })?;
    let root = compiled.file().clone();
    if root.messages().len() == 0 && root.enums().len() == 0 && root.package_name().is_empty() {
        return Err("no message, enum or package".into());
    }
    let mut file = File {
        package: root.package_name().to_string(),
        ..File::default()
    };
    // Types of referenced files are part of what is compared, so a change
    // behind a reference is seen by the compatibility check.
    for f in compiled
        .pool()
        .files()
        .filter(|f| *f == root || deps.contains_key(f.name()))
    {
        for m in f.messages() {
            lower_message(&m, &mut file);
        }
        for e in f.enums() {
            lower_enum(&e, &mut file);
        }
    }
    Ok(file)
}

fn lower_kind(k: &ReflectKind) -> Kind {
    match k {
        ReflectKind::Message(m) => Kind::Named(format!(".{}", m.full_name())),
        ReflectKind::Enum(e) => Kind::Named(format!(".{}", e.full_name())),
        ReflectKind::Double => Kind::Scalar("double".into()),
        ReflectKind::Float => Kind::Scalar("float".into()),
        ReflectKind::Int32 => Kind::Scalar("int32".into()),
        ReflectKind::Int64 => Kind::Scalar("int64".into()),
        ReflectKind::Uint32 => Kind::Scalar("uint32".into()),
        ReflectKind::Uint64 => Kind::Scalar("uint64".into()),
        ReflectKind::Sint32 => Kind::Scalar("sint32".into()),
        ReflectKind::Sint64 => Kind::Scalar("sint64".into()),
        ReflectKind::Fixed32 => Kind::Scalar("fixed32".into()),
        ReflectKind::Fixed64 => Kind::Scalar("fixed64".into()),
        ReflectKind::Sfixed32 => Kind::Scalar("sfixed32".into()),
        ReflectKind::Sfixed64 => Kind::Scalar("sfixed64".into()),
        ReflectKind::Bool => Kind::Scalar("bool".into()),
        ReflectKind::String => Kind::Scalar("string".into()),
        ReflectKind::Bytes => Kind::Scalar("bytes".into()),
    }
}

/// A message, its nested messages and enums into the model; map entries
/// become `Kind::Map` on the field that uses them.
fn lower_message(m: &MessageDescriptor, file: &mut File) {
    if m.is_map_entry() {
        return;
    }
    let mut fields = BTreeMap::new();
    for f in m.fields() {
        let kind = match f.kind() {
            ReflectKind::Message(entry) if f.is_map() => Kind::Map(
                Box::new(lower_kind(&entry.map_entry_key_field().kind())),
                Box::new(lower_kind(&entry.map_entry_value_field().kind())),
            ),
            k => lower_kind(&k),
        };
        let label = match f.cardinality() {
            Cardinality::Required => Label::Required,
            Cardinality::Repeated => Label::Repeated,
            Cardinality::Optional => Label::Optional,
        };
        fields.insert(
            i32::try_from(f.number()).unwrap_or(i32::MAX),
            FieldDef {
                name: f.name().to_string(),
                label,
                kind,
                oneof: f
                    .containing_oneof()
                    .filter(|o| !o.is_synthetic())
                    .map(|o| o.name().to_string()),
            },
        );
    }
    file.messages.insert(format!(".{}", m.full_name()), fields);
    for child in m.child_messages() {
        lower_message(&child, file);
    }
    for e in m.child_enums() {
        lower_enum(&e, file);
    }
}

fn lower_enum(e: &EnumDescriptor, file: &mut File) {
    file.enums.insert(
        format!(".{}", e.full_name()),
        e.values()
            .map(|v| (v.number(), v.name().to_string()))
            .collect(),
    );
}

/// The normalized form: tokens joined by single spaces, comments dropped.
pub fn normalize(text: &str) -> Result<String, String> {
    if is_descriptor(text) {
        return Ok(text.trim().to_string());
    }
    let toks = text::tokens(text)?;
    Ok(toks
        .iter()
        .map(|t| match t {
            text::Tok::Str(s) => format!("\"{s}\""),
            text::Tok::Word(w) => w.clone(),
            text::Tok::Sym(c) => c.to_string(),
        })
        .collect::<Vec<_>>()
        .join(" "))
}

fn group(s: &str) -> u8 {
    match s {
        "int32" | "uint32" | "int64" | "uint64" | "bool" => 1,
        "sint32" | "sint64" => 2,
        "fixed32" | "sfixed32" => 3,
        "fixed64" | "sfixed64" => 4,
        "string" | "bytes" => 5,
        "float" => 6,
        _ => 7,
    }
}

fn kind_issue(r: &Kind, w: &Kind) -> Option<&'static str> {
    match (r, w) {
        (Kind::Scalar(a), Kind::Scalar(b)) if a == b || group(a) == group(b) => None,
        (Kind::Scalar(_), Kind::Scalar(_)) => Some("FIELD_SCALAR_KIND_CHANGED"),
        (Kind::Named(a), Kind::Named(b)) if a == b => None,
        (Kind::Named(_), Kind::Named(_)) => Some("FIELD_NAMED_TYPE_CHANGED"),
        (Kind::Map(rk, rv), Kind::Map(wk, wv)) => kind_issue(rk, wk).or_else(|| kind_issue(rv, wv)),
        _ => Some("FIELD_KIND_CHANGED"),
    }
}

/// Why the reader cannot read the writer's data (Confluent's differences
/// between the writer as original and the reader as update).
pub fn incompatibilities(reader: &File, writer: &File) -> Vec<String> {
    let mut out = Vec::new();
    let mut push = |kind: &str, what: String| {
        out.push(format!("{{errorType:'{kind}', description:'{what}'}}"));
    };
    if reader.package != writer.package {
        push(
            "PACKAGE_CHANGED",
            format!("package {} became {}", writer.package, reader.package),
        );
    }
    for (name, wf) in &writer.messages {
        let Some(rf) = reader.messages.get(name) else {
            push("MESSAGE_REMOVED", format!("message {name} removed"));
            continue;
        };
        let writer_oneofs: HashSet<&String> =
            wf.values().filter_map(|f| f.oneof.as_ref()).collect();
        let mut moved: HashMap<&String, usize> = HashMap::new();
        for (n, w) in wf {
            match rf.get(n) {
                None if w.label == Label::Required => push(
                    "REQUIRED_FIELD_REMOVED",
                    format!("required field {}.{} removed", name, w.name),
                ),
                None if w.oneof.is_some() => push(
                    "ONEOF_FIELD_REMOVED",
                    format!("oneof field {}.{} removed", name, w.name),
                ),
                None => {}
                Some(r) => {
                    if let Some(kind) = kind_issue(&r.kind, &w.kind) {
                        push(
                            kind,
                            format!("field {}.{} (number {n}) changed type", name, w.name),
                        );
                    }
                    if (r.label == Label::Repeated) != (w.label == Label::Repeated) {
                        push(
                            "FIELD_KIND_CHANGED",
                            format!(
                                "field {}.{} changed between repeated and singular",
                                name, w.name
                            ),
                        );
                    }
                    if (r.label == Label::Required) != (w.label == Label::Required) {
                        push(
                            "REQUIRED_FIELD_CHANGED",
                            format!("field {}.{} changed required", name, w.name),
                        );
                    }
                    if let (None, Some(o)) = (&w.oneof, &r.oneof) {
                        if writer_oneofs.contains(o) {
                            push(
                                "FIELD_MOVED_TO_EXISTING_ONEOF",
                                format!("field {}.{} moved into oneof {o}", name, w.name),
                            );
                        } else {
                            *moved.entry(o).or_default() += 1;
                        }
                    }
                }
            }
        }
        for (o, count) in moved {
            if count > 1 {
                push(
                    "MULTIPLE_FIELDS_MOVED_TO_ONEOF",
                    format!("several fields of {name} moved into oneof {o}"),
                );
            }
        }
        for (n, r) in rf {
            if !wf.contains_key(n) && r.label == Label::Required {
                push(
                    "REQUIRED_FIELD_ADDED",
                    format!("required field {}.{} added", name, r.name),
                );
            }
        }
    }
    for name in writer.enums.keys() {
        if !reader.enums.contains_key(name) {
            push("ENUM_REMOVED", format!("enum {name} removed"));
        }
    }
    out
}

mod text {
    //! The tokens of `.proto` text, for the normalized form only (parsing
    //! is protox's).

    #[derive(Debug, Clone, PartialEq)]
    pub enum Tok {
        Word(String),
        Str(String),
        Sym(char),
    }

    pub fn tokens(src: &str) -> Result<Vec<Tok>, String> {
        let mut out = Vec::new();
        let cs: Vec<char> = src.chars().collect();
        let mut i = 0;
        while i < cs.len() {
            let c = cs[i];
            if c.is_whitespace() {
                i += 1;
            } else if c == '/' && cs.get(i + 1) == Some(&'/') {
                while i < cs.len() && cs[i] != '\n' {
                    i += 1;
                }
            } else if c == '/' && cs.get(i + 1) == Some(&'*') {
                i += 2;
                while i + 1 < cs.len() && !(cs[i] == '*' && cs[i + 1] == '/') {
                    i += 1;
                }
                i += 2;
            } else if c == '"' || c == '\'' {
                let mut s = String::new();
                i += 1;
                while i < cs.len() && cs[i] != c {
                    if cs[i] == '\\' && i + 1 < cs.len() {
                        s.push(cs[i]);
                        i += 1;
                    }
                    s.push(cs[i]);
                    i += 1;
                }
                if i >= cs.len() {
                    return Err("unterminated string".into());
                }
                i += 1;
                out.push(Tok::Str(s));
            } else if c.is_ascii_alphanumeric() || c == '_' || c == '.' || c == '-' || c == '+' {
                let mut s = String::new();
                while i < cs.len()
                    && (cs[i].is_ascii_alphanumeric() || matches!(cs[i], '_' | '.' | '-' | '+'))
                {
                    s.push(cs[i]);
                    i += 1;
                }
                out.push(Tok::Word(s));
            } else {
                out.push(Tok::Sym(c));
                i += 1;
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;

    fn p(s: &str) -> File {
        parse(s, &HashMap::new()).unwrap_or_else(|e| panic!("{e}: {s}"))
    }

    fn ok(reader: &str, writer: &str) -> bool {
        incompatibilities(&p(reader), &p(writer)).is_empty()
    }

    const V1: &str = r#"
        syntax = "proto3";
        package weir.test;
        import "google/protobuf/timestamp.proto";
        // A comment.
        message Order {
          int32 id = 1;
          string item = 2 [deprecated = true];
          Kind kind = 3;
          map<string, int64> tags = 4;
          google.protobuf.Timestamp at = 5;
          enum Kind { KIND_UNSPECIFIED = 0; BIG = 1; }
          oneof pay { string card = 6; string cash = 7; }
        }
    "#;

    #[test]
    fn parses_text() {
        let f = p(V1);
        let order = &f.messages[".weir.test.Order"];
        assert_eq!(order[&3].kind, Kind::Named(".weir.test.Order.Kind".into()));
        assert_eq!(
            order[&5].kind,
            Kind::Named(".google.protobuf.Timestamp".into())
        );
        assert!(matches!(order[&4].kind, Kind::Map(_, _)));
        assert_eq!(order[&6].oneof.as_deref(), Some("pay"));
        assert!(f.enums.contains_key(".weir.test.Order.Kind"));
        for bad in [
            "message {",
            "message M { int32 a = 0; }",
            "message M { int32 a = 1; int32 b = 1; }",
            "nonsense",
        ] {
            assert!(parse(bad, &HashMap::new()).is_err(), "{bad}");
        }
    }

    #[test]
    fn compatibility_rules() {
        let add = V1.replace("int32 id = 1;", "int32 id = 1; string note = 8;");
        assert!(ok(&add, V1) && ok(V1, &add));
        let removed = V1.replace("string item = 2 [deprecated = true];", "");
        assert!(ok(&removed, V1));
        let widened = V1.replace("int32 id = 1;", "int64 id = 1;");
        assert!(ok(&widened, V1));
        let changed = V1.replace("int32 id = 1;", "string id = 1;");
        assert!(!ok(&changed, V1));
        let renamed = V1.replace("int32 id = 1;", "int32 ident = 1;");
        assert!(ok(&renamed, V1));
        let no_msg = "syntax = \"proto3\"; package weir.test; message Other { int32 a = 1; }";
        assert!(!ok(no_msg, V1));
        let into_oneof = V1
            .replace(
                "oneof pay { string card = 6; string cash = 7; }",
                "oneof pay { string card = 6; string cash = 7; int32 id2 = 1; }",
            )
            .replace("int32 id = 1;", "");
        assert!(!ok(&into_oneof, V1));
    }

    #[test]
    fn bad_input_is_an_error_not_a_crash() {
        let deep = format!("{}{}", "message M { ".repeat(100_000), "}".repeat(100_000));
        assert!(parse(&deep, &HashMap::new()).is_err());
        let oneofs = format!("message M {{ {} }}", "oneof o { ".repeat(1000));
        assert!(parse(&oneofs, &HashMap::new()).is_err());
        // Nested DescriptorProtos, each the only field of its parent.
        let mut b: Vec<u8> = vec![0x0a, 1, b'M'];
        for _ in 0..200 {
            let mut outer = vec![0x0a, 1, b'M', 0x1a];
            let mut len = b.len();
            while len >= 0x80 {
                outer.push(u8::try_from(len & 0x7f).unwrap() | 0x80);
                len >>= 7;
            }
            outer.push(u8::try_from(len).unwrap());
            outer.extend_from_slice(&b);
            b = outer;
        }
        let mut file = vec![0x0a, 1, b'f', 0x22];
        let mut len = b.len();
        while len >= 0x80 {
            file.push(u8::try_from(len & 0x7f).unwrap() | 0x80);
            len >>= 7;
        }
        file.push(u8::try_from(len).unwrap());
        file.extend_from_slice(&b);
        let b64 = base64::engine::general_purpose::STANDARD.encode(&file);
        assert!(parse(&b64, &HashMap::new()).is_err());
        for junk in [
            "",
            "{",
            "}",
            "message M { map<int32 x = 1; }",
            "enum E { A = x; }",
            "\"open",
        ] {
            assert!(parse(junk, &HashMap::new()).is_err(), "{junk}");
        }
    }

    #[test]
    fn reads_descriptors() {
        // FileDescriptorProto{name:"a.proto", package:"p",
        //   message_type:[{name:"M", field:[{name:"x", number:1, label:1, type:5}]}]}
        let bytes: Vec<u8> = vec![
            0x0a, 7, b'a', b'.', b'p', b'r', b'o', b't', b'o', 0x12, 1, b'p', 0x22, 14, 0x0a, 1,
            b'M', 0x12, 9, 0x0a, 1, b'x', 0x18, 1, 0x20, 1, 0x28, 5,
        ];
        let b64 = base64::engine::general_purpose::STANDARD.encode(&bytes);
        let f = p(&b64);
        assert_eq!(f.messages[".p.M"][&1].kind, Kind::Scalar("int32".into()));
        let text = p("syntax = \"proto3\"; package p; message M { int32 x = 1; }");
        assert!(incompatibilities(&f, &text).is_empty());
        assert!(parse("AAAA", &HashMap::new()).is_err());
    }
}
