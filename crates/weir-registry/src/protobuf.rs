//! Protobuf schemas: a small parser for `.proto` text (proto2 and proto3:
//! messages, nested types, enums, oneofs, maps, imports) and for the
//! base64-encoded `FileDescriptorProto` that confluent-kafka's Python
//! serializer registers, into one model; and Confluent's compatibility
//! rules over it (removed messages and enums, changed field kinds or
//! named types, required fields, fields moved into oneofs).

use std::collections::{BTreeMap, HashMap, HashSet};

use base64::Engine;

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

/// How deeply messages may nest (bounds the parsers' recursion).
const MAX_DEPTH: usize = 64;

const SCALARS: &[&str] = &[
    "double", "float", "int32", "int64", "uint32", "uint64", "sint32", "sint64", "fixed32",
    "fixed64", "sfixed32", "sfixed64", "bool", "string", "bytes",
];

/// Parses a schema: `.proto` text, or a base64 `FileDescriptorProto`.
/// `deps` are referenced files (import path to schema), for resolving type
/// names declared there.
pub fn parse(text: &str, deps: &HashMap<String, String>) -> Result<File, String> {
    let mut known = HashSet::new();
    let mut imported = Vec::new();
    for (name, d) in deps {
        let f = parse_one(d, &HashSet::new()).map_err(|e| format!("reference {name}: {e}"))?;
        known.extend(f.messages.keys().cloned());
        known.extend(f.enums.keys().cloned());
        imported.push(f);
    }
    let mut file = parse_one(text, &known)?;
    // Types of referenced files are part of what is compared, so a change
    // behind a reference is seen by the compatibility check.
    for f in imported {
        for (k, v) in f.messages {
            file.messages.entry(k).or_insert(v);
        }
        for (k, v) in f.enums {
            file.enums.entry(k).or_insert(v);
        }
    }
    Ok(file)
}

fn looks_base64(t: &str) -> bool {
    !t.is_empty()
        && t.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'='))
}

fn parse_one(text: &str, known: &HashSet<String>) -> Result<File, String> {
    let t = text.trim();
    if looks_base64(t) {
        if let Ok(bytes) = base64::engine::general_purpose::STANDARD.decode(t) {
            if let Ok(f) = descriptor::file(&bytes) {
                return Ok(f);
            }
        }
    }
    text::parse(text, known)
}

/// The normalized form: tokens joined by single spaces, comments dropped.
pub fn normalize(text: &str) -> Result<String, String> {
    if looks_base64(text.trim()) {
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
    //! `.proto` text.

    use super::*;

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

    struct P {
        toks: Vec<Tok>,
        pos: usize,
    }

    struct RawField {
        scope: String,
        number: i32,
        def: FieldDef,
        raw_kind: RawKind,
    }

    enum RawKind {
        Plain(String),
        Map(String, String),
    }

    impl P {
        fn peek(&self) -> Option<&Tok> {
            self.toks.get(self.pos)
        }
        fn next(&mut self) -> Result<Tok, String> {
            let t = self
                .toks
                .get(self.pos)
                .cloned()
                .ok_or("unexpected end of schema")?;
            self.pos += 1;
            Ok(t)
        }
        fn word(&mut self) -> Result<String, String> {
            match self.next()? {
                Tok::Word(w) => Ok(w),
                t => Err(format!("expected a name, found {t:?}")),
            }
        }
        fn sym(&mut self, c: char) -> Result<(), String> {
            match self.next()? {
                Tok::Sym(x) if x == c => Ok(()),
                t => Err(format!("expected `{c}`, found {t:?}")),
            }
        }
        fn eat(&mut self, c: char) -> bool {
            if self.peek() == Some(&Tok::Sym(c)) {
                self.pos += 1;
                true
            } else {
                false
            }
        }
        /// Skips a statement: to `;` or over a balanced `{...}`.
        fn skip(&mut self) -> Result<(), String> {
            let mut depth = 0usize;
            loop {
                match self.next()? {
                    Tok::Sym(';') if depth == 0 => return Ok(()),
                    Tok::Sym('{') => depth += 1,
                    Tok::Sym('}') => {
                        depth = depth.checked_sub(1).ok_or("unbalanced `}`")?;
                        if depth == 0 {
                            return Ok(());
                        }
                    }
                    _ => {}
                }
            }
        }
    }

    pub fn parse(src: &str, known: &HashSet<String>) -> Result<File, String> {
        let mut p = P {
            toks: tokens(src)?,
            pos: 0,
        };
        let mut file = File::default();
        let mut fields: Vec<RawField> = Vec::new();
        let mut proto3 = false;
        let mut saw_decl = false;
        while let Some(t) = p.peek().cloned() {
            match t {
                Tok::Sym(';') => p.pos += 1,
                Tok::Word(w) => match w.as_str() {
                    "syntax" | "edition" => {
                        p.pos += 1;
                        p.sym('=')?;
                        match p.next()? {
                            Tok::Str(s) => proto3 = s != "proto2",
                            t => return Err(format!("bad syntax value {t:?}")),
                        }
                        p.sym(';')?;
                    }
                    "package" => {
                        p.pos += 1;
                        file.package = p.word()?;
                        p.sym(';')?;
                    }
                    "import" | "option" | "service" | "extend" => {
                        p.pos += 1;
                        p.skip()?;
                    }
                    "message" => {
                        p.pos += 1;
                        saw_decl = true;
                        let scope = format!(".{}", file.package);
                        message(&mut p, &scope, proto3, &mut file, &mut fields, 0)?;
                    }
                    "enum" => {
                        p.pos += 1;
                        saw_decl = true;
                        let scope = format!(".{}", file.package);
                        enumeration(&mut p, &scope, &mut file)?;
                    }
                    other => return Err(format!("unexpected `{other}`")),
                },
                t => return Err(format!("unexpected {t:?}")),
            }
        }
        if !saw_decl && file.package.is_empty() {
            return Err("no message, enum or package".into());
        }
        // Resolve type names now that every type is declared.
        let mut all: HashSet<String> = known.clone();
        all.extend(file.messages.keys().cloned());
        all.extend(file.enums.keys().cloned());
        for f in fields {
            let mut def = f.def;
            def.kind = match &f.raw_kind {
                RawKind::Plain(t) => resolve(t, &f.scope, &all),
                RawKind::Map(k, v) => Kind::Map(
                    Box::new(resolve(k, &f.scope, &all)),
                    Box::new(resolve(v, &f.scope, &all)),
                ),
            };
            file.messages
                .entry(f.scope)
                .or_default()
                .insert(f.number, def);
        }
        Ok(file)
    }

    fn join(scope: &str, name: &str) -> String {
        if scope == "." {
            format!(".{name}")
        } else {
            format!("{scope}.{name}")
        }
    }

    fn resolve(t: &str, scope: &str, all: &HashSet<String>) -> Kind {
        if SCALARS.contains(&t) {
            return Kind::Scalar(t.to_string());
        }
        if t.starts_with('.') {
            return Kind::Named(t.to_string());
        }
        let mut s = scope.to_string();
        loop {
            let cand = join(&s, t);
            if all.contains(&cand) {
                return Kind::Named(cand);
            }
            match s.rfind('.') {
                Some(0) | None => break,
                Some(i) => s.truncate(i),
            }
        }
        let top = format!(".{t}");
        Kind::Named(top)
    }

    fn enumeration(p: &mut P, scope: &str, file: &mut File) -> Result<(), String> {
        let name = p.word()?;
        let full = join(scope, &name);
        p.sym('{')?;
        let mut values = BTreeMap::new();
        while !p.eat('}') {
            match p.next()? {
                Tok::Sym(';') => {}
                Tok::Word(w) if w == "option" || w == "reserved" => p.skip()?,
                Tok::Word(w) => {
                    p.sym('=')?;
                    let n: i32 = p
                        .word()?
                        .parse()
                        .map_err(|_| format!("bad enum number for {w}"))?;
                    if p.peek() == Some(&Tok::Sym('[')) {
                        while p.next()? != Tok::Sym(']') {}
                    }
                    p.sym(';')?;
                    values.insert(n, w);
                }
                t => return Err(format!("unexpected {t:?} in enum {name}")),
            }
        }
        file.enums.insert(full, values);
        Ok(())
    }

    fn message(
        p: &mut P,
        scope: &str,
        proto3: bool,
        file: &mut File,
        fields: &mut Vec<RawField>,
        depth: usize,
    ) -> Result<(), String> {
        let name = p.word()?;
        let full = join(scope, &name);
        file.messages.entry(full.clone()).or_default();
        p.sym('{')?;
        body(p, &full, proto3, file, fields, None, depth + 1)
    }

    fn body(
        p: &mut P,
        full: &str,
        proto3: bool,
        file: &mut File,
        fields: &mut Vec<RawField>,
        oneof: Option<&str>,
        depth: usize,
    ) -> Result<(), String> {
        if depth > MAX_DEPTH {
            return Err("messages nest too deeply".into());
        }
        while !p.eat('}') {
            let t = p.next()?;
            let Tok::Word(w) = t else {
                if t == Tok::Sym(';') {
                    continue;
                }
                return Err(format!("unexpected {t:?} in message {full}"));
            };
            match w.as_str() {
                "message" if oneof.is_none() => message(p, full, proto3, file, fields, depth)?,
                "enum" => enumeration(p, full, file)?,
                "option" | "reserved" | "extensions" | "extend" => p.skip()?,
                "oneof" if oneof.is_none() => {
                    let o = p.word()?;
                    p.sym('{')?;
                    body(p, full, proto3, file, fields, Some(&o), depth + 1)?;
                }
                "map" => {
                    p.sym('<')?;
                    let k = p.word()?;
                    p.sym(',')?;
                    let v = p.word()?;
                    p.sym('>')?;
                    field_rest(p, full, Label::Repeated, RawKind::Map(k, v), oneof, fields)?;
                }
                _ => {
                    let (label, ty) = match w.as_str() {
                        "optional" => (Label::Optional, p.word()?),
                        "required" => (Label::Required, p.word()?),
                        "repeated" => (Label::Repeated, p.word()?),
                        _ => (Label::Optional, w.clone()),
                    };
                    if ty == "group" {
                        return Err("proto2 groups are not supported".into());
                    }
                    field_rest(p, full, label, RawKind::Plain(ty), oneof, fields)?;
                }
            }
        }
        Ok(())
    }

    fn field_rest(
        p: &mut P,
        scope: &str,
        label: Label,
        raw_kind: RawKind,
        oneof: Option<&str>,
        fields: &mut Vec<RawField>,
    ) -> Result<(), String> {
        let name = p.word()?;
        p.sym('=')?;
        let number: i32 = p
            .word()?
            .parse()
            .map_err(|_| format!("bad field number for {name}"))?;
        if !(1..=536_870_911).contains(&number) {
            return Err(format!("field number {number} of {name} is out of range"));
        }
        if p.peek() == Some(&Tok::Sym('[')) {
            while p.next()? != Tok::Sym(']') {}
        }
        p.sym(';')?;
        if fields
            .iter()
            .any(|f| f.scope == scope && f.number == number)
        {
            return Err(format!("field number {number} is used twice in {scope}"));
        }
        fields.push(RawField {
            scope: scope.to_string(),
            number,
            def: FieldDef {
                name,
                label,
                kind: Kind::Scalar(String::new()),
                oneof: oneof.map(str::to_string),
            },
            raw_kind,
        });
        Ok(())
    }
}

mod descriptor {
    //! A binary `FileDescriptorProto`, read with a minimal wire decoder.

    use super::*;

    struct R<'a>(&'a [u8]);

    enum V<'a> {
        Int(u64),
        Bytes(&'a [u8]),
    }

    impl<'a> R<'a> {
        fn varint(&mut self) -> Result<u64, String> {
            let mut v = 0u64;
            for shift in (0..64).step_by(7) {
                let (&b, rest) = self.0.split_first().ok_or("truncated varint")?;
                self.0 = rest;
                v |= u64::from(b & 0x7f) << shift;
                if b & 0x80 == 0 {
                    return Ok(v);
                }
            }
            Err("varint too long".into())
        }
        fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
            if self.0.len() < n {
                return Err("truncated field".into());
            }
            let (a, b) = self.0.split_at(n);
            self.0 = b;
            Ok(a)
        }
        fn field(&mut self) -> Result<Option<(u64, V<'a>)>, String> {
            if self.0.is_empty() {
                return Ok(None);
            }
            let key = self.varint()?;
            let v = match key & 7 {
                0 => V::Int(self.varint()?),
                1 => V::Bytes(self.take(8)?),
                2 => {
                    let n = usize::try_from(self.varint()?).map_err(|_| "length too large")?;
                    V::Bytes(self.take(n)?)
                }
                5 => V::Bytes(self.take(4)?),
                t => return Err(format!("unsupported wire type {t}")),
            };
            Ok(Some((key >> 3, v)))
        }
    }

    fn string(b: &[u8]) -> Result<String, String> {
        String::from_utf8(b.to_vec()).map_err(|_| "invalid UTF-8".to_string())
    }

    const TYPES: [&str; 19] = [
        "", "double", "float", "int64", "uint64", "int32", "fixed64", "fixed32", "bool", "string",
        "group", "message", "bytes", "uint32", "enum", "sfixed32", "sfixed64", "sint32", "sint64",
    ];

    pub fn file(bytes: &[u8]) -> Result<File, String> {
        let mut f = File::default();
        let mut r = R(bytes);
        let mut msgs = Vec::new();
        let mut enums = Vec::new();
        let mut saw_name = false;
        while let Some((n, v)) = r.field()? {
            match (n, v) {
                (1, V::Bytes(_)) => saw_name = true,
                (2, V::Bytes(b)) => f.package = string(b)?,
                (4, V::Bytes(b)) => msgs.push(b),
                (5, V::Bytes(b)) => enums.push(b),
                _ => {}
            }
        }
        if !saw_name {
            return Err("not a FileDescriptorProto".into());
        }
        let scope = format!(".{}", f.package);
        let mut entries = HashMap::new();
        for m in msgs {
            message(m, &scope, &mut f, &mut entries, 0)?;
        }
        for e in enums {
            enumeration(e, &scope, &mut f)?;
        }
        // Map fields refer to synthetic entry messages: fold them back.
        for fields in f.messages.values_mut() {
            for def in fields.values_mut() {
                if let Kind::Named(n) = &def.kind {
                    if let Some((k, v)) = entries.get(n) {
                        def.kind = Kind::Map(Box::new(k.clone()), Box::new(v.clone()));
                    }
                }
            }
        }
        for n in entries.keys() {
            f.messages.remove(n);
        }
        Ok(f)
    }

    fn join(scope: &str, name: &str) -> String {
        if scope == "." {
            format!(".{name}")
        } else {
            format!("{scope}.{name}")
        }
    }

    fn message(
        b: &[u8],
        scope: &str,
        f: &mut File,
        entries: &mut HashMap<String, (Kind, Kind)>,
        depth: usize,
    ) -> Result<(), String> {
        if depth > MAX_DEPTH {
            return Err("messages nest too deeply".into());
        }
        let mut r = R(b);
        let mut name = String::new();
        let mut raw_fields = Vec::new();
        let mut nested = Vec::new();
        let mut nested_enums = Vec::new();
        let mut oneofs = Vec::new();
        let mut map_entry = false;
        while let Some((n, v)) = r.field()? {
            match (n, v) {
                (1, V::Bytes(x)) => name = string(x)?,
                (2, V::Bytes(x)) => raw_fields.push(x),
                (3, V::Bytes(x)) => nested.push(x),
                (4, V::Bytes(x)) => nested_enums.push(x),
                (8, V::Bytes(x)) => {
                    let mut o = R(x);
                    let mut oname = String::new();
                    while let Some((n, v)) = o.field()? {
                        if let (1, V::Bytes(s)) = (n, v) {
                            oname = string(s)?;
                        }
                    }
                    oneofs.push(oname);
                }
                (7, V::Bytes(x)) => {
                    let mut o = R(x);
                    while let Some((n, v)) = o.field()? {
                        if let (7, V::Int(1)) = (n, v) {
                            map_entry = true;
                        }
                    }
                }
                _ => {}
            }
        }
        let full = join(scope, &name);
        let mut fields = BTreeMap::new();
        for x in raw_fields {
            let mut r = R(x);
            let (mut fname, mut number, mut label, mut ty, mut type_name) =
                (String::new(), 0i32, 1u64, 0usize, String::new());
            let (mut oneof, mut synthetic) = (None, false);
            while let Some((n, v)) = r.field()? {
                match (n, v) {
                    (1, V::Bytes(s)) => fname = string(s)?,
                    (3, V::Int(i)) => number = i32::try_from(i).map_err(|_| "bad field number")?,
                    (4, V::Int(i)) => label = i,
                    (5, V::Int(i)) => ty = usize::try_from(i).unwrap_or(0),
                    (6, V::Bytes(s)) => type_name = string(s)?,
                    (9, V::Int(i)) => oneof = usize::try_from(i).ok(),
                    (17, V::Int(i)) => synthetic = i != 0,
                    _ => {}
                }
            }
            let kind = match TYPES.get(ty) {
                Some(&"message") | Some(&"enum") | Some(&"group") => Kind::Named(type_name),
                Some(s) if !s.is_empty() => Kind::Scalar((*s).to_string()),
                _ => return Err(format!("field {fname} has an unknown type {ty}")),
            };
            fields.insert(
                number,
                FieldDef {
                    name: fname,
                    label: match label {
                        2 => Label::Required,
                        3 => Label::Repeated,
                        _ => Label::Optional,
                    },
                    kind,
                    oneof: if synthetic {
                        None
                    } else {
                        oneof.and_then(|i| oneofs.get(i).cloned())
                    },
                },
            );
        }
        if map_entry {
            let k = fields
                .get(&1)
                .map(|d| d.kind.clone())
                .ok_or("map entry without key")?;
            let v = fields
                .get(&2)
                .map(|d| d.kind.clone())
                .ok_or("map entry without value")?;
            entries.insert(full.clone(), (k, v));
        }
        f.messages.insert(full.clone(), fields);
        for m in nested {
            message(m, &full, f, entries, depth + 1)?;
        }
        for e in nested_enums {
            enumeration(e, &full, f)?;
        }
        Ok(())
    }

    fn enumeration(b: &[u8], scope: &str, f: &mut File) -> Result<(), String> {
        let mut r = R(b);
        let mut name = String::new();
        let mut values = BTreeMap::new();
        while let Some((n, v)) = r.field()? {
            match (n, v) {
                (1, V::Bytes(x)) => name = string(x)?,
                (2, V::Bytes(x)) => {
                    let mut e = R(x);
                    let (mut vname, mut num) = (String::new(), 0i32);
                    while let Some((n, v)) = e.field()? {
                        match (n, v) {
                            (1, V::Bytes(s)) => vname = string(s)?,
                            // int32 is sign-extended to 64 bits on the wire.
                            (2, V::Int(i)) => num = i as i32,
                            _ => {}
                        }
                    }
                    values.insert(num, vname);
                }
                _ => {}
            }
        }
        f.enums.insert(join(scope, &name), values);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert!(descriptor::file(&file).is_err());
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
