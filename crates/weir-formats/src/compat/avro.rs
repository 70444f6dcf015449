//! Avro schemas: parsed by `apache-avro` (through weir-formats, with named
//! types from references) and lowered to the model the compatibility check
//! of the Avro specification's schema resolution rules works on; the
//! normalized form.

use std::collections::{HashMap, HashSet};

use crate::apache_avro::schema::{Alias, Namespace};
use crate::apache_avro::Schema as AvroNode;
use crate::avro::AvroSchema;
use crate::{FormatError, ResolvedReference, SchemaType};
use serde_json::Value;

/// A type position in a schema.
#[derive(Debug, Clone, PartialEq)]
pub enum Node {
    /// A primitive type (`null`, `int`, ...).
    Prim(&'static str),
    /// `array` of items.
    Array(Box<Node>),
    /// `map` of values.
    Map(Box<Node>),
    /// A union of branches.
    Union(Vec<Node>),
    /// A named type (record, enum, fixed) by full name.
    Named(String),
}

/// A named type's definition.
#[derive(Debug, Clone, PartialEq)]
pub enum Named {
    /// A record (or error).
    Record {
        /// Full name.
        name: String,
        /// Full-name aliases.
        aliases: Vec<String>,
        /// Fields in order.
        fields: Vec<Field>,
    },
    /// An enum.
    Enum {
        /// Full name.
        name: String,
        /// Full-name aliases.
        aliases: Vec<String>,
        /// Symbols in order.
        symbols: Vec<String>,
        /// The symbol readers use for unknown writer symbols.
        default: Option<String>,
    },
    /// A fixed.
    Fixed {
        /// Full name.
        name: String,
        /// Full-name aliases.
        aliases: Vec<String>,
        /// Size in bytes.
        size: u64,
    },
}

/// A record field.
#[derive(Debug, Clone, PartialEq)]
pub struct Field {
    /// Name.
    pub name: String,
    /// Aliases (bare names).
    pub aliases: Vec<String>,
    /// Type.
    pub ty: Node,
    /// Default value, if any.
    pub default: Option<Value>,
}

/// A parsed schema: its root and every named type it can see.
#[derive(Debug, Clone, Default)]
pub struct Schema {
    /// The root type.
    pub root: Option<Node>,
    /// Named types by full name, including those of references.
    pub named: HashMap<String, Named>,
    /// The schema's text, for schemas that reference it.
    pub text: String,
}

const PRIMS: &[&str] = &[
    "null", "boolean", "int", "long", "float", "double", "bytes", "string",
];

fn prim(s: &str) -> Option<&'static str> {
    PRIMS.iter().find(|p| **p == s).copied()
}

fn full_name(name: &str, namespace: Option<&str>) -> String {
    if name.contains('.') {
        return name.to_string();
    }
    match namespace {
        Some(ns) if !ns.is_empty() => format!("{ns}.{name}"),
        _ => name.to_string(),
    }
}

fn namespace_of(full: &str) -> Option<&str> {
    full.rsplit_once('.').map(|(ns, _)| ns)
}

fn short(full: &str) -> &str {
    full.rsplit_once('.').map_or(full, |(_, n)| n)
}

/// Parses `text` with `apache-avro`, seeing the named types of `refs`
/// (already parsed referenced schemas, in dependency order), and lowers
/// it to the model the compatibility check works on.
pub fn parse(text: &str, refs: &[Schema]) -> Result<Schema, String> {
    let deps: Vec<ResolvedReference> = refs
        .iter()
        .map(|r| ResolvedReference {
            name: String::new(),
            schema_type: SchemaType::Avro,
            schema: r.text.clone(),
        })
        .collect();
    let parsed = AvroSchema::parse_with_references(text, &deps).map_err(|e| match e {
        FormatError::InvalidSchema { reason, .. } => reason,
        other => other.to_string(),
    })?;
    let mut named = HashMap::new();
    for r in parsed.referenced() {
        lower(r, &mut named)?;
    }
    let root = lower(parsed.root(), &mut named)?;
    // The specification wants a union's default to match its first
    // branch; apache-avro accepts any branch.
    for n in named.values() {
        if let Named::Record { fields, name, .. } = n {
            for f in fields {
                if let Some(d) = &f.default {
                    if !valid_default(&f.ty, d, &named) {
                        return Err(format!(
                            "invalid default for field {} of {name}: {d}",
                            f.name
                        ));
                    }
                }
            }
        }
    }
    Ok(Schema {
        root: Some(root),
        named,
        text: text.to_string(),
    })
}

fn qualified_aliases(aliases: Option<&Vec<Alias>>, ns: &Namespace) -> Vec<String> {
    aliases
        .map(|a| {
            a.iter()
                .map(|al| al.fully_qualified_name(ns).fullname(None))
                .collect()
        })
        .unwrap_or_default()
}

/// `apache-avro`'s schema as the checker's nodes; named types defined on
/// the way are added to `named`. Logical types are their underlying types.
fn lower(s: &AvroNode, named: &mut HashMap<String, Named>) -> Result<Node, String> {
    Ok(match s {
        AvroNode::Null => Node::Prim("null"),
        AvroNode::Boolean => Node::Prim("boolean"),
        AvroNode::Int | AvroNode::Date | AvroNode::TimeMillis => Node::Prim("int"),
        AvroNode::Long
        | AvroNode::TimeMicros
        | AvroNode::TimestampMillis
        | AvroNode::TimestampMicros
        | AvroNode::TimestampNanos
        | AvroNode::LocalTimestampMillis
        | AvroNode::LocalTimestampMicros
        | AvroNode::LocalTimestampNanos => Node::Prim("long"),
        AvroNode::Float => Node::Prim("float"),
        AvroNode::Double => Node::Prim("double"),
        AvroNode::Bytes | AvroNode::BigDecimal | AvroNode::Duration => Node::Prim("bytes"),
        AvroNode::String | AvroNode::Uuid => Node::Prim("string"),
        AvroNode::Decimal(d) => lower(&d.inner, named)?,
        AvroNode::Array(a) => Node::Array(Box::new(lower(&a.items, named)?)),
        AvroNode::Map(m) => Node::Map(Box::new(lower(&m.types, named)?)),
        AvroNode::Union(u) => Node::Union(
            u.variants()
                .iter()
                .map(|b| lower(b, named))
                .collect::<Result<_, _>>()?,
        ),
        AvroNode::Ref { name } => Node::Named(name.fullname(None)),
        AvroNode::Record(r) => {
            let full = r.name.fullname(None);
            if prim(short(&full)).is_some() {
                return Err(format!("{full} redefines a primitive type"));
            }
            let aliases = qualified_aliases(r.aliases.as_ref(), &r.name.namespace);
            // Registered before its fields so they may refer to it.
            named.insert(
                full.clone(),
                Named::Record {
                    name: full.clone(),
                    aliases: aliases.clone(),
                    fields: Vec::new(),
                },
            );
            let mut fields = Vec::with_capacity(r.fields.len());
            for f in &r.fields {
                fields.push(Field {
                    name: f.name.clone(),
                    aliases: f.aliases.clone().unwrap_or_default(),
                    ty: lower(&f.schema, named)?,
                    default: f.default.clone(),
                });
            }
            named.insert(
                full.clone(),
                Named::Record {
                    name: full.clone(),
                    aliases,
                    fields,
                },
            );
            Node::Named(full)
        }
        AvroNode::Enum(e) => {
            let full = e.name.fullname(None);
            named.insert(
                full.clone(),
                Named::Enum {
                    name: full.clone(),
                    aliases: qualified_aliases(e.aliases.as_ref(), &e.name.namespace),
                    symbols: e.symbols.clone(),
                    default: e.default.clone(),
                },
            );
            Node::Named(full)
        }
        AvroNode::Fixed(f) => {
            let full = f.name.fullname(None);
            named.insert(
                full.clone(),
                Named::Fixed {
                    name: full.clone(),
                    aliases: qualified_aliases(f.aliases.as_ref(), &f.name.namespace),
                    size: u64::try_from(f.size).unwrap_or(u64::MAX),
                },
            );
            Node::Named(full)
        }
    })
}

/// Whether `d` is a valid default for `ty` (a union's default matches its
/// first branch, as the specification says).
fn valid_default(ty: &Node, d: &Value, named: &HashMap<String, Named>) -> bool {
    match ty {
        Node::Prim(p) => match *p {
            "null" => d.is_null(),
            "boolean" => d.is_boolean(),
            "int" => d.as_i64().is_some_and(|n| i32::try_from(n).is_ok()),
            "long" => d.is_i64() || d.is_u64(),
            "float" | "double" => d.is_number(),
            _ => d.is_string(),
        },
        Node::Array(items) => d
            .as_array()
            .is_some_and(|a| a.iter().all(|v| valid_default(items, v, named))),
        Node::Map(values) => d
            .as_object()
            .is_some_and(|m| m.values().all(|v| valid_default(values, v, named))),
        Node::Union(b) => b.first().is_some_and(|f| valid_default(f, d, named)),
        Node::Named(n) => match named.get(n) {
            Some(Named::Enum { symbols, .. }) => {
                d.as_str().is_some_and(|s| symbols.iter().any(|x| x == s))
            }
            Some(Named::Fixed { .. }) => d.is_string(),
            Some(Named::Record { fields, .. }) => d.as_object().is_some_and(|o| {
                fields.iter().all(|f| match o.get(&f.name) {
                    Some(v) => valid_default(&f.ty, v, named),
                    None => f.default.is_some(),
                })
            }),
            // The record being defined: checked once it is complete.
            None => true,
        },
    }
}

/// The normalized form: full names everywhere, no `namespace` or `doc`,
/// bare primitive names, sorted keys, no whitespace.
pub fn normalize(text: &str) -> Result<String, String> {
    let json: Value = serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
    let mut defined = HashSet::new();
    Ok(norm(&json, None, &mut defined).to_string())
}

fn norm(v: &Value, ns: Option<&str>, defined: &mut HashSet<String>) -> Value {
    match v {
        Value::String(s) if prim(s).is_none() => Value::String(full_name(s, ns)),
        Value::Array(a) => Value::Array(a.iter().map(|b| norm(b, ns, defined)).collect()),
        Value::Object(o) => {
            let ty = o.get("type").and_then(Value::as_str).unwrap_or("");
            if o.len() == 1 && prim(ty).is_some() {
                return Value::String(ty.to_string());
            }
            let mut out = serde_json::Map::new();
            let mut inner_ns = ns.map(str::to_string);
            if matches!(ty, "record" | "error" | "enum" | "fixed") {
                if let Some(name) = o.get("name").and_then(Value::as_str) {
                    let own = o.get("namespace").and_then(Value::as_str).or(ns);
                    let full = full_name(name, own);
                    inner_ns = namespace_of(&full).map(str::to_string);
                    defined.insert(full.clone());
                    out.insert("name".into(), Value::String(full));
                }
            }
            for (k, val) in o {
                match k.as_str() {
                    "name" if out.contains_key("name") => {}
                    "namespace" | "doc" => {}
                    "type" | "items" | "values" => {
                        out.insert(k.clone(), norm(val, inner_ns.as_deref(), defined));
                    }
                    "fields" => {
                        let fields = val
                            .as_array()
                            .map(|fs| {
                                fs.iter()
                                    .map(|f| match f.as_object() {
                                        Some(fo) => {
                                            let mut m = serde_json::Map::new();
                                            for (fk, fv) in fo {
                                                match fk.as_str() {
                                                    "doc" => {}
                                                    "type" => {
                                                        m.insert(
                                                            fk.clone(),
                                                            norm(fv, inner_ns.as_deref(), defined),
                                                        );
                                                    }
                                                    _ => {
                                                        m.insert(fk.clone(), fv.clone());
                                                    }
                                                }
                                            }
                                            Value::Object(m)
                                        }
                                        None => f.clone(),
                                    })
                                    .collect()
                            })
                            .unwrap_or_default();
                        out.insert(k.clone(), Value::Array(fields));
                    }
                    _ => {
                        out.insert(k.clone(), val.clone());
                    }
                }
            }
            Value::Object(out)
        }
        other => other.clone(),
    }
}

/// Why the reader (new or old, per the level) cannot read the writer's
/// data: empty when it can.
pub fn incompatibilities(reader: &Schema, writer: &Schema) -> Vec<String> {
    let mut out = Vec::new();
    if let (Some(r), Some(w)) = (&reader.root, &writer.root) {
        let mut c = Checker {
            reader,
            writer,
            seen: HashSet::new(),
        };
        c.check(r, w, "/", &mut out);
    }
    out
}

struct Checker<'a> {
    reader: &'a Schema,
    writer: &'a Schema,
    /// Named pairs assumed compatible while being checked (recursion).
    seen: HashSet<(String, String)>,
}

fn msg(kind: &str, path: &str, desc: String) -> String {
    format!("{{errorType:'{kind}', description:'{desc}', additionalInfo:'at path {path}'}}")
}

fn type_name(n: &Node) -> String {
    match n {
        Node::Prim(p) => (*p).to_string(),
        Node::Array(_) => "array".into(),
        Node::Map(_) => "map".into(),
        Node::Union(_) => "union".into(),
        Node::Named(f) => f.clone(),
    }
}

fn promotes(reader: &str, writer: &str) -> bool {
    reader == writer
        || matches!(
            (reader, writer),
            ("long", "int")
                | ("float", "int" | "long")
                | ("double", "int" | "long" | "float")
                | ("string", "bytes")
                | ("bytes", "string")
        )
}

impl Checker<'_> {
    fn readable(&mut self, r: &Node, w: &Node, path: &str) -> bool {
        let mut scratch = Vec::new();
        self.check(r, w, path, &mut scratch);
        scratch.is_empty()
    }

    fn check(&mut self, r: &Node, w: &Node, path: &str, out: &mut Vec<String>) {
        if let Node::Union(wb) = w {
            // Every branch the writer may have written must be readable.
            for (i, b) in wb.iter().enumerate() {
                self.check(r, b, &format!("{path}{i}/"), out);
            }
            return;
        }
        if let Node::Union(rb) = r {
            let found = rb.iter().any(|b| self.readable(b, w, path));
            if !found {
                out.push(msg(
                    "MISSING_UNION_BRANCH",
                    path,
                    format!(
                        "The new schema is missing a type inside a union field at path '{path}' in the old schema: {}",
                        type_name(w)
                    ),
                ));
            }
            return;
        }
        match (r, w) {
            (Node::Prim(a), Node::Prim(b)) => {
                if !promotes(a, b) {
                    out.push(msg(
                        "TYPE_MISMATCH",
                        path,
                        format!("The type (path '{path}') of a field in the new schema does not match with the old schema: reader type {a} cannot read writer type {b}"),
                    ));
                }
            }
            (Node::Array(a), Node::Array(b)) => self.check(a, b, &format!("{path}items/"), out),
            (Node::Map(a), Node::Map(b)) => self.check(a, b, &format!("{path}values/"), out),
            (Node::Named(a), Node::Named(b)) => self.check_named(a, b, path, out),
            _ => out.push(msg(
                "TYPE_MISMATCH",
                path,
                format!(
                    "The type (path '{path}') of a field in the new schema does not match with the old schema: reader type {} cannot read writer type {}",
                    type_name(r),
                    type_name(w)
                ),
            )),
        }
    }

    fn check_named(&mut self, a: &str, b: &str, path: &str, out: &mut Vec<String>) {
        // A pair already being checked further up is assumed compatible,
        // which ends the recursion of recursive types.
        let pair = (a.to_string(), b.to_string());
        if !self.seen.insert(pair.clone()) {
            return;
        }
        self.check_named_inner(a, b, path, out);
        self.seen.remove(&pair);
    }

    fn check_named_inner(&mut self, a: &str, b: &str, path: &str, out: &mut Vec<String>) {
        let (Some(rd), Some(wd)) = (self.reader.named.get(a), self.writer.named.get(b)) else {
            out.push(msg(
                "TYPE_MISMATCH",
                path,
                format!("unknown named type {a} or {b}"),
            ));
            return;
        };
        let (rname, raliases) = match rd {
            Named::Record { name, aliases, .. }
            | Named::Enum { name, aliases, .. }
            | Named::Fixed { name, aliases, .. } => (name, aliases),
        };
        let wname = match wd {
            Named::Record { name, .. } | Named::Enum { name, .. } | Named::Fixed { name, .. } => {
                name
            }
        };
        // Names match unqualified (as Avro's SchemaCompatibility does), or
        // through the reader's aliases.
        let name_ok = short(rname) == short(wname)
            || raliases
                .iter()
                .any(|al| al == wname || short(al) == short(wname));
        if !name_ok {
            out.push(msg(
                "NAME_MISMATCH",
                path,
                format!("The name of the schema has changed (path '{path}'): reader {rname}, writer {wname}"),
            ));
            return;
        }
        match (rd, wd) {
            (Named::Record { fields: rf, .. }, Named::Record { fields: wf, .. }) => {
                let rf = rf.clone();
                let wf = wf.clone();
                for (i, f) in rf.iter().enumerate() {
                    let fpath = format!("{path}fields/{i}/");
                    let matching = wf.iter().find(|x| x.name == f.name).or_else(|| {
                        wf.iter().find(|x| f.aliases.contains(&x.name))
                    });
                    match matching {
                        Some(x) => self.check(&f.ty, &x.ty, &format!("{fpath}type/"), out),
                        None if f.default.is_none() => out.push(msg(
                            "READER_FIELD_MISSING_DEFAULT_VALUE",
                            &fpath,
                            format!("The field '{}' at path '{fpath}' in the new schema has no default value and is missing in the old schema", f.name),
                        )),
                        None => {}
                    }
                }
            }
            (
                Named::Enum {
                    symbols: rs,
                    default,
                    ..
                },
                Named::Enum { symbols: ws, .. },
            ) => {
                let missing: Vec<&String> = ws.iter().filter(|s| !rs.contains(s)).collect();
                if !missing.is_empty() && default.is_none() {
                    out.push(msg(
                        "MISSING_ENUM_SYMBOLS",
                        path,
                        format!("The new schema is missing enum symbols '{missing:?}' at path '{path}' in the old schema"),
                    ));
                }
            }
            (Named::Fixed { size: rs, .. }, Named::Fixed { size: ws, .. }) => {
                if rs != ws {
                    out.push(msg(
                        "FIXED_SIZE_MISMATCH",
                        path,
                        format!("The size of FIXED type field at path '{path}' in the new schema ({rs}) does not match with the old schema ({ws})"),
                    ));
                }
            }
            _ => out.push(msg(
                "TYPE_MISMATCH",
                path,
                format!("The type (path '{path}') of a field in the new schema does not match with the old schema: {rname} cannot read {wname}"),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Schema {
        parse(s, &[]).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    fn rec(fields: &str) -> String {
        format!(r#"{{"type":"record","name":"R","namespace":"ns","fields":[{fields}]}}"#)
    }

    fn can_read(reader: &str, writer: &str) -> bool {
        incompatibilities(&p(reader), &p(writer)).is_empty()
    }

    #[test]
    fn parses_and_rejects() {
        p(r#""int""#);
        p(&rec(
            r#"{"name":"a","type":"int"},{"name":"b","type":["null","R"],"default":null}"#,
        ));
        for bad in [
            r#""nope""#,
            r#"{"type":"record","name":"1x","fields":[]}"#,
            r#"{"type":"record","name":"R"}"#,
            r#"{"type":"enum","name":"E","symbols":["A","A"]}"#,
            r#"{"type":"fixed","name":"F"}"#,
            r#"["int","int"]"#,
            &rec(r#"{"name":"a","type":"int","default":"x"}"#),
            &rec(r#"{"name":"a","type":["null","int"],"default":1}"#),
            &rec(r#"{"name":"a","type":"int"},{"name":"a","type":"long"}"#),
            "{",
        ] {
            assert!(parse(bad, &[]).is_err(), "{bad} should be rejected");
        }
    }

    #[test]
    fn field_addition_and_removal() {
        let v1 = rec(r#"{"name":"a","type":"int"}"#);
        let with_default =
            rec(r#"{"name":"a","type":"int"},{"name":"b","type":"string","default":"x"}"#);
        let without_default = rec(r#"{"name":"a","type":"int"},{"name":"b","type":"string"}"#);
        // New reader with a defaulted new field reads old data.
        assert!(can_read(&with_default, &v1));
        assert!(!can_read(&without_default, &v1));
        // Old reader ignores the writer's extra field.
        assert!(can_read(&v1, &without_default));
        // Removing a field without default: old readers can't read new data.
        let empty = rec("");
        assert!(can_read(&empty, &v1));
        assert!(!can_read(&v1, &empty));
    }

    #[test]
    fn promotions() {
        let ok = [
            ("long", "int"),
            ("float", "int"),
            ("float", "long"),
            ("double", "int"),
            ("double", "long"),
            ("double", "float"),
            ("string", "bytes"),
            ("bytes", "string"),
        ];
        for (r, w) in ok {
            assert!(
                can_read(&format!("\"{r}\""), &format!("\"{w}\"")),
                "{r} reads {w}"
            );
        }
        for (w, r) in ok
            .iter()
            .filter(|(a, b)| !matches!((*a, *b), ("string", "bytes") | ("bytes", "string")))
        {
            assert!(
                !can_read(&format!("\"{r}\""), &format!("\"{w}\"")),
                "{r} must not read {w}"
            );
        }
        assert!(!can_read(r#""int""#, r#""string""#));
    }

    #[test]
    fn aliases_rename() {
        let v1 = rec(r#"{"name":"old","type":"int"}"#);
        let renamed = rec(r#"{"name":"new","type":"int","aliases":["old"]}"#);
        let no_alias = rec(r#"{"name":"new","type":"int"}"#);
        assert!(can_read(&renamed, &v1));
        assert!(!can_read(&no_alias, &v1));
        let other = r#"{"type":"record","name":"S","namespace":"ns","aliases":["ns.R"],"fields":[{"name":"old","type":"int"}]}"#;
        assert!(can_read(other, &v1));
        let other_no_alias =
            r#"{"type":"record","name":"S","fields":[{"name":"old","type":"int"}]}"#;
        assert!(!can_read(other_no_alias, &v1));
    }

    #[test]
    fn enums() {
        let e = |syms: &str, default: &str| {
            format!(r#"{{"type":"enum","name":"E","symbols":[{syms}]{default}}}"#)
        };
        let ab = e(r#""A","B""#, "");
        let abc = e(r#""A","B","C""#, "");
        assert!(can_read(&abc, &ab));
        assert!(!can_read(&ab, &abc));
        assert!(can_read(&e(r#""A","B""#, r#","default":"A""#), &abc));
    }

    #[test]
    fn unions() {
        assert!(can_read(r#"["null","int"]"#, r#""int""#));
        assert!(!can_read(r#""int""#, r#"["null","int"]"#));
        assert!(can_read(r#"["null","long"]"#, r#"["null","int"]"#));
        assert!(!can_read(r#"["null","string"]"#, r#"["null","int"]"#));
        assert!(can_read(r#""long""#, r#"["int","long"]"#));
    }

    #[test]
    fn nested_and_recursive() {
        let list = |extra: &str| {
            format!(
                r#"{{"type":"record","name":"L","fields":[{{"name":"v","type":"int"}},{{"name":"next","type":["null","L"],"default":null}}{extra}]}}"#
            )
        };
        assert!(can_read(&list(""), &list("")));
        assert!(can_read(
            &list(r#",{"name":"w","type":"int","default":0}"#),
            &list("")
        ));
        assert!(!can_read(&list(r#",{"name":"w","type":"int"}"#), &list("")));
        assert!(can_read(
            r#"{"type":"array","items":"long"}"#,
            r#"{"type":"array","items":"int"}"#
        ));
        assert!(!can_read(
            r#"{"type":"map","values":"int"}"#,
            r#"{"type":"map","values":"long"}"#
        ));
        let f = |n: u64| format!(r#"{{"type":"fixed","name":"F","size":{n}}}"#);
        assert!(can_read(&f(4), &f(4)));
        assert!(!can_read(&f(4), &f(8)));
    }

    #[test]
    fn references_provide_names() {
        let dep = p(
            r#"{"type":"record","name":"Addr","namespace":"x","fields":[{"name":"s","type":"string"}]}"#,
        );
        let main = parse(
            r#"{"type":"record","name":"P","namespace":"x","fields":[{"name":"a","type":"Addr"}]}"#,
            &[dep],
        );
        assert!(main.is_ok());
        assert!(parse(
            r#"{"type":"record","name":"P","fields":[{"name":"a","type":"x.Addr"}]}"#,
            &[]
        )
        .is_err());
    }

    #[test]
    fn normalization() {
        let a = r#"{"type":"record","name":"R","namespace":"ns","doc":"d","fields":[{"name":"a","type":{"type":"int"}},{"name":"b","type":["null","R"]}]}"#;
        let b = r#"{ "name": "ns.R", "type": "record", "fields": [ {"name":"a","type":"int"}, {"type":["null","ns.R"],"name":"b"} ] }"#;
        assert_eq!(normalize(a).unwrap(), normalize(b).unwrap());
        assert_ne!(
            normalize(a).unwrap(),
            normalize(&rec(r#"{"name":"a","type":"long"}"#)).unwrap()
        );
    }
}
