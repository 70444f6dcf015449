//! JSON Schema: validation of the document's shape and the compatibility
//! check. "Reader can read writer" means every document valid under the
//! writer is valid under the reader, judged structurally as Confluent's
//! JSON Schema rules do: open content models (additional properties
//! allowed) may drop properties but not add them, closed ones may add
//! optional properties but not drop them; types may widen (integer to
//! number, more types) but not narrow; enums may grow; bounds may relax;
//! new required properties are incompatible unless they have a default.

use std::collections::{HashMap, HashSet};

use serde_json::{Map, Value};

/// Parses `text` and checks it against its draft's meta-schema (with
/// `jsonschema`, through weir-formats).
pub fn parse(text: &str) -> Result<Value, String> {
    crate::json_schema::parse_document(text).map_err(|e| match e {
        crate::FormatError::InvalidSchema { reason, .. } => reason,
        other => other.to_string(),
    })
}

/// A schema document with the documents its references name.
#[derive(Debug, Clone)]
pub struct Doc {
    /// The root document.
    pub root: Value,
    /// Referenced documents by reference name.
    pub refs: HashMap<String, Value>,
}

/// Why a reader cannot read every document the writer accepts.
pub fn incompatibilities(reader: &Doc, writer: &Doc) -> Vec<String> {
    let mut c = Checker {
        reader,
        writer,
        seen: HashSet::new(),
        out: Vec::new(),
    };
    c.check(&reader.root, &writer.root, "#", 0);
    c.out
}

struct Checker<'a> {
    reader: &'a Doc,
    writer: &'a Doc,
    seen: HashSet<(String, String)>,
    out: Vec<String>,
}

fn pointer<'v>(doc: &'v Value, frag: &str) -> Option<&'v Value> {
    if frag.is_empty() {
        return Some(doc);
    }
    doc.pointer(frag)
}

fn resolve<'v>(doc: &'v Doc, root: &'v Value, v: &'v Value) -> &'v Value {
    let mut cur = v;
    for _ in 0..32 {
        let Some(r) = cur.get("$ref").and_then(Value::as_str) else {
            return cur;
        };
        let (file, frag) = r.split_once('#').unwrap_or((r, ""));
        let base = if file.is_empty() {
            Some(root)
        } else {
            doc.refs.get(file)
        };
        match base.and_then(|b| pointer(b, frag)) {
            Some(next) => cur = next,
            None => return cur,
        }
    }
    cur
}

fn types(o: &Map<String, Value>) -> Option<Vec<String>> {
    match o.get("type")? {
        Value::String(t) => Some(vec![t.clone()]),
        Value::Array(a) => Some(
            a.iter()
                .filter_map(|t| t.as_str().map(str::to_string))
                .collect(),
        ),
        _ => None,
    }
}

fn is_open(v: Option<&Value>) -> bool {
    match v {
        None | Some(Value::Bool(true)) => true,
        Some(Value::Object(o)) => o.is_empty(),
        _ => false,
    }
}

fn issue(kind: &str, path: &str, what: &str) -> String {
    format!("{{errorType:'{kind}', description:'{what}', additionalInfo:'at path {path}'}}")
}

const UPPER: &[&str] = &[
    "maximum",
    "exclusiveMaximum",
    "maxLength",
    "maxItems",
    "maxProperties",
];
const LOWER: &[&str] = &[
    "minimum",
    "exclusiveMinimum",
    "minLength",
    "minItems",
    "minProperties",
];

impl Checker<'_> {
    fn check(&mut self, r: &Value, w: &Value, path: &str, depth: usize) {
        if depth > 64 {
            return;
        }
        let key = (
            format!("{:p}", r as *const Value),
            format!("{:p}", w as *const Value),
        );
        // A pair of references already being checked further up is assumed
        // to fit, which ends the recursion of recursive schemas.
        let refs = r.get("$ref").is_some() || w.get("$ref").is_some();
        if refs && !self.seen.insert(key.clone()) {
            return;
        }
        self.check_resolved(r, w, path, depth);
        if refs {
            self.seen.remove(&key);
        }
    }

    fn check_resolved(&mut self, r: &Value, w: &Value, path: &str, depth: usize) {
        let r = resolve(self.reader, &self.reader.root, r);
        let w = resolve(self.writer, &self.writer.root, w);
        // Nothing is written: anything reads it. Anything may be written:
        // only an unconstrained reader reads it.
        if w == &Value::Bool(false) || is_open(Some(r)) {
            return;
        }
        let (Some(ro), Some(wo)) = (r.as_object(), w.as_object()) else {
            self.out.push(issue(
                "SCHEMA_NARROWED",
                path,
                "the new schema accepts less than the old one",
            ));
            return;
        };
        // Combinators: a writer alternative must fit some reader alternative.
        for k in ["oneOf", "anyOf"] {
            let rb = ro
                .get("oneOf")
                .or_else(|| ro.get("anyOf"))
                .and_then(Value::as_array);
            if let Some(wb) = wo.get(k).and_then(Value::as_array) {
                for (i, b) in wb.iter().enumerate() {
                    let p = format!("{path}/{k}/{i}");
                    let fits = match rb {
                        Some(rb) => rb.iter().any(|x| self.fits(x, b, &p, depth)),
                        None => self.fits(r, b, &p, depth),
                    };
                    if !fits {
                        self.out.push(issue(
                            "COMBINED_TYPE_SUBSCHEMAS_CHANGED",
                            &p,
                            "an alternative of the old schema is not accepted by the new one",
                        ));
                    }
                }
                return;
            }
        }
        if let Some(rb) = ro
            .get("oneOf")
            .or_else(|| ro.get("anyOf"))
            .and_then(Value::as_array)
        {
            if !rb.iter().any(|x| self.fits(x, w, path, depth)) {
                self.out.push(issue(
                    "COMBINED_TYPE_SUBSCHEMAS_CHANGED",
                    path,
                    "no alternative of the new schema accepts the old one",
                ));
            }
            return;
        }
        if let Some(all) = ro.get("allOf").and_then(Value::as_array) {
            for (i, x) in all.iter().enumerate() {
                self.check(x, w, &format!("{path}/allOf/{i}"), depth + 1);
            }
        }
        // Types.
        if let Some(rt) = types(ro) {
            match types(wo) {
                None => self.out.push(issue(
                    "TYPE_NARROWED",
                    path,
                    "the new schema restricts the type",
                )),
                Some(wt) => {
                    for t in &wt {
                        let ok =
                            rt.contains(t) || (t == "integer" && rt.iter().any(|x| x == "number"));
                        if !ok {
                            self.out.push(issue(
                                "TYPE_CHANGED",
                                path,
                                &format!("the old type {t} is not accepted by the new schema"),
                            ));
                        }
                    }
                }
            }
        }
        // Enums and constants.
        if let Some(re) = ro.get("enum").and_then(Value::as_array) {
            match wo.get("enum").and_then(Value::as_array) {
                Some(we) if we.iter().all(|v| re.contains(v)) => {}
                _ => self.out.push(issue(
                    "ENUM_ARRAY_NARROWED",
                    path,
                    "the new enum does not contain every old value",
                )),
            }
        }
        if let Some(rc) = ro.get("const") {
            if wo.get("const") != Some(rc) {
                self.out
                    .push(issue("CONST_CHANGED", path, "const changed or added"));
            }
        }
        if let Some(rp) = ro.get("pattern") {
            if wo.get("pattern") != Some(rp) {
                self.out
                    .push(issue("PATTERN_CHANGED", path, "pattern changed or added"));
            }
        }
        // Bounds may relax, not tighten.
        for k in UPPER {
            if let Some(rv) = ro.get(*k).and_then(Value::as_f64) {
                match wo.get(*k).and_then(Value::as_f64) {
                    Some(wv) if wv <= rv => {}
                    _ => self.out.push(issue(
                        "MAX_DECREASED",
                        path,
                        &format!("`{k}` added or decreased"),
                    )),
                }
            }
        }
        for k in LOWER {
            if let Some(rv) = ro.get(*k).and_then(Value::as_f64) {
                match wo.get(*k).and_then(Value::as_f64) {
                    Some(wv) if wv >= rv => {}
                    _ => self.out.push(issue(
                        "MIN_INCREASED",
                        path,
                        &format!("`{k}` added or increased"),
                    )),
                }
            }
        }
        self.check_object(ro, wo, path, depth);
        // Arrays.
        if let Some(ri) = ro.get("items") {
            match wo.get("items") {
                Some(wi) => self.check(ri, wi, &format!("{path}/items"), depth + 1),
                None if !is_open(Some(ri)) => {
                    self.out
                        .push(issue("ITEMS_NARROWED", path, "array items restricted"))
                }
                None => {}
            }
        }
    }

    fn fits(&mut self, r: &Value, w: &Value, path: &str, depth: usize) -> bool {
        let before = self.out.len();
        self.check(r, w, path, depth + 1);
        let ok = self.out.len() == before;
        self.out.truncate(before);
        ok
    }

    fn check_object(
        &mut self,
        ro: &Map<String, Value>,
        wo: &Map<String, Value>,
        path: &str,
        depth: usize,
    ) {
        let empty = Map::new();
        let rp = ro
            .get("properties")
            .and_then(Value::as_object)
            .unwrap_or(&empty);
        let wp = wo
            .get("properties")
            .and_then(Value::as_object)
            .unwrap_or(&empty);
        let ra = ro.get("additionalProperties");
        let wa = wo.get("additionalProperties");
        for (name, rs) in rp {
            let p = format!("{path}/properties/{name}");
            match wp.get(name) {
                Some(ws) => self.check(rs, ws, &p, depth + 1),
                None => match wa {
                    Some(Value::Bool(false)) => {}
                    Some(s @ Value::Object(o)) if !o.is_empty() => self.check(rs, s, &p, depth + 1),
                    _ => {
                        if !is_open(Some(rs)) {
                            self.out.push(issue(
                                "PROPERTY_ADDED_TO_OPEN_CONTENT_MODEL",
                                &p,
                                &format!("property {name} added while the old schema allows any additional property"),
                            ));
                        }
                    }
                },
            }
        }
        for (name, ws) in wp {
            if rp.contains_key(name) {
                continue;
            }
            let p = format!("{path}/properties/{name}");
            match ra {
                Some(Value::Bool(false)) => self.out.push(issue(
                    "PROPERTY_REMOVED_FROM_CLOSED_CONTENT_MODEL",
                    &p,
                    &format!("property {name} removed while the new schema allows no additional property"),
                )),
                Some(s @ Value::Object(o)) if !o.is_empty() => self.check(s, ws, &p, depth + 1),
                _ => {}
            }
        }
        if !is_open(ra) && !matches!(wa, Some(Value::Bool(false))) {
            match (ra, wa) {
                (Some(rs), Some(ws)) if !is_open(Some(ws)) => {
                    self.check(rs, ws, &format!("{path}/additionalProperties"), depth + 1)
                }
                _ => self.out.push(issue(
                    "ADDITIONAL_PROPERTIES_NARROWED",
                    path,
                    "additional properties restricted",
                )),
            }
        }
        let names = |o: &Map<String, Value>| -> Vec<String> {
            o.get("required")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(|v| v.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default()
        };
        let wreq = names(wo);
        for r in names(ro) {
            let has_default = rp.get(&r).is_some_and(|s| s.get("default").is_some());
            if !wreq.contains(&r) && !has_default {
                self.out.push(issue(
                    "REQUIRED_PROPERTY_ADDED",
                    path,
                    &format!("property {r} is newly required"),
                ));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(s: &str) -> Doc {
        Doc {
            root: parse(s).unwrap_or_else(|e| panic!("{s}: {e}")),
            refs: HashMap::new(),
        }
    }

    fn can_read(r: &str, w: &str) -> bool {
        incompatibilities(&doc(r), &doc(w)).is_empty()
    }

    fn obj(props: &str, extra: &str) -> String {
        format!(r#"{{"type":"object","properties":{{{props}}}{extra}}}"#)
    }

    #[test]
    fn rejects_bad_documents() {
        for bad in [
            "1",
            r#"{"type":"nope"}"#,
            r#"{"properties":[]}"#,
            r#"{"required":"a"}"#,
            "{",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn open_content_model() {
        let a = obj(r#""a":{"type":"string"}"#, "");
        let ab = obj(r#""a":{"type":"string"},"b":{"type":"integer"}"#, "");
        // Adding to an open model: old docs may hold any `b`.
        assert!(!can_read(&ab, &a));
        // Removing from an open model is fine.
        assert!(can_read(&a, &ab));
    }

    #[test]
    fn closed_content_model() {
        let closed = r#","additionalProperties":false"#;
        let a = obj(r#""a":{"type":"string"}"#, closed);
        let ab = obj(r#""a":{"type":"string"},"b":{"type":"integer"}"#, closed);
        assert!(can_read(&ab, &a));
        assert!(!can_read(&a, &ab));
        let ab_req = obj(
            r#""a":{"type":"string"},"b":{"type":"integer"}"#,
            &format!(r#"{closed},"required":["b"]"#),
        );
        assert!(!can_read(&ab_req, &a));
    }

    #[test]
    fn types_enums_bounds() {
        assert!(can_read(r#"{"type":"number"}"#, r#"{"type":"integer"}"#));
        assert!(!can_read(r#"{"type":"integer"}"#, r#"{"type":"number"}"#));
        assert!(can_read(
            r#"{"type":["string","null"]}"#,
            r#"{"type":"string"}"#
        ));
        assert!(!can_read(
            r#"{"type":"string"}"#,
            r#"{"type":["string","null"]}"#
        ));
        assert!(can_read(r#"{"enum":["a","b"]}"#, r#"{"enum":["a"]}"#));
        assert!(!can_read(r#"{"enum":["a"]}"#, r#"{"enum":["a","b"]}"#));
        assert!(can_read(
            r#"{"type":"string","maxLength":10}"#,
            r#"{"type":"string","maxLength":5}"#
        ));
        assert!(!can_read(
            r#"{"type":"string","maxLength":5}"#,
            r#"{"type":"string","maxLength":10}"#
        ));
        assert!(can_read("true", r#"{"type":"string"}"#));
        assert!(!can_read(r#"{"type":"string"}"#, "true"));
    }

    #[test]
    fn refs_and_combinators() {
        let w = r##"{"definitions":{"A":{"type":"integer"}},"type":"object","properties":{"x":{"$ref":"#/definitions/A"}},"additionalProperties":false}"##;
        let r = r##"{"definitions":{"A":{"type":"number"}},"type":"object","properties":{"x":{"$ref":"#/definitions/A"}},"additionalProperties":false}"##;
        assert!(can_read(r, w));
        assert!(!can_read(w, r));
        assert!(can_read(
            r#"{"oneOf":[{"type":"string"},{"type":"integer"}]}"#,
            r#"{"type":"string"}"#
        ));
        assert!(!can_read(
            r#"{"type":"string"}"#,
            r#"{"oneOf":[{"type":"string"},{"type":"integer"}]}"#
        ));
    }
}
