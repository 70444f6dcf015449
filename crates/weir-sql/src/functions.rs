//! ksqlDB's built-in scalar functions: signatures (for type checking,
//! `SHOW FUNCTIONS` and `DESCRIBE FUNCTION`) and implementations.
//! Aggregates are in `aggregate.rs`.
//!
//! A function refusing its input (a bad pattern, an unparsable date)
//! yields NULL, as ksqlDB's do.

use std::collections::BTreeSet;

use crate::expr::{cast_value, Ctx, Node};
use crate::time;
use crate::types::{format_double, SqlType, Value};

pub use crate::aggregate::{aggregate, Aggregate, AGGREGATES};

/// An argument pattern.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum P {
    Bool,
    Int,
    Bigint,
    Double,
    Str,
    Bytes,
    Ts,
    Date,
    Time,
    /// Any numeric type, kept as is.
    Num,
    Any,
    /// Any array.
    Arr,
    /// Any map.
    Map,
    /// A lambda.
    Lambda,
}

/// How the return type follows from the arguments.
#[derive(Debug, Clone, Copy)]
pub enum R {
    Fixed(P),
    /// The type of argument i.
    Arg(usize),
    /// The element type of array argument i.
    Elem(usize),
    /// An array of argument i's type.
    ArrOf(usize),
    /// An array of strings.
    StrArr,
    /// A map of string to string.
    StrMap,
    /// The key array of map argument i.
    MapKeys(usize),
    /// The value array of map argument i.
    MapValues(usize),
    /// An array of lambda i's result type.
    ArrOfLambda(usize),
    /// Lambda i's result type.
    Lambda(usize),
    /// Argument i's array or map type with lambda j's result as elements.
    Transform(usize, usize),
    /// An array of `STRUCT<K, V>` entries of map argument i.
    Entries(usize),
    /// A map from argument i's type to argument j's type.
    MapOf(usize, usize),
    /// A map from array argument i's elements to array argument j's.
    MapOfElems(usize, usize),
}

/// One signature.
#[derive(Debug, Clone, Copy)]
pub struct Sig {
    pub params: &'static [(&'static str, P)],
    /// The last parameter repeats.
    pub variadic: bool,
    pub ret: R,
}

/// How a function computes.
#[derive(Debug, Clone, Copy)]
pub enum Imp {
    /// From evaluated arguments.
    Values(fn(&[Value]) -> Value),
    /// From argument nodes (lambdas, lazy evaluation).
    Nodes(fn(&[Node], &mut Ctx<'_>) -> Value),
}

/// A scalar function.
#[derive(Debug)]
pub struct Scalar {
    pub name: &'static str,
    pub category: &'static str,
    pub description: &'static str,
    pub sigs: &'static [Sig],
    pub imp: Imp,
}

fn p_type(p: P) -> Option<SqlType> {
    Some(match p {
        P::Bool => SqlType::Boolean,
        P::Int => SqlType::Int,
        P::Bigint => SqlType::Bigint,
        P::Double => SqlType::Double,
        P::Str => SqlType::String,
        P::Bytes => SqlType::Bytes,
        P::Ts => SqlType::Timestamp,
        P::Date => SqlType::Date,
        P::Time => SqlType::Time,
        _ => return None,
    })
}

/// A parameter pattern's type name for DESCRIBE FUNCTION.
pub fn p_name(p: P) -> &'static str {
    match p {
        P::Num => "NUMBER",
        P::Any => "T",
        P::Arr => "ARRAY<T>",
        P::Map => "MAP<K, V>",
        P::Lambda => "LAMBDA",
        p => p_type(p).map_or("?", |t| t.rest_name()),
    }
}

fn matches(p: P, t: &SqlType, null: bool) -> Option<Option<SqlType>> {
    if null {
        return Some(p_type(p));
    }
    match p {
        P::Any | P::Lambda => Some(None),
        P::Num if t.is_numeric() => Some(None),
        P::Arr if matches!(t, SqlType::Array(_)) => Some(None),
        P::Map if matches!(t, SqlType::Map(..)) => Some(None),
        _ => {
            let want = p_type(p)?;
            if *t == want {
                Some(None)
            } else if t.widens_to(&want) {
                Some(Some(want))
            } else {
                None
            }
        }
    }
}

fn ret_type(r: R, args: &[SqlType]) -> Option<SqlType> {
    let arg = |i: usize| args.get(i).cloned();
    Some(match r {
        R::Fixed(p) => p_type(p)?,
        R::Arg(i) => arg(i)?,
        R::Elem(i) => match arg(i)? {
            SqlType::Array(e) => *e,
            _ => return None,
        },
        R::ArrOf(i) => SqlType::Array(Box::new(arg(i)?)),
        R::StrArr => SqlType::Array(Box::new(SqlType::String)),
        R::StrMap => SqlType::Map(Box::new(SqlType::String), Box::new(SqlType::String)),
        R::MapKeys(i) => match arg(i)? {
            SqlType::Map(k, _) => SqlType::Array(k),
            _ => return None,
        },
        R::MapValues(i) => match arg(i)? {
            SqlType::Map(_, v) => SqlType::Array(v),
            _ => return None,
        },
        R::ArrOfLambda(i) => SqlType::Array(Box::new(arg(i)?)),
        R::Lambda(i) => arg(i)?,
        R::Transform(i, j) => match arg(i)? {
            SqlType::Array(_) => SqlType::Array(Box::new(arg(j)?)),
            m @ SqlType::Map(..) => m,
            _ => return None,
        },
        R::MapOf(i, j) => SqlType::Map(Box::new(arg(i)?), Box::new(arg(j)?)),
        R::MapOfElems(i, j) => match (arg(i)?, arg(j)?) {
            (SqlType::Array(k), SqlType::Array(v)) => SqlType::Map(k, v),
            _ => return None,
        },
        R::Entries(i) => match arg(i)? {
            SqlType::Map(k, v) => SqlType::Array(Box::new(SqlType::Struct(vec![
                ("K".into(), *k),
                ("V".into(), *v),
            ]))),
            _ => return None,
        },
    })
}

/// Argument types after widening.
fn effective(args: &[SqlType], widen: &[Option<SqlType>]) -> Vec<SqlType> {
    args.iter()
        .zip(widen)
        .map(|(a, w)| w.clone().unwrap_or_else(|| a.clone()))
        .collect()
}

/// Resolves against a function's signatures.
pub fn resolve_sigs(
    sigs: &[Sig],
    args: &[SqlType],
    nulls: &[bool],
) -> Result<(SqlType, Vec<Option<SqlType>>), String> {
    'sig: for sig in sigs {
        let n = sig.params.len();
        if (!sig.variadic && args.len() != n) || (sig.variadic && args.len() + 1 < n) {
            continue;
        }
        let mut widen = Vec::with_capacity(args.len());
        for (i, t) in args.iter().enumerate() {
            let p = sig.params[i.min(n - 1)].1;
            match matches(p, t, nulls.get(i).copied().unwrap_or(false)) {
                Some(w) => widen.push(w),
                None => continue 'sig,
            }
        }
        // Variadic arguments of `Any` must agree with each other.
        if sig.variadic && sig.params[n - 1].1 == P::Any {
            let rest: Vec<&SqlType> = args
                .iter()
                .enumerate()
                .skip(n - 1)
                .filter(|(i, _)| !nulls.get(*i).copied().unwrap_or(false))
                .map(|(_, t)| t)
                .collect();
            let mut acc: Option<SqlType> = None;
            for t in &rest {
                acc = Some(match acc {
                    None => (*t).clone(),
                    Some(a) if a == **t => a,
                    Some(a) => match SqlType::wider(&a, t) {
                        Some(w) => w,
                        None => continue 'sig,
                    },
                });
            }
            if let Some(common) = acc {
                for (i, t) in args.iter().enumerate().skip(n - 1) {
                    if *t != common {
                        widen[i] = Some(common.clone());
                    }
                }
                if let Some(r) = ret_type(sig.ret, &effective(args, &widen)) {
                    return Ok((r, widen));
                }
                continue;
            }
        }
        if let Some(r) = ret_type(sig.ret, &effective(args, &widen)) {
            return Ok((r, widen));
        }
    }
    Err(format!(
        "\nValid alternatives are:\n{}",
        sigs.iter().map(sig_text).collect::<Vec<_>>().join("\n")
    ))
}

/// `name TYPE, ...` of a signature.
pub fn sig_text(sig: &Sig) -> String {
    sig.params
        .iter()
        .enumerate()
        .map(|(i, (n, p))| {
            let dots = if sig.variadic && i + 1 == sig.params.len() {
                "..."
            } else {
                ""
            };
            format!("{n} {}{dots}", p_name(*p))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The return type of a signature as text.
pub fn ret_text(r: R) -> String {
    match r {
        R::Fixed(p) => p_name(p).to_string(),
        R::Arg(_) | R::Lambda(_) => "T".into(),
        R::Elem(_) => "T".into(),
        R::ArrOf(_) | R::ArrOfLambda(_) => "ARRAY<T>".into(),
        R::StrArr => "ARRAY<STRING>".into(),
        R::StrMap => "MAP<STRING, STRING>".into(),
        R::MapKeys(_) => "ARRAY<K>".into(),
        R::MapValues(_) => "ARRAY<V>".into(),
        R::Transform(..) => "ARRAY<R> or MAP<K, V>".into(),
        R::Entries(_) => "ARRAY<STRUCT<K, V>>".into(),
        R::MapOf(..) | R::MapOfElems(..) => "MAP<K, V>".into(),
    }
}

/// The parameter types of a lambda argument, from the other arguments.
pub fn lambda_params(
    name: &str,
    known: &[Option<SqlType>],
    at: usize,
    count: usize,
) -> Option<Vec<SqlType>> {
    let first = known.first()?.clone()?;
    let out = match (name, first, at, count) {
        ("TRANSFORM" | "FILTER", SqlType::Array(e), 1, 1) => vec![*e],
        ("TRANSFORM", SqlType::Map(k, v), 1 | 2, 2) => vec![*k, *v],
        ("FILTER", SqlType::Map(k, v), 1, 2) => vec![*k, *v],
        ("REDUCE", SqlType::Array(e), 2, 2) => vec![known.get(1)?.clone()?, *e],
        ("REDUCE", SqlType::Map(k, v), 2, 3) => vec![known.get(1)?.clone()?, *k, *v],
        ("ARRAY_SORT", SqlType::Array(e), 1, 2) => vec![(*e).clone(), *e],
        _ => return None,
    };
    Some(out)
}

fn eval_values(nodes: &[Node], ctx: &mut Ctx<'_>, f: fn(&[Value]) -> Value) -> Value {
    let args: Vec<Value> = nodes.iter().map(|n| n.eval_in(ctx)).collect();
    f(&args)
}

macro_rules! scalar {
    ($name:literal, $cat:literal, $desc:literal, [$($sig:expr),+ $(,)?], values $f:expr) => {
        Scalar {
            name: $name,
            category: $cat,
            description: $desc,
            sigs: &[$($sig),+],
            imp: Imp::Values($f),
        }
    };
    ($name:literal, $cat:literal, $desc:literal, [$($sig:expr),+ $(,)?], nodes $f:expr) => {
        Scalar {
            name: $name,
            category: $cat,
            description: $desc,
            sigs: &[$($sig),+],
            imp: Imp::Nodes($f),
        }
    };
}

const fn sig(params: &'static [(&'static str, P)], ret: R) -> Sig {
    Sig {
        params,
        variadic: false,
        ret,
    }
}

const fn var(params: &'static [(&'static str, P)], ret: R) -> Sig {
    Sig {
        params,
        variadic: true,
        ret,
    }
}

impl Scalar {
    /// Type-checks a call.
    pub fn check(
        &self,
        args: &[SqlType],
        nulls: &[bool],
    ) -> Result<(SqlType, Vec<Option<SqlType>>), String> {
        resolve_sigs(self.sigs, args, nulls)
    }

    /// Evaluates a call.
    pub fn call(&self, nodes: &[Node], ctx: &mut Ctx<'_>) -> Value {
        match self.imp {
            Imp::Values(f) => eval_values(nodes, ctx, f),
            Imp::Nodes(f) => f(nodes, ctx),
        }
    }
}

/// Looks a scalar function up by name (any case).
pub fn scalar(name: &str) -> Option<&'static Scalar> {
    let up = name.to_ascii_uppercase();
    SCALARS.iter().find(|s| s.name == up)
}

// ---- helpers ----

fn s(v: &Value) -> Option<&str> {
    v.as_str()
}

fn i(v: &Value) -> Option<i64> {
    v.as_i64()
}

fn f(v: &Value) -> Option<f64> {
    v.as_f64()
}

fn st(s: impl Into<String>) -> Value {
    Value::String(s.into())
}

fn opt_str(o: Option<String>) -> Value {
    o.map_or(Value::Null, Value::String)
}

/// Applies `op` to a numeric value, keeping its type.
fn num_keep(
    v: &Value,
    int: fn(i64) -> i64,
    dbl: fn(f64) -> f64,
    dec: fn(i128, i128) -> i128,
) -> Value {
    match v {
        Value::Int(x) => Value::Int(int(i64::from(*x)) as i32),
        Value::Bigint(x) => Value::Bigint(int(*x)),
        Value::Double(x) => Value::Double(dbl(*x)),
        // `dec` maps the unscaled value, given 10^scale.
        Value::Decimal(d) => match 10i128.checked_pow(d.scale) {
            Some(one) => Value::Decimal(crate::decimal::Dec::new(dec(d.unscaled, one), d.scale)),
            None => Value::Null,
        },
        _ => Value::Null,
    }
}

fn dbl(v: &Value, op: fn(f64) -> f64) -> Value {
    f(v).map_or(Value::Null, |x| Value::Double(op(x)))
}

/// Standard base64 (RFC 4648) with padding.
pub fn base64_encode(bytes: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for k in 0..4 {
            if k <= chunk.len() {
                out.push(T[(n >> (18 - 6 * k) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Decodes standard base64 (padding optional).
pub fn base64_decode(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let mut acc = 0u32;
    let mut bits = 0;
    for c in text.trim_end_matches('=').bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' | b'-' => 62,
            b'/' | b'_' => 63,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

fn hex_encode(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn hex_decode(text: &str) -> Option<Vec<u8>> {
    let t = text
        .strip_prefix("0x")
        .or_else(|| text.strip_prefix("0X"))
        .unwrap_or(text);
    if t.len() % 2 != 0 {
        return None;
    }
    (0..t.len())
        .step_by(2)
        .map(|k| u8::from_str_radix(&t[k..k + 2], 16).ok())
        .collect()
}

fn bytes_as(b: &[u8], encoding: &str) -> Option<String> {
    match encoding.to_ascii_lowercase().as_str() {
        "hex" => Some(hex_encode(b)),
        "utf8" | "utf-8" => String::from_utf8(b.to_vec()).ok(),
        "ascii" => b
            .is_ascii()
            .then(|| String::from_utf8_lossy(b).into_owned()),
        "base64" => Some(base64_encode(b)),
        _ => None,
    }
}

fn str_as_bytes(s: &str, encoding: &str) -> Option<Vec<u8>> {
    match encoding.to_ascii_lowercase().as_str() {
        "hex" => hex_decode(s),
        "utf8" | "utf-8" => Some(s.as_bytes().to_vec()),
        "ascii" => s.is_ascii().then(|| s.as_bytes().to_vec()),
        "base64" => base64_decode(s),
        _ => None,
    }
}

/// Java's `Math.round` for doubles: half up.
fn round_half_up(x: f64) -> f64 {
    (x + 0.5).floor()
}

/// Extracts with a JSONPath-like `$.a.b[0]` path.
fn json_path<'a>(root: &'a serde_json::Value, path: &str) -> Option<&'a serde_json::Value> {
    let p = path.trim();
    let p = p.strip_prefix('$').unwrap_or(p);
    let mut cur = root;
    let mut rest = p;
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix('.') {
            let end = r.find(['.', '[']).unwrap_or(r.len());
            cur = cur.get(&r[..end])?;
            rest = &r[end..];
        } else if let Some(r) = rest.strip_prefix('[') {
            let end = r.find(']')?;
            let inner = r[..end].trim_matches(|c| c == '\'' || c == '"');
            cur = match inner.parse::<usize>() {
                Ok(idx) => cur.get(idx)?,
                Err(_) => cur.get(inner)?,
            };
            rest = &r[end + 1..];
        } else {
            return None;
        }
    }
    Some(cur)
}

/// A URL's parts: scheme, host, port, path, query, fragment.
type UrlParts = (
    String,
    String,
    Option<i64>,
    String,
    Option<String>,
    Option<String>,
);

fn url_parts(u: &str) -> Option<UrlParts> {
    let (scheme, rest) = u.split_once("://")?;
    let (rest, fragment) = match rest.split_once('#') {
        Some((r, f)) => (r, Some(f.to_string())),
        None => (rest, None),
    };
    let (rest, query) = match rest.split_once('?') {
        Some((r, q)) => (r, Some(q.to_string())),
        None => (rest, None),
    };
    let (authority, path) = match rest.find('/') {
        Some(k) => (&rest[..k], rest[k..].to_string()),
        None => (rest, String::new()),
    };
    let hostport = authority.rsplit('@').next().unwrap_or(authority);
    let (host, port) = match hostport.rsplit_once(':') {
        Some((h, p)) if p.bytes().all(|b| b.is_ascii_digit()) && !p.is_empty() => {
            (h.to_string(), p.parse().ok())
        }
        _ => (hostport.to_string(), None),
    };
    Some((scheme.to_string(), host, port, path, query, fragment))
}

fn url_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut k = 0;
    while k < b.len() {
        match b[k] {
            b'+' => out.push(b' '),
            b'%' => {
                let h = std::str::from_utf8(b.get(k + 1..k + 3)?).ok()?;
                out.push(u8::from_str_radix(h, 16).ok()?);
                k += 2;
            }
            c => out.push(c),
        }
        k += 1;
    }
    String::from_utf8(out).ok()
}

fn url_encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'.' | b'-' | b'*' | b'_' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

fn mask_char(c: char, upper: &str, lower: &str, digit: &str, other: &str) -> String {
    if c.is_uppercase() {
        upper.to_string()
    } else if c.is_lowercase() {
        lower.to_string()
    } else if c.is_ascii_digit() {
        digit.to_string()
    } else {
        other.to_string()
    }
}

/// MASK family: chars with index in `range` are masked; the optional
/// arguments after `skip` give the replacement characters.
fn mask(args: &[Value], skip: usize, range: impl Fn(usize, usize) -> bool) -> Value {
    let Some(text) = args.first().and_then(s) else {
        return Value::Null;
    };
    let arg = |k: usize, d: &'static str| -> String {
        match args.get(skip + k) {
            Some(Value::Null) => String::new(),
            Some(Value::String(v)) => v.chars().next().map(String::from).unwrap_or_default(),
            _ => d.to_string(),
        }
    };
    let (u, l, d, o) = (arg(0, "X"), arg(1, "x"), arg(2, "n"), arg(3, "-"));
    let n = text.chars().count();
    let out: String = text
        .chars()
        .enumerate()
        .map(|(idx, c)| {
            if range(idx, n) {
                let m = mask_char(c, &u, &l, &d, &o);
                if m.is_empty() {
                    c.to_string()
                } else {
                    m
                }
            } else {
                c.to_string()
            }
        })
        .collect();
    st(out)
}

fn pad(args: &[Value], left: bool) -> Value {
    let (Some(text), Some(len), Some(padding)) = (args[0].as_str(), i(&args[1]), args[2].as_str())
    else {
        return Value::Null;
    };
    if len < 0 || padding.is_empty() {
        return Value::Null;
    }
    let len = len as usize;
    let chars: Vec<char> = text.chars().collect();
    if chars.len() >= len {
        return st(chars[..len].iter().collect::<String>());
    }
    let fill: String = padding.chars().cycle().take(len - chars.len()).collect();
    st(if left {
        fill + text
    } else {
        text.to_string() + &fill
    })
}

fn substring(args: &[Value]) -> Value {
    let Some(text) = args[0].as_str() else {
        return Value::Null;
    };
    let chars: Vec<char> = text.chars().collect();
    let n = chars.len() as i64;
    let Some(pos) = i(&args[1]) else {
        return Value::Null;
    };
    // 1-based; negative counts from the end.
    let start = if pos > 0 {
        pos - 1
    } else if pos < 0 {
        (n + pos).max(0)
    } else {
        0
    };
    let len = match args.get(2) {
        Some(v) => match i(v) {
            Some(l) => l,
            None => return Value::Null,
        },
        None => n,
    };
    let start = start.clamp(0, n);
    let end = (start + len.max(0)).clamp(0, n);
    st(chars[start as usize..end as usize]
        .iter()
        .collect::<String>())
}

fn array_items(v: &Value) -> Option<&Vec<Value>> {
    match v {
        Value::Array(a) => Some(a),
        _ => None,
    }
}

fn distinct(items: impl IntoIterator<Item = Value>) -> Vec<Value> {
    let mut out: Vec<Value> = Vec::new();
    for v in items {
        if !out.contains(&v) {
            out.push(v);
        }
    }
    out
}

fn sorted(mut items: Vec<Value>, desc: bool) -> Vec<Value> {
    // NULLs last, as ksqlDB's ARRAY_SORT.
    items.sort_by(|a, b| match (a.is_null(), b.is_null()) {
        (true, true) => std::cmp::Ordering::Equal,
        (true, false) => std::cmp::Ordering::Greater,
        (false, true) => std::cmp::Ordering::Less,
        _ => {
            let o = a.total_cmp(b);
            if desc {
                o.reverse()
            } else {
                o
            }
        }
    });
    items
}

fn days_of(v: &Value) -> Option<i64> {
    match v {
        Value::Date(d) => Some(i64::from(*d)),
        _ => None,
    }
}

fn zone(args: &[Value], at: usize) -> Option<i64> {
    match args.get(at) {
        None => Some(0),
        Some(Value::String(z)) => time::zone_offset_ms(z),
        _ => None,
    }
}

fn greatest_least(args: &[Value], greatest: bool) -> Value {
    let mut best: Option<&Value> = None;
    for a in args.iter().filter(|a| !a.is_null()) {
        best = match best {
            None => Some(a),
            Some(b) => {
                let o = a.total_cmp(b);
                if (greatest && o.is_gt()) || (!greatest && o.is_lt()) {
                    Some(a)
                } else {
                    Some(b)
                }
            }
        };
    }
    best.cloned().unwrap_or(Value::Null)
}

fn lambda_of(nodes: &[Node], at: usize) -> Option<&Node> {
    match nodes.get(at) {
        Some(Node::Lambda(body, _)) => Some(body),
        _ => None,
    }
}

fn transform(nodes: &[Node], ctx: &mut Ctx<'_>) -> Value {
    match nodes[0].eval_in(ctx) {
        Value::Array(items) => {
            let Some(body) = lambda_of(nodes, 1) else {
                return Value::Null;
            };
            Value::Array(
                items
                    .iter()
                    .map(|v| body.call_lambda(ctx, std::slice::from_ref(v)))
                    .collect(),
            )
        }
        Value::Map(entries) => {
            let (Some(kf), Some(vf)) = (lambda_of(nodes, 1), lambda_of(nodes, 2)) else {
                return Value::Null;
            };
            Value::Map(
                entries
                    .iter()
                    .map(|(k, v)| {
                        let kv = [k.clone(), v.clone()];
                        (kf.call_lambda(ctx, &kv), vf.call_lambda(ctx, &kv))
                    })
                    .collect(),
            )
        }
        _ => Value::Null,
    }
}

fn filter(nodes: &[Node], ctx: &mut Ctx<'_>) -> Value {
    let Some(body) = lambda_of(nodes, 1) else {
        return Value::Null;
    };
    match nodes[0].eval_in(ctx) {
        Value::Array(items) => Value::Array(
            items
                .into_iter()
                .filter(|v| body.call_lambda(ctx, std::slice::from_ref(v)) == Value::Boolean(true))
                .collect(),
        ),
        Value::Map(entries) => Value::Map(
            entries
                .into_iter()
                .filter(|(k, v)| {
                    body.call_lambda(ctx, &[k.clone(), v.clone()]) == Value::Boolean(true)
                })
                .collect(),
        ),
        _ => Value::Null,
    }
}

fn reduce(nodes: &[Node], ctx: &mut Ctx<'_>) -> Value {
    let Some(body) = lambda_of(nodes, 2) else {
        return Value::Null;
    };
    let mut acc = nodes[1].eval_in(ctx);
    match nodes[0].eval_in(ctx) {
        Value::Array(items) => {
            for v in items {
                acc = body.call_lambda(ctx, &[acc, v]);
            }
            acc
        }
        Value::Map(entries) => {
            for (k, v) in entries {
                acc = body.call_lambda(ctx, &[acc, k, v]);
            }
            acc
        }
        _ => Value::Null,
    }
}

fn array_sort(nodes: &[Node], ctx: &mut Ctx<'_>) -> Value {
    let Value::Array(items) = nodes[0].eval_in(ctx) else {
        return Value::Null;
    };
    let desc = match nodes.get(1).map(|n| n.eval_in(ctx)) {
        None => false,
        Some(Value::String(d)) if d.eq_ignore_ascii_case("DESC") => true,
        Some(Value::String(d)) if d.eq_ignore_ascii_case("ASC") => false,
        Some(_) => return Value::Null,
    };
    Value::Array(sorted(items, desc))
}

fn coalesce(nodes: &[Node], ctx: &mut Ctx<'_>) -> Value {
    for n in nodes {
        let v = n.eval_in(ctx);
        if !v.is_null() {
            return v;
        }
    }
    Value::Null
}

use P::*;

/// Every scalar function, in name order.
pub static SCALARS: &[Scalar] = &[
    scalar!("ABS", "MATHEMATICAL", "Returns the absolute value of its argument.",
        [sig(&[("x", Num)], R::Arg(0))],
        values |a| num_keep(&a[0], |x| x.wrapping_abs(), f64::abs, |u, _| u.abs())),
    scalar!("ARRAY_CONCAT", "ARRAY", "Returns an array of the elements of both arrays.",
        [sig(&[("a", Arr), ("b", Arr)], R::Arg(0))],
        values |a| match (&a[0], &a[1]) {
            (Value::Null, Value::Null) => Value::Null,
            (x, y) => Value::Array(array_items(x).into_iter().flatten().chain(array_items(y).into_iter().flatten()).cloned().collect()),
        }),
    scalar!("ARRAY_CONTAINS", "ARRAY", "Returns true if the array contains the value.",
        [sig(&[("array", Arr), ("value", Any)], R::Fixed(Bool))],
        values |a| array_items(&a[0]).map_or(Value::Boolean(false), |items| Value::Boolean(items.iter().any(|v| v == &a[1] || v.sql_cmp(&a[1]).is_some_and(|o| o.is_eq()))))),
    scalar!("ARRAY_DISTINCT", "ARRAY", "Returns the distinct elements of an array, in order.",
        [sig(&[("array", Arr)], R::Arg(0))],
        values |a| array_items(&a[0]).map_or(Value::Null, |items| Value::Array(distinct(items.iter().cloned())))),
    scalar!("ARRAY_EXCEPT", "ARRAY", "Returns the distinct elements of the first array that are not in the second.",
        [sig(&[("a", Arr), ("b", Arr)], R::Arg(0))],
        values |a| match (array_items(&a[0]), array_items(&a[1])) {
            (Some(x), Some(y)) => Value::Array(distinct(x.iter().filter(|v| !y.contains(v)).cloned())),
            _ => Value::Null,
        }),
    scalar!("ARRAY_INTERSECT", "ARRAY", "Returns the distinct elements in both arrays.",
        [sig(&[("a", Arr), ("b", Arr)], R::Arg(0))],
        values |a| match (array_items(&a[0]), array_items(&a[1])) {
            (Some(x), Some(y)) => Value::Array(distinct(x.iter().filter(|v| y.contains(v)).cloned())),
            _ => Value::Null,
        }),
    scalar!("ARRAY_JOIN", "ARRAY", "Joins the array's elements as text with a delimiter (default ',').",
        [sig(&[("array", Arr)], R::Fixed(Str)), sig(&[("array", Arr), ("delimiter", Str)], R::Fixed(Str))],
        values |a| {
            let Some(items) = array_items(&a[0]) else { return Value::Null };
            let delim = a.get(1).and_then(s).unwrap_or(",");
            st(items.iter().map(Value::to_sql_string).collect::<Vec<_>>().join(delim))
        }),
    scalar!("ARRAY_LENGTH", "ARRAY", "Returns the number of elements of an array.",
        [sig(&[("array", Arr)], R::Fixed(Int))],
        values |a| array_items(&a[0]).map_or(Value::Null, |i| Value::Int(i.len() as i32))),
    scalar!("ARRAY_MAX", "ARRAY", "Returns the largest non-NULL element of an array.",
        [sig(&[("array", Arr)], R::Elem(0))],
        values |a| array_items(&a[0]).map_or(Value::Null, |i| greatest_least(i, true))),
    scalar!("ARRAY_MIN", "ARRAY", "Returns the smallest non-NULL element of an array.",
        [sig(&[("array", Arr)], R::Elem(0))],
        values |a| array_items(&a[0]).map_or(Value::Null, |i| greatest_least(i, false))),
    scalar!("ARRAY_REMOVE", "ARRAY", "Removes every element equal to the value.",
        [sig(&[("array", Arr), ("value", Any)], R::Arg(0))],
        values |a| array_items(&a[0]).map_or(Value::Null, |i| Value::Array(i.iter().filter(|v| **v != a[1]).cloned().collect()))),
    scalar!("ARRAY_SORT", "ARRAY", "Sorts an array ascending (or 'DESC'), NULLs last.",
        [sig(&[("array", Arr)], R::Arg(0)), sig(&[("array", Arr), ("direction", Str)], R::Arg(0))],
        nodes array_sort),
    scalar!("ARRAY_UNION", "ARRAY", "Returns the distinct elements of both arrays.",
        [sig(&[("a", Arr), ("b", Arr)], R::Arg(0))],
        values |a| match (array_items(&a[0]), array_items(&a[1])) {
            (Some(x), Some(y)) => Value::Array(distinct(x.iter().chain(y.iter()).cloned())),
            _ => Value::Null,
        }),
    scalar!("AS_MAP", "MAP", "Builds a map from an array of keys and an array of values.",
        [sig(&[("keys", Arr), ("values", Arr)], R::MapOfElems(0, 1))],
        values |a| match (array_items(&a[0]), array_items(&a[1])) {
            (Some(k), Some(v)) => Value::Map(k.iter().cloned().zip(v.iter().cloned()).collect()),
            _ => Value::Null,
        }),
    scalar!("CEIL", "MATHEMATICAL", "Rounds up to the nearest integer value.",
        [sig(&[("x", Num)], R::Arg(0))],
        values |a| num_keep(&a[0], |x| x, f64::ceil, |u, one| u.div_euclid(one) * one + if u.rem_euclid(one) > 0 { one } else { 0 })),
    scalar!("CHR", "STRING", "Returns the character of a Unicode code point (or a '\\uXXXX' string).",
        [sig(&[("code", Int)], R::Fixed(Str)), sig(&[("code", Str)], R::Fixed(Str))],
        values |a| match &a[0] {
            Value::Int(c) => u32::try_from(*c).ok().and_then(char::from_u32).map_or(Value::Null, |c| st(c.to_string())),
            Value::String(t) => t.strip_prefix("\\u").and_then(|h| u32::from_str_radix(h, 16).ok()).and_then(char::from_u32).map_or(Value::Null, |c| st(c.to_string())),
            _ => Value::Null,
        }),
    scalar!("COALESCE", "NULLS", "Returns the first non-NULL argument.",
        [var(&[("values", Any)], R::Arg(0))],
        nodes coalesce),
    scalar!("CONCAT", "STRING", "Concatenates strings (NULLs are skipped).",
        [var(&[("values", Str)], R::Fixed(Str)), var(&[("values", Bytes)], R::Fixed(Bytes))],
        values |a| {
            if a.iter().all(Value::is_null) { return Value::Null; }
            if a.iter().any(|v| matches!(v, Value::Bytes(_))) {
                return Value::Bytes(a.iter().filter_map(|v| match v { Value::Bytes(b) => Some(b.clone()), _ => None }).flatten().collect());
            }
            st(a.iter().filter_map(s).collect::<String>())
        }),
    scalar!("CONCAT_WS", "STRING", "Concatenates strings with a separator (NULLs are skipped).",
        [var(&[("separator", Str), ("values", Str)], R::Fixed(Str))],
        values |a| match s(&a[0]) {
            Some(sep) => st(a[1..].iter().filter_map(s).collect::<Vec<_>>().join(sep)),
            None => Value::Null,
        }),
    scalar!("CONVERT_TZ", "DATE / TIME", "Converts a TIMESTAMP from one time zone to another.",
        [sig(&[("ts", Ts), ("from_tz", Str), ("to_tz", Str)], R::Fixed(Ts))],
        values |a| match (&a[0], zone(a, 1), zone(a, 2)) {
            (Value::Timestamp(t), Some(from), Some(to)) => Value::Timestamp(t - from + to),
            _ => Value::Null,
        }),
    scalar!("DATEADD", "DATE / TIME", "Adds an interval (unit, amount) to a DATE.",
        [sig(&[("unit", Str), ("interval", Int), ("date", Date)], R::Fixed(Date))],
        values |a| match (s(&a[0]).and_then(time::unit_ms), i(&a[1]), days_of(&a[2])) {
            (Some(u), Some(n), Some(d)) if u >= 86_400_000 => Value::Date((d + n * u / 86_400_000) as i32),
            _ => Value::Null,
        }),
    scalar!("DATESUB", "DATE / TIME", "Subtracts an interval (unit, amount) from a DATE.",
        [sig(&[("unit", Str), ("interval", Int), ("date", Date)], R::Fixed(Date))],
        values |a| match (s(&a[0]).and_then(time::unit_ms), i(&a[1]), days_of(&a[2])) {
            (Some(u), Some(n), Some(d)) if u >= 86_400_000 => Value::Date((d - n * u / 86_400_000) as i32),
            _ => Value::Null,
        }),
    scalar!("ELT", "STRING", "Returns the n-th of the following strings (1-based), or NULL.",
        [var(&[("n", Int), ("values", Str)], R::Fixed(Str))],
        values |a| match i(&a[0]) {
            Some(n) if n >= 1 && (n as usize) < a.len() => a[n as usize].clone(),
            _ => Value::Null,
        }),
    scalar!("ENCODE", "STRING", "Re-encodes a string from one encoding (hex, utf8, ascii, base64) to another.",
        [sig(&[("text", Str), ("from", Str), ("to", Str)], R::Fixed(Str))],
        values |a| match (s(&a[0]), s(&a[1]), s(&a[2])) {
            (Some(t), Some(from), Some(to)) => opt_str(str_as_bytes(t, from).and_then(|b| bytes_as(&b, to))),
            _ => Value::Null,
        }),
    scalar!("ENTRIES", "MAP", "Returns the map's entries as an array of STRUCT<K, V>, optionally sorted by key.",
        [sig(&[("map", Map), ("sorted", Bool)], R::Entries(0))],
        values |a| match &a[0] {
            Value::Map(e) => {
                let mut e = e.clone();
                if a[1] == Value::Boolean(true) { e.sort_by(|x, y| x.0.total_cmp(&y.0)); }
                Value::Array(e.into_iter().map(|(k, v)| Value::Struct(vec![("K".into(), k), ("V".into(), v)])).collect())
            }
            _ => Value::Null,
        }),
    scalar!("EXP", "MATHEMATICAL", "Returns e raised to the power of x.",
        [sig(&[("x", Double)], R::Fixed(Double))],
        values |a| dbl(&a[0], f64::exp)),
    scalar!("EXTRACTJSONFIELD", "JSON", "Extracts a value from a JSON string with a JSONPath ($.a.b[0]); strings unquoted.",
        [sig(&[("json", Str), ("path", Str)], R::Fixed(Str))],
        values |a| match (s(&a[0]), s(&a[1])) {
            (Some(j), Some(p)) => match serde_json::from_str::<serde_json::Value>(j).ok().as_ref().and_then(|v| json_path(v, p)) {
                Some(serde_json::Value::String(t)) => st(t.clone()),
                Some(serde_json::Value::Null) | None => Value::Null,
                Some(v) => st(v.to_string()),
            },
            _ => Value::Null,
        }),
    scalar!("FIELD", "STRING", "Returns the 1-based position of the first argument among the others, or 0.",
        [var(&[("value", Str), ("values", Str)], R::Fixed(Int))],
        values |a| match &a[0] {
            Value::Null => Value::Int(0),
            v => Value::Int(a[1..].iter().position(|x| x == v).map_or(0, |p| p as i32 + 1)),
        }),
    scalar!("FILTER", "LAMBDA", "Keeps the elements (or entries) of an array (or map) for which the lambda is true.",
        [sig(&[("collection", Any), ("lambda", Lambda)], R::Arg(0))],
        nodes filter),
    scalar!("FLOOR", "MATHEMATICAL", "Rounds down to the nearest integer value.",
        [sig(&[("x", Num)], R::Arg(0))],
        values |a| num_keep(&a[0], |x| x, f64::floor, |u, one| u.div_euclid(one) * one)),
    scalar!("FORMAT_DATE", "DATE / TIME", "Formats a DATE with a pattern (Java DateTimeFormatter letters).",
        [sig(&[("date", Date), ("pattern", Str)], R::Fixed(Str))],
        values |a| match (days_of(&a[0]), s(&a[1])) {
            (Some(d), Some(p)) => opt_str(time::format_pattern(d * 86_400_000, p, 0).ok()),
            _ => Value::Null,
        }),
    scalar!("FORMAT_TIME", "DATE / TIME", "Formats a TIME with a pattern.",
        [sig(&[("time", Time), ("pattern", Str)], R::Fixed(Str))],
        values |a| match (&a[0], s(&a[1])) {
            (Value::Time(t), Some(p)) => opt_str(time::format_pattern(*t, p, 0).ok()),
            _ => Value::Null,
        }),
    scalar!("FORMAT_TIMESTAMP", "DATE / TIME", "Formats a TIMESTAMP with a pattern, in UTC or a given zone.",
        [sig(&[("ts", Ts), ("pattern", Str)], R::Fixed(Str)), sig(&[("ts", Ts), ("pattern", Str), ("zone", Str)], R::Fixed(Str))],
        values |a| match (&a[0], s(&a[1]), zone(a, 2)) {
            (Value::Timestamp(t), Some(p), Some(z)) => opt_str(time::format_pattern(*t, p, z).ok()),
            _ => Value::Null,
        }),
    scalar!("FROM_BYTES", "STRING", "Decodes BYTES to a string in an encoding (hex, utf8, ascii, base64).",
        [sig(&[("bytes", Bytes), ("encoding", Str)], R::Fixed(Str))],
        values |a| match (&a[0], s(&a[1])) {
            (Value::Bytes(b), Some(e)) => opt_str(bytes_as(b, e)),
            _ => Value::Null,
        }),
    scalar!("FROM_DAYS", "DATE / TIME", "Converts days since the epoch to a DATE.",
        [sig(&[("days", Int)], R::Fixed(Date))],
        values |a| i(&a[0]).map_or(Value::Null, |d| Value::Date(d as i32))),
    scalar!("FROM_UNIXTIME", "DATE / TIME", "Converts milliseconds since the epoch to a TIMESTAMP.",
        [sig(&[("ms", Bigint)], R::Fixed(Ts))],
        values |a| i(&a[0]).map_or(Value::Null, Value::Timestamp)),
    scalar!("GENERATE_SERIES", "ARRAY", "Returns the integers from start to end (inclusive), by step.",
        [sig(&[("start", Int), ("end", Int)], R::ArrOf(0)), sig(&[("start", Int), ("end", Int), ("step", Int)], R::ArrOf(0)),
         sig(&[("start", Bigint), ("end", Bigint)], R::ArrOf(0)), sig(&[("start", Bigint), ("end", Bigint), ("step", Bigint)], R::ArrOf(0))],
        values |a| {
            let (Some(from), Some(to)) = (i(&a[0]), i(&a[1])) else { return Value::Null };
            let step = a.get(2).and_then(i).unwrap_or(if to >= from { 1 } else { -1 });
            if step == 0 || (to - from).signum() * step.signum() < 0 || (to - from) / step > 1_000_000 { return Value::Null; }
            let int = matches!(a[0], Value::Int(_));
            let mut out = Vec::new();
            let mut v = from;
            while (step > 0 && v <= to) || (step < 0 && v >= to) {
                out.push(if int { Value::Int(v as i32) } else { Value::Bigint(v) });
                v += step;
            }
            Value::Array(out)
        }),
    scalar!("GREATEST", "MATHEMATICAL", "Returns the largest non-NULL argument.",
        [var(&[("values", Any)], R::Arg(0))],
        values |a| greatest_least(a, true)),
    scalar!("IFNULL", "NULLS", "Returns the first argument unless it is NULL, else the second.",
        [sig(&[("value", Any), ("default", Any)], R::Arg(0))],
        nodes coalesce),
    scalar!("INITCAP", "STRING", "Capitalizes the first letter of each word and lower-cases the rest.",
        [sig(&[("text", Str)], R::Fixed(Str))],
        values |a| s(&a[0]).map_or(Value::Null, |t| {
            let mut out = String::new();
            let mut start = true;
            for c in t.chars() {
                if c.is_whitespace() { start = true; out.push(c); }
                else if start { out.extend(c.to_uppercase()); start = false; }
                else { out.extend(c.to_lowercase()); }
            }
            st(out)
        })),
    scalar!("INSTR", "STRING", "Returns the 1-based position of a substring (from a position, for the n-th occurrence), or 0.",
        [sig(&[("text", Str), ("sub", Str)], R::Fixed(Int)), sig(&[("text", Str), ("sub", Str), ("position", Int)], R::Fixed(Int)),
         sig(&[("text", Str), ("sub", Str), ("position", Int), ("occurrence", Int)], R::Fixed(Int))],
        values |a| {
            let (Some(t), Some(sub)) = (s(&a[0]), s(&a[1])) else { return Value::Null };
            let chars: Vec<char> = t.chars().collect();
            let subc: Vec<char> = sub.chars().collect();
            let pos = a.get(2).and_then(i).unwrap_or(1);
            let occ = a.get(3).and_then(i).unwrap_or(1).max(1);
            let n = chars.len() as i64;
            let mut found = 0;
            if pos > 0 {
                let mut k = pos - 1;
                while k + subc.len() as i64 <= n {
                    if chars[k as usize..k as usize + subc.len()] == subc[..] { found += 1; if found == occ { return Value::Int(k as i32 + 1); } }
                    k += 1;
                }
            } else if pos < 0 {
                let mut k = n + pos;
                while k >= 0 {
                    if k + subc.len() as i64 <= n && chars[k as usize..k as usize + subc.len()] == subc[..] { found += 1; if found == occ { return Value::Int(k as i32 + 1); } }
                    k -= 1;
                }
            }
            Value::Int(0)
        }),
    scalar!("IS_JSON_STRING", "JSON", "Returns true if the string is valid JSON.",
        [sig(&[("text", Str)], R::Fixed(Bool))],
        values |a| Value::Boolean(s(&a[0]).is_some_and(|t| serde_json::from_str::<serde_json::Value>(t).is_ok()))),
    scalar!("JSON_ARRAY_LENGTH", "JSON", "Returns the length of a JSON array string, or NULL.",
        [sig(&[("json", Str)], R::Fixed(Int))],
        values |a| match s(&a[0]).and_then(|t| serde_json::from_str::<serde_json::Value>(t).ok()) {
            Some(serde_json::Value::Array(v)) => Value::Int(v.len() as i32),
            _ => Value::Null,
        }),
    scalar!("JSON_CONCAT", "JSON", "Merges JSON objects, or concatenates JSON arrays.",
        [var(&[("json", Str)], R::Fixed(Str))],
        values |a| {
            let parsed: Option<Vec<serde_json::Value>> = a.iter().map(|v| s(v).and_then(|t| serde_json::from_str(t).ok())).collect();
            let Some(parsed) = parsed else { return Value::Null };
            if parsed.iter().all(|v| v.is_object()) {
                let mut out = serde_json::Map::new();
                for v in parsed { if let serde_json::Value::Object(o) = v { out.extend(o); } }
                return st(serde_json::Value::Object(out).to_string());
            }
            let mut out = Vec::new();
            for v in parsed { match v { serde_json::Value::Array(items) => out.extend(items), other => out.push(other) } }
            st(serde_json::Value::Array(out).to_string())
        }),
    scalar!("JSON_KEYS", "JSON", "Returns the keys of a JSON object string.",
        [sig(&[("json", Str)], R::StrArr)],
        values |a| match s(&a[0]).and_then(|t| serde_json::from_str::<serde_json::Value>(t).ok()) {
            Some(serde_json::Value::Object(o)) => Value::Array(o.keys().map(|k| st(k.clone())).collect()),
            _ => Value::Null,
        }),
    scalar!("JSON_RECORDS", "JSON", "Returns a JSON object string's entries as a map of key to JSON text.",
        [sig(&[("json", Str)], R::StrMap)],
        values |a| match s(&a[0]).and_then(|t| serde_json::from_str::<serde_json::Value>(t).ok()) {
            Some(serde_json::Value::Object(o)) => Value::Map(o.iter().map(|(k, v)| (st(k.clone()), st(v.to_string()))).collect()),
            _ => Value::Null,
        }),
    scalar!("LCASE", "STRING", "Lower-cases a string.",
        [sig(&[("text", Str)], R::Fixed(Str))],
        values |a| s(&a[0]).map_or(Value::Null, |t| st(t.to_lowercase()))),
    scalar!("LEAST", "MATHEMATICAL", "Returns the smallest non-NULL argument.",
        [var(&[("values", Any)], R::Arg(0))],
        values |a| greatest_least(a, false)),
    scalar!("LEN", "STRING", "Returns the length of a string in characters (or of BYTES in bytes).",
        [sig(&[("text", Str)], R::Fixed(Int)), sig(&[("bytes", Bytes)], R::Fixed(Int))],
        values |a| match &a[0] {
            Value::String(t) => Value::Int(t.chars().count() as i32),
            Value::Bytes(b) => Value::Int(b.len() as i32),
            _ => Value::Null,
        }),
    scalar!("LN", "MATHEMATICAL", "Returns the natural logarithm.",
        [sig(&[("x", Double)], R::Fixed(Double))],
        values |a| dbl(&a[0], f64::ln)),
    scalar!("LPAD", "STRING", "Pads a string on the left to a length (or truncates it).",
        [sig(&[("text", Str), ("length", Int), ("padding", Str)], R::Fixed(Str))],
        values |a| pad(a, true)),
    scalar!("LTRIM", "STRING", "Removes leading whitespace.",
        [sig(&[("text", Str)], R::Fixed(Str))],
        values |a| s(&a[0]).map_or(Value::Null, |t| st(t.trim_start()))),
    scalar!("MAP_KEYS", "MAP", "Returns the keys of a map.",
        [sig(&[("map", Map)], R::MapKeys(0))],
        values |a| match &a[0] { Value::Map(e) => Value::Array(e.iter().map(|(k, _)| k.clone()).collect()), _ => Value::Null }),
    scalar!("MAP_UNION", "MAP", "Merges maps; later entries win.",
        [var(&[("maps", Map)], R::Arg(0))],
        values |a| {
            if a.iter().all(Value::is_null) { return Value::Null; }
            let mut out: Vec<(Value, Value)> = Vec::new();
            for m in a { if let Value::Map(e) = m { for (k, v) in e { match out.iter_mut().find(|(x, _)| x == k) { Some(x) => x.1 = v.clone(), None => out.push((k.clone(), v.clone())) } } } }
            Value::Map(out)
        }),
    scalar!("MAP_VALUES", "MAP", "Returns the values of a map.",
        [sig(&[("map", Map)], R::MapValues(0))],
        values |a| match &a[0] { Value::Map(e) => Value::Array(e.iter().map(|(_, v)| v.clone()).collect()), _ => Value::Null }),
    scalar!("MASK", "STRING", "Masks every character: upper X, lower x, digit n, other - (or the given replacements).",
        [sig(&[("text", Str)], R::Fixed(Str)), sig(&[("text", Str), ("upper", Str), ("lower", Str), ("digit", Str), ("other", Str)], R::Fixed(Str))],
        values |a| mask(a, 1, |_, _| true)),
    scalar!("MASK_KEEP_LEFT", "STRING", "Masks all but the first n characters.",
        [sig(&[("text", Str), ("n", Int)], R::Fixed(Str)), sig(&[("text", Str), ("n", Int), ("upper", Str), ("lower", Str), ("digit", Str), ("other", Str)], R::Fixed(Str))],
        values |a| { let n = i(&a[1]).unwrap_or(0).max(0) as usize; mask(a, 2, move |k, _| k >= n) }),
    scalar!("MASK_KEEP_RIGHT", "STRING", "Masks all but the last n characters.",
        [sig(&[("text", Str), ("n", Int)], R::Fixed(Str)), sig(&[("text", Str), ("n", Int), ("upper", Str), ("lower", Str), ("digit", Str), ("other", Str)], R::Fixed(Str))],
        values |a| { let n = i(&a[1]).unwrap_or(0).max(0) as usize; mask(a, 2, move |k, len| k + n < len) }),
    scalar!("MASK_LEFT", "STRING", "Masks the first n characters.",
        [sig(&[("text", Str), ("n", Int)], R::Fixed(Str)), sig(&[("text", Str), ("n", Int), ("upper", Str), ("lower", Str), ("digit", Str), ("other", Str)], R::Fixed(Str))],
        values |a| { let n = i(&a[1]).unwrap_or(0).max(0) as usize; mask(a, 2, move |k, _| k < n) }),
    scalar!("MASK_RIGHT", "STRING", "Masks the last n characters.",
        [sig(&[("text", Str), ("n", Int)], R::Fixed(Str)), sig(&[("text", Str), ("n", Int), ("upper", Str), ("lower", Str), ("digit", Str), ("other", Str)], R::Fixed(Str))],
        values |a| { let n = i(&a[1]).unwrap_or(0).max(0) as usize; mask(a, 2, move |k, len| k + n >= len) }),
    scalar!("NULLIF", "NULLS", "Returns NULL if both arguments are equal, else the first.",
        [sig(&[("value", Any), ("other", Any)], R::Arg(0))],
        values |a| if a[0] == a[1] || a[0].sql_cmp(&a[1]).is_some_and(|o| o.is_eq()) { Value::Null } else { a[0].clone() }),
    scalar!("PARSE_DATE", "DATE / TIME", "Parses a DATE with a pattern.",
        [sig(&[("text", Str), ("pattern", Str)], R::Fixed(Date))],
        values |a| match (s(&a[0]), s(&a[1])) {
            (Some(t), Some(p)) => time::parse_pattern(t, p, 0).map_or(Value::Null, |ms| Value::Date(ms.div_euclid(86_400_000) as i32)),
            _ => Value::Null,
        }),
    scalar!("PARSE_TIME", "DATE / TIME", "Parses a TIME with a pattern.",
        [sig(&[("text", Str), ("pattern", Str)], R::Fixed(Time))],
        values |a| match (s(&a[0]), s(&a[1])) {
            (Some(t), Some(p)) => time::parse_pattern(&format!("1970-01-01 {t}"), &format!("yyyy-MM-dd {p}"), 0).map_or(Value::Null, |ms| Value::Time(ms.rem_euclid(86_400_000))),
            _ => Value::Null,
        }),
    scalar!("PARSE_TIMESTAMP", "DATE / TIME", "Parses a TIMESTAMP with a pattern, in UTC or a given zone.",
        [sig(&[("text", Str), ("pattern", Str)], R::Fixed(Ts)), sig(&[("text", Str), ("pattern", Str), ("zone", Str)], R::Fixed(Ts))],
        values |a| match (s(&a[0]), s(&a[1]), zone(a, 2)) {
            (Some(t), Some(p), Some(z)) => time::parse_pattern(t, p, z).map_or(Value::Null, Value::Timestamp),
            _ => Value::Null,
        }),
    scalar!("POWER", "MATHEMATICAL", "Returns base raised to the power of exponent.",
        [sig(&[("base", Double), ("exponent", Double)], R::Fixed(Double))],
        values |a| match (f(&a[0]), f(&a[1])) { (Some(b), Some(e)) => Value::Double(b.powf(e)), _ => Value::Null }),
    scalar!("REDUCE", "LAMBDA", "Folds an array (or map) into a value with a lambda (state, element) => state.",
        [sig(&[("collection", Any), ("initial", Any), ("lambda", Lambda)], R::Arg(1))],
        nodes reduce),
    scalar!("REGEXP_EXTRACT", "STRING", "Returns the first match of a regular expression (or of a capture group).",
        [sig(&[("pattern", Str), ("text", Str)], R::Fixed(Str)), sig(&[("pattern", Str), ("text", Str), ("group", Int)], R::Fixed(Str))],
        values |a| match (s(&a[0]).and_then(|p| regex::Regex::new(p).ok()), s(&a[1])) {
            (Some(re), Some(t)) => {
                let g = a.get(2).and_then(i).unwrap_or(0).max(0) as usize;
                re.captures(t).and_then(|c| c.get(g)).map_or(Value::Null, |m| st(m.as_str()))
            }
            _ => Value::Null,
        }),
    scalar!("REGEXP_EXTRACT_ALL", "STRING", "Returns every match of a regular expression (or of a capture group).",
        [sig(&[("pattern", Str), ("text", Str)], R::StrArr), sig(&[("pattern", Str), ("text", Str), ("group", Int)], R::StrArr)],
        values |a| match (s(&a[0]).and_then(|p| regex::Regex::new(p).ok()), s(&a[1])) {
            (Some(re), Some(t)) => {
                let g = a.get(2).and_then(i).unwrap_or(0).max(0) as usize;
                Value::Array(re.captures_iter(t).map(|c| c.get(g).map_or(Value::Null, |m| st(m.as_str()))).collect())
            }
            _ => Value::Null,
        }),
    scalar!("REGEXP_REPLACE", "STRING", "Replaces every match of a regular expression.",
        [sig(&[("text", Str), ("pattern", Str), ("replacement", Str)], R::Fixed(Str))],
        values |a| match (s(&a[0]), s(&a[1]).and_then(|p| regex::Regex::new(p).ok()), s(&a[2])) {
            (Some(t), Some(re), Some(r)) => st(re.replace_all(t, r.replace("$", "$$").as_str()).into_owned()),
            _ => Value::Null,
        }),
    scalar!("REGEXP_SPLIT_TO_ARRAY", "STRING", "Splits a string around matches of a regular expression.",
        [sig(&[("text", Str), ("pattern", Str)], R::StrArr)],
        values |a| match (s(&a[0]), s(&a[1]).and_then(|p| regex::Regex::new(p).ok())) {
            (Some(t), Some(re)) => Value::Array(re.split(t).map(st).collect()),
            _ => Value::Null,
        }),
    scalar!("REPLACE", "STRING", "Replaces every occurrence of a substring.",
        [sig(&[("text", Str), ("old", Str), ("new", Str)], R::Fixed(Str))],
        values |a| match (s(&a[0]), s(&a[1]), s(&a[2])) { (Some(t), Some(o), Some(n)) => st(t.replace(o, n)), _ => Value::Null }),
    scalar!("ROUND", "MATHEMATICAL", "Rounds half up, to an integer or to a number of decimal places.",
        [sig(&[("x", Int)], R::Fixed(Int)), sig(&[("x", Bigint)], R::Fixed(Bigint)), sig(&[("x", Double)], R::Fixed(Bigint)),
         sig(&[("x", Double), ("places", Int)], R::Fixed(Double))],
        values |a| match (&a[0], a.get(1)) {
            (Value::Int(_) | Value::Bigint(_), None) => a[0].clone(),
            (Value::Double(x), None) => Value::Bigint(round_half_up(*x) as i64),
            (Value::Double(x), Some(p)) => match i(p) { Some(p) => { let m = 10f64.powi(p as i32); Value::Double(round_half_up(x * m) / m) } None => Value::Null },
            _ => Value::Null,
        }),
    scalar!("RPAD", "STRING", "Pads a string on the right to a length (or truncates it).",
        [sig(&[("text", Str), ("length", Int), ("padding", Str)], R::Fixed(Str))],
        values |a| pad(a, false)),
    scalar!("RTRIM", "STRING", "Removes trailing whitespace.",
        [sig(&[("text", Str)], R::Fixed(Str))],
        values |a| s(&a[0]).map_or(Value::Null, |t| st(t.trim_end()))),
    scalar!("SIGN", "MATHEMATICAL", "Returns -1, 0 or 1 by the sign of x.",
        [sig(&[("x", Num)], R::Fixed(Int))],
        values |a| f(&a[0]).map_or(Value::Null, |x| Value::Int(if x > 0.0 { 1 } else if x < 0.0 { -1 } else { 0 }))),
    scalar!("SLICE", "ARRAY", "Returns the elements from one 1-based position to another (inclusive).",
        [sig(&[("array", Arr), ("from", Int), ("to", Int)], R::Arg(0))],
        values |a| match (array_items(&a[0]), i(&a[1]), i(&a[2])) {
            (Some(items), Some(from), Some(to)) => {
                let n = items.len() as i64;
                let (from, to) = (from.max(1), to.min(n));
                if from > to { Value::Array(Vec::new()) } else { Value::Array(items[from as usize - 1..to as usize].to_vec()) }
            }
            _ => Value::Null,
        }),
    scalar!("SPLIT", "STRING", "Splits a string around a delimiter (an empty delimiter splits into characters).",
        [sig(&[("text", Str), ("delimiter", Str)], R::StrArr)],
        values |a| match (s(&a[0]), s(&a[1])) {
            (Some(t), Some("")) => Value::Array(t.chars().map(|c| st(c.to_string())).collect()),
            (Some(t), Some(d)) => Value::Array(t.split(d).map(st).collect()),
            _ => Value::Null,
        }),
    scalar!("SPLIT_TO_MAP", "STRING", "Splits 'k1=v1;k2=v2' into a map with an entry and a key-value delimiter.",
        [sig(&[("text", Str), ("entry_delimiter", Str), ("kv_delimiter", Str)], R::StrMap)],
        values |a| match (s(&a[0]), s(&a[1]), s(&a[2])) {
            (Some(t), Some(e), Some(kv)) if !e.is_empty() && !kv.is_empty() => Value::Map(
                t.split(e).filter_map(|p| p.split_once(kv)).map(|(k, v)| (st(k), st(v))).collect()),
            _ => Value::Null,
        }),
    scalar!("SQRT", "MATHEMATICAL", "Returns the square root.",
        [sig(&[("x", Double)], R::Fixed(Double))],
        values |a| dbl(&a[0], f64::sqrt)),
    scalar!("SUBSTRING", "STRING", "Returns the substring from a 1-based position (negative from the end), optionally of a length.",
        [sig(&[("text", Str), ("position", Int)], R::Fixed(Str)), sig(&[("text", Str), ("position", Int), ("length", Int)], R::Fixed(Str))],
        values substring),
    scalar!("TIMESTAMPADD", "DATE / TIME", "Adds an interval (unit, amount) to a TIMESTAMP.",
        [sig(&[("unit", Str), ("interval", Int), ("ts", Ts)], R::Fixed(Ts))],
        values |a| match (s(&a[0]).and_then(time::unit_ms), i(&a[1]), &a[2]) {
            (Some(u), Some(n), Value::Timestamp(t)) => Value::Timestamp(t + n * u),
            _ => Value::Null,
        }),
    scalar!("TIMESTAMPSUB", "DATE / TIME", "Subtracts an interval (unit, amount) from a TIMESTAMP.",
        [sig(&[("unit", Str), ("interval", Int), ("ts", Ts)], R::Fixed(Ts))],
        values |a| match (s(&a[0]).and_then(time::unit_ms), i(&a[1]), &a[2]) {
            (Some(u), Some(n), Value::Timestamp(t)) => Value::Timestamp(t - n * u),
            _ => Value::Null,
        }),
    scalar!("TIMESTAMPTOSTRING", "DATE / TIME", "Formats milliseconds since the epoch with a pattern (deprecated: FORMAT_TIMESTAMP).",
        [sig(&[("ms", Bigint), ("pattern", Str)], R::Fixed(Str)), sig(&[("ms", Bigint), ("pattern", Str), ("zone", Str)], R::Fixed(Str))],
        values |a| match (i(&a[0]), s(&a[1]), zone(a, 2)) {
            (Some(t), Some(p), Some(z)) => opt_str(time::format_pattern(t, p, z).ok()),
            _ => Value::Null,
        }),
    scalar!("TO_BYTES", "STRING", "Encodes a string to BYTES in an encoding (hex, utf8, ascii, base64).",
        [sig(&[("text", Str), ("encoding", Str)], R::Fixed(Bytes))],
        values |a| match (s(&a[0]), s(&a[1])) {
            (Some(t), Some(e)) => str_as_bytes(t, e).map_or(Value::Null, Value::Bytes),
            _ => Value::Null,
        }),
    scalar!("TO_JSON_STRING", "JSON", "Serializes any value as JSON text.",
        [sig(&[("value", Any)], R::Fixed(Str))],
        values |a| st(crate::json::value_text(&a[0]))),
    scalar!("TRANSFORM", "LAMBDA", "Applies a lambda to every element of an array, or to the keys and values of a map.",
        [sig(&[("array", Arr), ("lambda", Lambda)], R::Transform(0, 1)), sig(&[("map", Map), ("key_lambda", Lambda), ("value_lambda", Lambda)], R::MapOf(1, 2))],
        nodes transform),
    scalar!("TRIM", "STRING", "Removes leading and trailing whitespace.",
        [sig(&[("text", Str)], R::Fixed(Str))],
        values |a| s(&a[0]).map_or(Value::Null, |t| st(t.trim()))),
    scalar!("UCASE", "STRING", "Upper-cases a string.",
        [sig(&[("text", Str)], R::Fixed(Str))],
        values |a| s(&a[0]).map_or(Value::Null, |t| st(t.to_uppercase()))),
    scalar!("UNIX_DATE", "DATE / TIME", "Returns the days since the epoch of a DATE (or of today).",
        [sig(&[], R::Fixed(Int)), sig(&[("date", Date)], R::Fixed(Int))],
        values |a| match a.first() {
            None => Value::Int((now_ms() / 86_400_000) as i32),
            Some(v) => days_of(v).map_or(Value::Null, |d| Value::Int(d as i32)),
        }),
    scalar!("UNIX_TIMESTAMP", "DATE / TIME", "Returns the milliseconds since the epoch of a TIMESTAMP (or of now).",
        [sig(&[], R::Fixed(Bigint)), sig(&[("ts", Ts)], R::Fixed(Bigint))],
        values |a| match a.first() {
            None => Value::Bigint(now_ms()),
            Some(Value::Timestamp(t)) => Value::Bigint(*t),
            Some(_) => Value::Null,
        }),
    scalar!("URL_DECODE_PARAM", "URL", "Decodes an application/x-www-form-urlencoded string.",
        [sig(&[("text", Str)], R::Fixed(Str))],
        values |a| s(&a[0]).map_or(Value::Null, |t| opt_str(url_decode(t)))),
    scalar!("URL_ENCODE_PARAM", "URL", "Encodes a string as application/x-www-form-urlencoded.",
        [sig(&[("text", Str)], R::Fixed(Str))],
        values |a| s(&a[0]).map_or(Value::Null, |t| st(url_encode(t)))),
    scalar!("URL_EXTRACT_FRAGMENT", "URL", "Returns the fragment of a URL.",
        [sig(&[("url", Str)], R::Fixed(Str))],
        values |a| opt_str(s(&a[0]).and_then(url_parts).and_then(|p| p.5))),
    scalar!("URL_EXTRACT_HOST", "URL", "Returns the host of a URL.",
        [sig(&[("url", Str)], R::Fixed(Str))],
        values |a| opt_str(s(&a[0]).and_then(url_parts).map(|p| p.1))),
    scalar!("URL_EXTRACT_PARAMETER", "URL", "Returns the decoded value of a query parameter of a URL.",
        [sig(&[("url", Str), ("name", Str)], R::Fixed(Str))],
        values |a| {
            let Some(q) = s(&a[0]).and_then(url_parts).and_then(|p| p.4) else { return Value::Null };
            let Some(name) = s(&a[1]) else { return Value::Null };
            q.split('&').find_map(|kv| {
                let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
                (k == name).then(|| url_decode(v))
            }).flatten().map_or(Value::Null, st)
        }),
    scalar!("URL_EXTRACT_PATH", "URL", "Returns the path of a URL.",
        [sig(&[("url", Str)], R::Fixed(Str))],
        values |a| opt_str(s(&a[0]).and_then(url_parts).map(|p| p.3))),
    scalar!("URL_EXTRACT_PORT", "URL", "Returns the port of a URL, or NULL.",
        [sig(&[("url", Str)], R::Fixed(Int))],
        values |a| s(&a[0]).and_then(url_parts).and_then(|p| p.2).map_or(Value::Null, |p| Value::Int(p as i32))),
    scalar!("URL_EXTRACT_PROTOCOL", "URL", "Returns the protocol (scheme) of a URL.",
        [sig(&[("url", Str)], R::Fixed(Str))],
        values |a| opt_str(s(&a[0]).and_then(url_parts).map(|p| p.0))),
    scalar!("URL_EXTRACT_QUERY", "URL", "Returns the query string of a URL.",
        [sig(&[("url", Str)], R::Fixed(Str))],
        values |a| opt_str(s(&a[0]).and_then(url_parts).and_then(|p| p.4))),
    scalar!("UUID", "STRING", "Returns a random UUID.",
        [sig(&[], R::Fixed(Str))],
        values |_| st(uuid::Uuid::new_v4().to_string())),
];

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Every function name, scalar and aggregate, sorted.
pub fn all_names() -> BTreeSet<(&'static str, &'static str, &'static str)> {
    let mut out = BTreeSet::new();
    for s in SCALARS {
        out.insert((s.name, "SCALAR", s.category));
    }
    for a in AGGREGATES {
        out.insert((a.name, "AGGREGATE", "AGGREGATE"));
    }
    out
}

/// A double as text the way ksqlDB prints it (used by the JSON format too).
pub fn double_text(v: f64) -> String {
    format_double(v)
}

/// Casts helper re-exported for aggregate implementations.
pub fn cast(v: &Value, t: &SqlType) -> Value {
    cast_value(v, t)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn eval(text: &str) -> Value {
        let parsed =
            crate::parser::parse_one(&format!("SELECT {text} FROM T;"), &BTreeMap::new()).unwrap();
        let crate::ast::Statement::Select(q) = parsed.statement else {
            panic!()
        };
        let crate::ast::SelectItem::Expr { expr, .. } = &q.select[0] else {
            panic!()
        };
        crate::expr::compile(expr, &crate::expr::Scope::default(), "SELECT")
            .unwrap_or_else(|e| panic!("{text}: {e}"))
            .node
            .eval(&[])
    }

    fn s(v: &str) -> Value {
        Value::String(v.into())
    }

    fn arr(items: &[i32]) -> Value {
        Value::Array(items.iter().map(|v| Value::Int(*v)).collect())
    }

    #[test]
    fn every_function_name_is_unique_and_sorted() {
        for w in SCALARS.windows(2) {
            assert!(w[0].name < w[1].name, "{} before {}", w[0].name, w[1].name);
        }
    }

    #[test]
    fn string_functions() {
        assert_eq!(eval("CONCAT('a', NULL, 'b')"), s("ab"));
        assert_eq!(eval("CONCAT_WS('-', 'a', 'b')"), s("a-b"));
        assert_eq!(eval("LCASE('AbC')"), s("abc"));
        assert_eq!(eval("UCASE('AbC')"), s("ABC"));
        assert_eq!(eval("LEN('héllo')"), Value::Int(5));
        assert_eq!(eval("TRIM('  x ')"), s("x"));
        assert_eq!(eval("LTRIM('  x ')"), s("x "));
        assert_eq!(eval("RTRIM('  x ')"), s("  x"));
        assert_eq!(eval("SUBSTRING('hello', 2, 3)"), s("ell"));
        assert_eq!(eval("SUBSTRING('hello', -3)"), s("llo"));
        assert_eq!(eval("REPLACE('aXbX', 'X', '-')"), s("a-b-"));
        assert_eq!(eval("LPAD('7', 3, '0')"), s("007"));
        assert_eq!(eval("RPAD('ab', 5, 'xy')"), s("abxyx"));
        assert_eq!(eval("INSTR('CORPORATE FLOOR', 'OR', 3, 2)"), Value::Int(14));
        assert_eq!(eval("INSTR('abc', 'z')"), Value::Int(0));
        assert_eq!(
            eval("SPLIT('a,b', ',')"),
            Value::Array(vec![s("a"), s("b")])
        );
        assert_eq!(eval("SPLIT_TO_MAP('a=1;b=2', ';', '=')['b']"), s("2"));
        assert_eq!(
            eval("REGEXP_EXTRACT('(\\d+)-(\\d+)', 'x 12-34', 2)"),
            s("34")
        );
        assert_eq!(
            eval("REGEXP_EXTRACT_ALL('\\d', 'a1b2')"),
            Value::Array(vec![s("1"), s("2")])
        );
        assert_eq!(eval("REGEXP_REPLACE('a1b22', '\\d+', '#')"), s("a#b#"));
        assert_eq!(
            eval("REGEXP_SPLIT_TO_ARRAY('a1b22c', '\\d+')"),
            Value::Array(vec![s("a"), s("b"), s("c")])
        );
        assert_eq!(eval("INITCAP('hello WORLD')"), s("Hello World"));
        assert_eq!(eval("MASK('Ab1-')"), s("Xxn-"));
        assert_eq!(eval("MASK_LEFT('abcd', 2)"), s("xxcd"));
        assert_eq!(eval("MASK_RIGHT('abcd', 2)"), s("abxx"));
        assert_eq!(eval("MASK_KEEP_LEFT('abcd', 1)"), s("axxx"));
        assert_eq!(eval("MASK_KEEP_RIGHT('abcd', 1)"), s("xxxd"));
        assert_eq!(eval("CHR(75)"), s("K"));
        assert_eq!(eval("ENCODE('4869', 'hex', 'utf8')"), s("Hi"));
        assert_eq!(
            eval("FROM_BYTES(TO_BYTES('Hi', 'utf8'), 'base64')"),
            s("SGk=")
        );
        assert_eq!(eval("ELT(2, 'a', 'b')"), s("b"));
        assert_eq!(eval("FIELD('b', 'a', 'b')"), Value::Int(2));
        assert_eq!(eval("LEN(UUID())"), Value::Int(36));
    }

    #[test]
    fn math_functions() {
        assert_eq!(eval("ABS(-3)"), Value::Int(3));
        // `2.5` is a DECIMAL(2, 1) literal: these keep its type.
        let dec = |s: &str| Value::Decimal(crate::decimal::Dec::parse(s).unwrap());
        assert_eq!(eval("ABS(-2.5)"), dec("2.5"));
        assert_eq!(eval("CEIL(1.2)"), dec("2.0"));
        assert_eq!(eval("CEIL(-1.2)"), dec("-1.0"));
        assert_eq!(eval("FLOOR(1.8)"), dec("1.0"));
        assert_eq!(eval("FLOOR(-1.8)"), dec("-2.0"));
        assert_eq!(eval("ABS(-2.5E0)"), Value::Double(2.5));
        assert_eq!(eval("ROUND(2.5)"), Value::Bigint(3));
        assert_eq!(eval("ROUND(-2.5)"), Value::Bigint(-2));
        assert_eq!(eval("ROUND(1.2345, 2)"), Value::Double(1.23));
        assert_eq!(eval("SQRT(16)"), Value::Double(4.0));
        assert_eq!(eval("POWER(2, 10)"), Value::Double(1024.0));
        assert_eq!(eval("EXP(0)"), Value::Double(1.0));
        assert_eq!(eval("LN(1)"), Value::Double(0.0));
        assert_eq!(eval("SIGN(-4)"), Value::Int(-1));
        assert_eq!(eval("GREATEST(1, 5, NULL, 3)"), Value::Int(5));
        assert_eq!(
            eval("LEAST(2, 1.5)"),
            Value::Decimal(crate::decimal::Dec::parse("1.5").unwrap())
        );
    }

    #[test]
    fn null_functions() {
        assert_eq!(eval("COALESCE(NULL, 2, 3)"), Value::Int(2));
        assert_eq!(eval("IFNULL(NULL, 'x')"), s("x"));
        assert_eq!(eval("NULLIF(1, 1)"), Value::Null);
        assert_eq!(eval("NULLIF(1, 2)"), Value::Int(1));
    }

    #[test]
    fn date_time_functions() {
        assert_eq!(
            eval("FORMAT_TIMESTAMP(FROM_UNIXTIME(0), 'yyyy-MM-dd HH:mm')"),
            s("1970-01-01 00:00")
        );
        assert_eq!(
            eval("FORMAT_TIMESTAMP(FROM_UNIXTIME(0), 'HH:mm', '+02:00')"),
            s("02:00")
        );
        assert_eq!(
            eval("UNIX_TIMESTAMP(PARSE_TIMESTAMP('1970-01-02', 'yyyy-MM-dd'))"),
            Value::Bigint(86_400_000)
        );
        assert_eq!(eval("TIMESTAMPTOSTRING(1000, 'ss')"), s("01"));
        assert_eq!(
            eval("FORMAT_DATE(FROM_DAYS(1), 'yyyy-MM-dd')"),
            s("1970-01-02")
        );
        assert_eq!(
            eval("UNIX_DATE(PARSE_DATE('1970-01-11', 'yyyy-MM-dd'))"),
            Value::Int(10)
        );
        assert_eq!(
            eval("FORMAT_TIME(PARSE_TIME('10:11', 'HH:mm'), 'HH-mm')"),
            s("10-11")
        );
        assert_eq!(
            eval("UNIX_DATE(DATEADD('DAYS', 3, FROM_DAYS(1)))"),
            Value::Int(4)
        );
        assert_eq!(
            eval("UNIX_DATE(DATESUB('DAYS', 1, FROM_DAYS(1)))"),
            Value::Int(0)
        );
        assert_eq!(
            eval("UNIX_TIMESTAMP(TIMESTAMPADD('SECONDS', 2, FROM_UNIXTIME(0)))"),
            Value::Bigint(2000)
        );
        assert_eq!(
            eval("UNIX_TIMESTAMP(TIMESTAMPSUB('MINUTES', 1, FROM_UNIXTIME(0)))"),
            Value::Bigint(-60_000)
        );
        assert_eq!(
            eval("UNIX_TIMESTAMP(CONVERT_TZ(FROM_UNIXTIME(0), 'UTC', '+01:00'))"),
            Value::Bigint(3_600_000)
        );
        assert!(matches!(eval("UNIX_TIMESTAMP()"), Value::Bigint(t) if t > 0));
        assert!(matches!(eval("UNIX_DATE()"), Value::Int(d) if d > 0));
    }

    #[test]
    fn json_functions() {
        assert_eq!(
            eval("EXTRACTJSONFIELD('{\"a\":{\"b\":[1,\"x\"]}}', '$.a.b[1]')"),
            s("x")
        );
        assert_eq!(eval("JSON_ARRAY_LENGTH('[1,2]')"), Value::Int(2));
        assert_eq!(eval("JSON_KEYS('{\"a\":1}')"), Value::Array(vec![s("a")]));
        assert_eq!(eval("JSON_RECORDS('{\"a\":[1]}')['a']"), s("[1]"));
        assert_eq!(
            eval("JSON_CONCAT('{\"a\":1}', '{\"b\":2}')"),
            s("{\"a\":1,\"b\":2}")
        );
        assert_eq!(eval("IS_JSON_STRING('[1')"), Value::Boolean(false));
        assert_eq!(eval("TO_JSON_STRING(ARRAY[1, 2])"), s("[1,2]"));
    }

    #[test]
    fn array_and_map_functions() {
        assert_eq!(eval("ARRAY_CONTAINS(ARRAY[1, 2], 2)"), Value::Boolean(true));
        assert_eq!(eval("ARRAY_DISTINCT(ARRAY[1, 1, 2])"), arr(&[1, 2]));
        assert_eq!(eval("ARRAY_EXCEPT(ARRAY[1, 2, 3], ARRAY[2])"), arr(&[1, 3]));
        assert_eq!(eval("ARRAY_INTERSECT(ARRAY[1, 2], ARRAY[2, 3])"), arr(&[2]));
        assert_eq!(
            eval("ARRAY_UNION(ARRAY[1, 2], ARRAY[2, 3])"),
            arr(&[1, 2, 3])
        );
        assert_eq!(eval("ARRAY_CONCAT(ARRAY[1], ARRAY[1])"), arr(&[1, 1]));
        assert_eq!(eval("ARRAY_JOIN(ARRAY[1, 2], '|')"), s("1|2"));
        assert_eq!(eval("ARRAY_LENGTH(ARRAY[1, 2])"), Value::Int(2));
        assert_eq!(eval("ARRAY_MAX(ARRAY[1, 3, 2])"), Value::Int(3));
        assert_eq!(eval("ARRAY_MIN(ARRAY[1, 3, 2])"), Value::Int(1));
        assert_eq!(eval("ARRAY_REMOVE(ARRAY[1, 2, 1], 1)"), arr(&[2]));
        assert_eq!(eval("ARRAY_SORT(ARRAY[3, 1, 2], 'DESC')"), arr(&[3, 2, 1]));
        assert_eq!(eval("SLICE(ARRAY[1, 2, 3, 4], 2, 3)"), arr(&[2, 3]));
        assert_eq!(eval("GENERATE_SERIES(1, 5, 2)"), arr(&[1, 3, 5]));
        assert_eq!(
            eval("MAP_KEYS(MAP('a' := 1, 'b' := 2))"),
            Value::Array(vec![s("a"), s("b")])
        );
        assert_eq!(eval("MAP_VALUES(MAP('a' := 1))"), arr(&[1]));
        assert_eq!(
            eval("MAP_UNION(MAP('a' := 1), MAP('a' := 2))['a']"),
            Value::Int(2)
        );
        assert_eq!(eval("AS_MAP(ARRAY['a'], ARRAY[1])['a']"), Value::Int(1));
        assert_eq!(eval("ENTRIES(MAP('b' := 2, 'a' := 1), true)[1]->K"), s("a"));
        assert_eq!(eval("TRANSFORM(ARRAY[1, 2], x => x * 10)"), arr(&[10, 20]));
        assert_eq!(eval("FILTER(ARRAY[1, 2, 3], x => x > 1)"), arr(&[2, 3]));
        assert_eq!(
            eval("REDUCE(ARRAY[1, 2, 3], 0, (s, x) => s + x)"),
            Value::Int(6)
        );
        assert_eq!(
            eval("TRANSFORM(MAP('a' := 1), (k, v) => UCASE(k), (k, v) => v + 1)['A']"),
            Value::Int(2)
        );
        assert_eq!(
            eval("REDUCE(MAP('a' := 1, 'b' := 2), 0, (s, k, v) => s + v)"),
            Value::Int(3)
        );
    }

    #[test]
    fn url_functions() {
        let u = "'http://user@example.com:8080/a/b?x=1&y=hello%20w#frag'";
        assert_eq!(eval(&format!("URL_EXTRACT_HOST({u})")), s("example.com"));
        assert_eq!(eval(&format!("URL_EXTRACT_PORT({u})")), Value::Int(8080));
        assert_eq!(eval(&format!("URL_EXTRACT_PATH({u})")), s("/a/b"));
        assert_eq!(eval(&format!("URL_EXTRACT_PROTOCOL({u})")), s("http"));
        assert_eq!(
            eval(&format!("URL_EXTRACT_QUERY({u})")),
            s("x=1&y=hello%20w")
        );
        assert_eq!(eval(&format!("URL_EXTRACT_FRAGMENT({u})")), s("frag"));
        assert_eq!(
            eval(&format!("URL_EXTRACT_PARAMETER({u}, 'y')")),
            s("hello w")
        );
        assert_eq!(eval("URL_ENCODE_PARAM('a b&c')"), s("a+b%26c"));
        assert_eq!(eval("URL_DECODE_PARAM('a+b%26c')"), s("a b&c"));
    }

    #[test]
    fn base64_round_trip() {
        for data in [&b""[..], b"f", b"fo", b"foo", b"foob", &[0xff, 0, 1]] {
            assert_eq!(base64_decode(&base64_encode(data)).unwrap(), data);
        }
    }
}
