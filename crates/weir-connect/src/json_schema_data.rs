//! Connect schemas and values to and from JSON Schema, as Confluent's
//! `JsonSchemaData` maps them:
//!
//! - integers are `"type":"integer"` and floats `"type":"number"`, each
//!   with `connect.type` (`int8` … `float64`); BYTES is a string with
//!   `"connect.type":"bytes"` (base64 in payloads), Decimal a number with
//!   `"connect.type":"bytes"`; Date, Time and Timestamp their integers;
//! - STRUCT is an object whose properties carry `connect.index` (their
//!   field order), a string-keyed MAP an object with
//!   `additionalProperties` and `"connect.type":"map"`, other MAPs arrays
//!   of `{key, value}` objects;
//! - an optional schema is `oneOf` null and the schema; the name is the
//!   `title`, the doc the `description`, version and parameters
//!   `connect.version` and `connect.parameters`;
//! - reading, other `oneOf`s are STRUCTs named
//!   `io.confluent.connect.json.OneOf`, enums STRINGs with
//!   `io.confluent.connect.json.Enum` parameters, integers without
//!   `connect.type` INT64 and numbers FLOAT64.
//!
//! Payloads are plain JSON, which `weir-formats` frames.

use std::collections::HashMap;
use std::sync::Arc;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use serde_json::Value as J;

use crate::converter::{decimal_bytes, decimal_number};
use crate::data::{logical, Parameters, Schema, Struct, Type, Value};
use crate::error::{ConnectError, Result};
use crate::json::{Json, ParamOrder};

const NAMESPACE: &str = "io.confluent.connect.json";
const ONE_OF: &str = "io.confluent.connect.json.OneOf";
const ENUM: &str = "io.confluent.connect.json.Enum";
const MAX_DEPTH: usize = 64;

fn err(m: impl Into<String>) -> ConnectError {
    ConnectError::data(m)
}

fn deeper(depth: usize) -> Result<usize> {
    if depth >= MAX_DEPTH {
        return Err(err("JSON schema or value nests too deeply"));
    }
    Ok(depth + 1)
}

// ---------------------------------------------------------------------------
// Connect → JSON Schema

/// The JSON Schema text for a Connect schema.
pub fn json_schema_text(schema: &Schema) -> Result<String> {
    Ok(write_schema(schema, None, false, 0)?.to_text())
}

fn non_optional(s: &Schema) -> Schema {
    let mut s = s.clone();
    s.optional = false;
    s
}

fn write_schema(
    s: &Schema,
    index: Option<usize>,
    ignore_optional: bool,
    depth: usize,
) -> Result<Json> {
    let depth = deeper(depth)?;
    let index_prop = |obj: &mut Vec<(String, Json)>| {
        if let Some(i) = index {
            obj.push(("connect.index".into(), Json::Int(i as i64)));
        }
    };
    if s.ty == Type::Struct && (s.name.as_deref() == Some(ONE_OF) || s.optional) {
        let mut subs = Vec::new();
        if s.optional {
            subs.push(Json::obj([("type", Json::str("null"))]));
        }
        if s.name.as_deref() == Some(ONE_OF) {
            for f in &s.fields {
                subs.push(write_schema(
                    &non_optional(&f.schema),
                    Some(f.index),
                    true,
                    depth,
                )?);
            }
        } else {
            subs.push(write_schema(&non_optional(s), None, false, depth)?);
        }
        let mut obj = vec![("oneOf".to_string(), Json::Arr(subs))];
        index_prop(&mut obj);
        return Ok(Json::Obj(obj));
    }
    let mut obj: Vec<(String, Json)> = Vec::new();
    let mut connect_type = None;
    let ty = |t: &str| ("type".to_string(), Json::str(t));
    match s.ty {
        Type::Int8 | Type::Int16 | Type::Int32 | Type::Int64 => {
            obj.push(ty("integer"));
            connect_type = Some(s.ty.name().to_ascii_lowercase());
        }
        Type::Float32 | Type::Float64 => {
            obj.push(ty("number"));
            connect_type = Some(s.ty.name().to_ascii_lowercase());
        }
        Type::Boolean => obj.push(ty("boolean")),
        Type::String => {
            let symbols: Vec<Json> = s
                .parameters
                .iter()
                .flatten()
                .filter(|(k, _)| k.starts_with(&format!("{ENUM}.")))
                .map(|(_, v)| Json::str(v.clone()))
                .collect();
            if s.parameters.as_ref().is_some_and(|p| p.contains_key(ENUM)) {
                obj.push(("enum".into(), Json::Arr(symbols)));
            } else {
                obj.push(ty("string"));
            }
        }
        Type::Bytes => {
            obj.push(ty(if s.name.as_deref() == Some(logical::DECIMAL) {
                "number"
            } else {
                "string"
            }));
            connect_type = Some("bytes".into());
        }
        Type::Array => {
            let items = s
                .value
                .as_deref()
                .ok_or_else(|| err("array items missing"))?;
            obj.push(ty("array"));
            obj.push(("items".into(), write_schema(items, None, false, depth)?));
        }
        Type::Map => {
            let k = s.key.as_deref().ok_or_else(|| err("map key missing"))?;
            let v = s.value.as_deref().ok_or_else(|| err("map value missing"))?;
            if k.ty == Type::String && !k.optional {
                obj.push(ty("object"));
                obj.push((
                    "additionalProperties".into(),
                    write_schema(v, None, false, depth)?,
                ));
            } else {
                obj.push(ty("array"));
                obj.push((
                    "items".into(),
                    Json::obj([
                        ("type", Json::str("object")),
                        (
                            "properties",
                            Json::obj([
                                ("key", write_schema(k, Some(0), false, depth)?),
                                ("value", write_schema(v, Some(1), false, depth)?),
                            ]),
                        ),
                    ]),
                ));
            }
            connect_type = Some("map".into());
        }
        Type::Struct => {
            obj.push(ty("object"));
            let props = s
                .fields
                .iter()
                .map(|f| {
                    Ok((
                        f.name.clone(),
                        write_schema(&f.schema, Some(f.index), false, depth)?,
                    ))
                })
                .collect::<Result<Vec<_>>>()?;
            obj.push(("properties".into(), Json::Obj(props)));
        }
    }
    if let Some(n) = &s.name {
        obj.push(("title".into(), Json::str(n.clone())));
    }
    if let Some(d) = &s.doc {
        obj.push(("description".into(), Json::str(d.clone())));
    }
    if let Some(d) = &s.default {
        obj.push((
            "default".into(),
            Json::from_serde(&to_json_in(s, d, true, depth)?),
        ));
    }
    if let Some(t) = connect_type {
        obj.push(("connect.type".into(), Json::Str(t)));
    }
    if let Some(v) = s.version {
        obj.push(("connect.version".into(), Json::Int(i64::from(v))));
    }
    let params: Vec<(String, Json)> = s
        .parameters
        .iter()
        .flatten()
        .filter(|(k, _)| !k.starts_with(NAMESPACE))
        .map(|(k, v)| (k.clone(), Json::str(v.clone())))
        .collect();
    if !params.is_empty() {
        obj.push(("connect.parameters".into(), Json::Obj(params)));
    }
    if s.optional && !ignore_optional {
        let mut wrapper = vec![(
            "oneOf".to_string(),
            Json::Arr(vec![
                Json::obj([("type", Json::str("null"))]),
                Json::Obj(obj),
            ]),
        )];
        index_prop(&mut wrapper);
        return Ok(Json::Obj(wrapper));
    }
    index_prop(&mut obj);
    Ok(Json::Obj(obj))
}

// ---------------------------------------------------------------------------
// Connect value → JSON payload

/// A Connect value of `schema` as its JSON payload.
pub fn to_json(schema: &Schema, v: &Value) -> Result<J> {
    to_json_in(schema, v, false, 0)
}

fn to_json_in(s: &Schema, v: &Value, in_default: bool, depth: usize) -> Result<J> {
    let depth = deeper(depth)?;
    if v.is_null() {
        if let (Some(d), false) = (&s.default, in_default) {
            return to_json_in(s, d, true, depth);
        }
        if s.optional {
            return Ok(J::Null);
        }
        return Err(err(format!(
            "Conversion error: null value for field that is required and has no default value ({})",
            s.ty.name()
        )));
    }
    let bad = || {
        err(format!(
            "Invalid type for {}: {}",
            s.ty.name(),
            v.type_name()
        ))
    };
    Ok(match (s.ty, v) {
        (_, Value::Int8(x)) => J::from(*x),
        (_, Value::Int16(x)) => J::from(*x),
        (_, Value::Int32(x)) => J::from(*x),
        (_, Value::Int64(x)) => J::from(*x),
        (_, Value::Float32(x)) => J::from(f64::from(*x)),
        (_, Value::Float64(x)) => J::from(*x),
        (_, Value::Boolean(x)) => J::Bool(*x),
        (_, Value::String(x)) => J::String(x.clone()),
        (Type::Bytes, Value::Bytes(b)) if s.name.as_deref() == Some(logical::DECIMAL) => {
            let scale = s.decimal_scale().unwrap_or(0);
            match decimal_number(b, scale) {
                Json::Int(i) => J::from(i),
                Json::Double(d) => J::from(d),
                _ => return Err(bad()),
            }
        }
        (_, Value::Bytes(b)) => J::String(B64.encode(b)),
        (Type::Array, Value::Array(items)) => {
            let is = s.value.as_deref().ok_or_else(bad)?;
            J::Array(
                items
                    .iter()
                    .map(|i| to_json_in(is, i, false, depth))
                    .collect::<Result<_>>()?,
            )
        }
        (Type::Map, Value::Map(entries)) => {
            let ks = s.key.as_deref().ok_or_else(bad)?;
            let vs = s.value.as_deref().ok_or_else(bad)?;
            if ks.ty == Type::String && !ks.optional {
                J::Object(
                    entries
                        .iter()
                        .map(|(k, v)| {
                            Ok((
                                k.as_str().ok_or_else(bad)?.to_string(),
                                to_json_in(vs, v, false, depth)?,
                            ))
                        })
                        .collect::<Result<_>>()?,
                )
            } else {
                J::Array(
                    entries
                        .iter()
                        .map(|(k, v)| {
                            let mut o = serde_json::Map::new();
                            o.insert("key".into(), to_json_in(ks, k, false, depth)?);
                            o.insert("value".into(), to_json_in(vs, v, false, depth)?);
                            Ok(J::Object(o))
                        })
                        .collect::<Result<_>>()?,
                )
            }
        }
        (Type::Struct, Value::Struct(st)) => {
            if s.name.as_deref() == Some(ONE_OF) {
                for f in &s.fields {
                    let fv = &st.values[f.index];
                    if !fv.is_null() {
                        return to_json_in(&f.schema, fv, false, depth);
                    }
                }
                return Ok(J::Null);
            }
            J::Object(
                s.fields
                    .iter()
                    .map(|f| {
                        Ok((
                            f.name.clone(),
                            to_json_in(&f.schema, &st.values[f.index], false, depth)?,
                        ))
                    })
                    .collect::<Result<_>>()?,
            )
        }
        _ => return Err(bad()),
    })
}

// ---------------------------------------------------------------------------
// JSON Schema → Connect schema, JSON payload → Connect value

/// A JSON Schema read for Connect.
#[derive(Debug)]
pub struct JsonReadSchema {
    connect: Arc<Schema>,
}

impl JsonReadSchema {
    /// Reads a JSON Schema's text, with the documents it references.
    /// `optional_for_nonrequired` is Confluent's `use.optional.for.nonrequired`:
    /// an object's properties not in its `required` list read as optional
    /// fields (by default only `oneOf` with null makes a field optional).
    pub fn parse(
        text: &str,
        references: &[weir_formats::ResolvedReference],
        optional_for_nonrequired: bool,
    ) -> Result<Self> {
        let parse = |t: &str| -> Result<J> {
            serde_json::from_str(t).map_err(|e| err(format!("Invalid JSON schema: {e}")))
        };
        let root = parse(text)?;
        let mut refs = HashMap::new();
        let mut order = ParamOrder::default();
        order.add(text, "connect.parameters");
        for r in references {
            refs.insert(r.name.clone(), parse(&r.schema)?);
            order.add(&r.schema, "connect.parameters");
        }
        let r = Reader {
            root: &root,
            refs: &refs,
            order: &order,
            optional_for_nonrequired,
        };
        Ok(Self {
            connect: Arc::new(r.schema(&root, false, 0)?),
        })
    }

    /// The Connect schema.
    pub fn connect(&self) -> &Arc<Schema> {
        &self.connect
    }

    /// Gives the root schema `version` unless `connect.version` set one,
    /// as Confluent's converter does with the registry's version.
    pub fn set_version(&mut self, version: i32) {
        if self.connect.version.is_none() {
            Arc::make_mut(&mut self.connect).version = Some(version);
        }
    }

    /// A JSON payload as Connect data.
    pub fn value(&self, j: &J) -> Result<Value> {
        value(&self.connect, j, 0)
    }
}

struct Reader<'a> {
    root: &'a J,
    refs: &'a HashMap<String, J>,
    /// `connect.parameters` in the text's order (serde sorts them).
    order: &'a ParamOrder,
    /// `use.optional.for.nonrequired`.
    optional_for_nonrequired: bool,
}

impl Reader<'_> {
    fn resolve(&self, r: &str) -> Result<&J> {
        let missing = || err(format!("Unresolvable JSON schema reference {r}"));
        if let Some(pointer) = r.strip_prefix('#') {
            return self.root.pointer(pointer).ok_or_else(missing);
        }
        let (doc, pointer) = r.split_once('#').unwrap_or((r, ""));
        let last = doc.rsplit('/').next().unwrap_or(doc);
        let d = self
            .refs
            .get(doc)
            .or_else(|| self.refs.get(last))
            .ok_or_else(missing)?;
        if pointer.is_empty() {
            Ok(d)
        } else {
            d.pointer(pointer).ok_or_else(missing)
        }
    }

    fn schema(&self, j: &J, force_optional: bool, depth: usize) -> Result<Schema> {
        let depth = deeper(depth)?;
        let o = match j {
            J::Object(o) => o,
            J::Bool(true) => return Err(err("Unsupported schema: true (any value)")),
            _ => return Err(err(format!("Unsupported JSON schema: {j}"))),
        };
        if let Some(r) = o.get("$ref").and_then(J::as_str) {
            let target = self.resolve(r)?;
            return self.schema(target, force_optional, depth);
        }
        let combined = o.get("oneOf").or_else(|| o.get("anyOf"));
        let is_null = |s: &J| s.get("type").and_then(J::as_str) == Some("null");
        let mut s = if let Some(subs) = combined.and_then(J::as_array) {
            let non_null: Vec<&J> = subs.iter().filter(|s| !is_null(s)).collect();
            let has_null = non_null.len() < subs.len();
            if subs.len() == 2 && has_null {
                return self.schema(non_null[0], true, depth);
            }
            let fields = non_null
                .iter()
                .enumerate()
                .map(|(i, sub)| {
                    Ok((
                        format!("{ONE_OF}.field.{i}"),
                        self.schema(sub, true, depth)?,
                    ))
                })
                .collect::<Result<Vec<_>>>()?;
            let mut s = Schema::structure(fields).named(ONE_OF);
            s.optional = has_null;
            s
        } else if let Some(subs) = o.get("allOf").and_then(J::as_array) {
            // Confluent reads an allOf of a string or number with a const,
            // enum or format as that string or number.
            let pick = subs
                .iter()
                .find(|s| s.get("enum").is_some())
                .or_else(|| {
                    subs.iter().find(|s| {
                        matches!(
                            s.get("type").and_then(J::as_str),
                            Some("string" | "number" | "integer")
                        )
                    })
                })
                .ok_or_else(|| err("Unsupported criterion allOf"))?;
            return self.schema(pick, force_optional, depth);
        } else if let Some(symbols) = o.get("enum").and_then(J::as_array) {
            let mut params = Parameters::new();
            params.insert(ENUM.to_string(), String::new());
            for sym in symbols {
                let sym = match sym {
                    J::String(s) => s.clone(),
                    other => other.to_string(),
                };
                params.insert(format!("{ENUM}.{sym}"), sym);
            }
            let mut s = Schema::of(Type::String);
            s.parameters = Some(params);
            s
        } else {
            let ty = match o.get("type") {
                Some(J::String(t)) => t.as_str(),
                Some(J::Array(ts)) => {
                    let non_null: Vec<&str> = ts
                        .iter()
                        .filter_map(J::as_str)
                        .filter(|t| *t != "null")
                        .collect();
                    if non_null.len() != 1 {
                        return Err(err("Unsupported JSON schema: several types"));
                    }
                    let mut one = o.clone();
                    one.insert("type".into(), J::String(non_null[0].to_string()));
                    let optional = force_optional || non_null.len() < ts.len();
                    return self.schema(&J::Object(one), optional, depth);
                }
                None if o.contains_key("properties") => "object",
                _ => return Err(err(format!("Unsupported JSON schema: {j}"))),
            };
            let connect_type = o.get("connect.type").and_then(J::as_str);
            match ty {
                "boolean" => Schema::of(Type::Boolean),
                "integer" | "number" => match connect_type {
                    None if ty == "integer" => Schema::of(Type::Int64),
                    None => Schema::of(Type::Float64),
                    Some("bytes") => Schema::of(Type::Bytes),
                    Some(t) => {
                        let t = Type::parse(t)
                            .filter(|t| t.is_primitive())
                            .ok_or_else(|| err(format!("Unsupported type {t}")))?;
                        Schema::of(t)
                    }
                },
                "string" if connect_type == Some("bytes") => Schema::of(Type::Bytes),
                "string" => Schema::of(Type::String),
                "array" => {
                    let items = o
                        .get("items")
                        .ok_or_else(|| err("Array schema did not specify the items type"))?;
                    let props = items.get("properties");
                    match (connect_type, props) {
                        (Some("map"), Some(p)) => {
                            let k = p.get("key").ok_or_else(|| err("map entry without key"))?;
                            let v = p
                                .get("value")
                                .ok_or_else(|| err("map entry without value"))?;
                            Schema::map(
                                self.schema(k, false, depth)?,
                                self.schema(v, false, depth)?,
                            )
                        }
                        _ => Schema::array(self.schema(items, false, depth)?),
                    }
                }
                "object" if connect_type == Some("map") => {
                    let v = o
                        .get("additionalProperties")
                        .ok_or_else(|| err("map without additionalProperties"))?;
                    Schema::map(Schema::of(Type::String), self.schema(v, false, depth)?)
                }
                "object" => {
                    let mut props: Vec<(i64, String, &J)> = Vec::new();
                    if let Some(p) = o.get("properties").and_then(J::as_object) {
                        for (name, sub) in p {
                            let index = sub
                                .get("connect.index")
                                .and_then(J::as_i64)
                                .unwrap_or(props.len() as i64);
                            props.push((index, name.clone(), sub));
                        }
                    }
                    props.sort_by_key(|(i, _, _)| *i);
                    let required: Vec<&str> = o
                        .get("required")
                        .and_then(J::as_array)
                        .map(|r| r.iter().filter_map(J::as_str).collect())
                        .unwrap_or_default();
                    let fields = props
                        .into_iter()
                        .map(|(_, name, sub)| {
                            let optional =
                                self.optional_for_nonrequired && !required.contains(&name.as_str());
                            Ok((name, self.schema(sub, optional, depth)?))
                        })
                        .collect::<Result<Vec<_>>>()?;
                    Schema::structure(fields)
                }
                other => return Err(err(format!("Unsupported JSON schema type {other}"))),
            }
        };
        if let Some(t) = o.get("title").and_then(J::as_str) {
            s.name = Some(t.to_string());
        }
        if let Some(v) = o.get("connect.version").and_then(J::as_i64) {
            s.version = i32::try_from(v).ok();
        }
        if let Some(d) = o.get("description").and_then(J::as_str) {
            s.doc = Some(d.to_string());
        }
        if let Some(p) = o.get("connect.parameters").and_then(J::as_object) {
            let params = s.parameters.get_or_insert_with(Parameters::new);
            for (k, v) in self.order.ordered(p) {
                params.insert(k.clone(), v.as_str().unwrap_or_default().to_string());
            }
        }
        if s.ty == Type::Bytes
            && s.name.as_deref() == Some(logical::DECIMAL)
            && s.decimal_scale().is_none()
        {
            return Err(err("Decimal schema without scale"));
        }
        if force_optional {
            s.optional = true;
        }
        if let Some(d) = o.get("default").filter(|d| !d.is_null()) {
            s.default = Some(value(&s, d, depth)?);
        }
        Ok(s)
    }
}

fn value(s: &Schema, j: &J, depth: usize) -> Result<Value> {
    let depth = deeper(depth)?;
    if j.is_null() {
        if let Some(d) = &s.default {
            return Ok(d.clone());
        }
        if s.optional {
            return Ok(Value::Null);
        }
        return Err(err(format!(
            "Invalid null value for required {} field",
            s.ty.name()
        )));
    }
    let bad = || err(format!("Invalid JSON value {j} for {}", s.ty.name()));
    let int = |lo: i64, hi: i64| -> Result<i64> {
        j.as_i64().filter(|v| (lo..=hi).contains(v)).ok_or_else(bad)
    };
    Ok(match s.ty {
        Type::Int8 => Value::Int8(int(i64::from(i8::MIN), i64::from(i8::MAX))? as i8),
        Type::Int16 => Value::Int16(int(i64::from(i16::MIN), i64::from(i16::MAX))? as i16),
        Type::Int32 => Value::Int32(int(i64::from(i32::MIN), i64::from(i32::MAX))? as i32),
        Type::Int64 => Value::Int64(j.as_i64().ok_or_else(bad)?),
        #[allow(clippy::cast_possible_truncation)]
        Type::Float32 => Value::Float32(j.as_f64().ok_or_else(bad)? as f32),
        Type::Float64 => Value::Float64(j.as_f64().ok_or_else(bad)?),
        Type::Boolean => Value::Boolean(j.as_bool().ok_or_else(bad)?),
        Type::String => Value::String(j.as_str().ok_or_else(bad)?.to_string()),
        Type::Bytes if s.name.as_deref() == Some(logical::DECIMAL) => {
            let J::Number(n) = j else { return Err(bad()) };
            let scale = s.decimal_scale().unwrap_or(0);
            Value::Bytes(decimal_bytes(&n.to_string(), scale).ok_or_else(bad)?)
        }
        Type::Bytes => Value::Bytes(B64.decode(j.as_str().ok_or_else(bad)?).map_err(|_| bad())?),
        Type::Array => {
            let is = s.value.as_deref().ok_or_else(bad)?;
            Value::Array(
                j.as_array()
                    .ok_or_else(bad)?
                    .iter()
                    .map(|i| value(is, i, depth))
                    .collect::<Result<_>>()?,
            )
        }
        Type::Map => {
            let ks = s.key.as_deref().ok_or_else(bad)?;
            let vs = s.value.as_deref().ok_or_else(bad)?;
            match j {
                J::Object(o) => Value::Map(
                    o.iter()
                        .map(|(k, v)| Ok((Value::String(k.clone()), value(vs, v, depth)?)))
                        .collect::<Result<_>>()?,
                ),
                J::Array(a) => Value::Map(
                    a.iter()
                        .map(|e| {
                            Ok((
                                value(ks, e.get("key").unwrap_or(&J::Null), depth)?,
                                value(vs, e.get("value").unwrap_or(&J::Null), depth)?,
                            ))
                        })
                        .collect::<Result<_>>()?,
                ),
                _ => return Err(bad()),
            }
        }
        Type::Struct if s.name.as_deref() == Some(ONE_OF) => {
            // The first branch the value fits.
            let schema = Arc::new(s.clone());
            for f in &s.fields {
                if let Ok(v) = value(&f.schema, j, depth) {
                    let mut st = Struct::new(Arc::clone(&schema));
                    st.values[f.index] = v;
                    return Ok(Value::Struct(st));
                }
            }
            return Err(bad());
        }
        Type::Struct => {
            let o = j.as_object().ok_or_else(bad)?;
            let mut st = Struct::new(Arc::new(s.clone()));
            for f in &s.fields {
                st.values[f.index] = value(&f.schema, o.get(&f.name).unwrap_or(&J::Null), depth)?;
            }
            Value::Struct(st)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_and_values_round_trip() {
        let mut price = Schema::of(Type::Bytes).named(logical::DECIMAL);
        price.version = Some(1);
        price.parameters = Some([(logical::SCALE.to_string(), "2".to_string())].into());
        let s = Schema::structure(vec![
            ("id".into(), Schema::of(Type::Int64)),
            ("small".into(), Schema::of(Type::Int8)),
            ("name".into(), Schema::of(Type::String).optional()),
            ("price".into(), price),
            ("raw".into(), Schema::of(Type::Bytes)),
            (
                "tags".into(),
                Schema::map(Schema::of(Type::String), Schema::of(Type::Int32)),
            ),
            (
                "by_id".into(),
                Schema::map(Schema::of(Type::Int32), Schema::of(Type::String)),
            ),
        ])
        .named("shop.Order");
        let text = json_schema_text(&s).unwrap();
        assert!(text.starts_with(r#"{"type":"object","properties":{"id":{"type":"integer","connect.type":"int64","connect.index":0},"#), "{text}");
        assert!(
            text.contains(
                r#""name":{"oneOf":[{"type":"null"},{"type":"string"}],"connect.index":2}"#
            ),
            "{text}"
        );
        weir_formats::json_schema::JsonSchema::parse(&text).unwrap();
        let back = JsonReadSchema::parse(&text, &[], false).unwrap();
        assert_eq!(back.connect().as_ref(), &s);
        let schema = Arc::new(s);
        let v = Value::Struct(Struct {
            schema: Arc::clone(&schema),
            values: vec![
                Value::Int64(1),
                Value::Int8(-3),
                Value::Null,
                Value::Bytes(vec![0x30, 0x39]),
                Value::Bytes(vec![1, 2, 255]),
                Value::Map(vec![(Value::String("a".into()), Value::Int32(1))]),
                Value::Map(vec![(Value::Int32(5), Value::String("five".into()))]),
            ],
        });
        let j = to_json(&schema, &v).unwrap();
        assert_eq!(j["price"], serde_json::json!(123.45));
        assert_eq!(j["raw"], serde_json::json!("AQL/"));
        assert_eq!(back.value(&j).unwrap(), v);
        for bad in [
            "",
            "[]",
            r#"{"type":"null"}"#,
            r##"{"$ref":"#/nope"}"##,
            r#"{"type":["string","integer"]}"#,
        ] {
            assert!(JsonReadSchema::parse(bad, &[], false).is_err(), "{bad}");
        }
    }
}
