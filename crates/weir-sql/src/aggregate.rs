//! ksqlDB's aggregate functions. Each keeps its state as a `Value`, so the
//! state serializes into a changelog like any row.

use crate::decimal::{self, Dec, DecOp};
use crate::types::{SqlType, Value};

/// How an aggregate is called: its column argument's type and the literal
/// parameters after it.
#[derive(Debug, Clone)]
pub struct AggCall {
    pub arg_type: Option<SqlType>,
    pub params: Vec<Value>,
}

/// An aggregate function.
#[derive(Debug)]
pub struct Aggregate {
    pub name: &'static str,
    pub description: &'static str,
    /// Argument lists for DESCRIBE FUNCTION, and the return type text.
    pub signatures: &'static [(&'static str, &'static str)],
    /// Whether `COUNT(*)` is allowed.
    pub star: bool,
    /// How many literal parameters may follow the column (min, max).
    pub params: (usize, usize),
    /// The result type, or why the call is invalid.
    pub ret: fn(&AggCall) -> Result<SqlType, String>,
    pub init: fn(&AggCall) -> Value,
    pub add: fn(&AggCall, &mut Value, &Value),
    /// Merges a later state into an earlier one (session windows).
    pub merge: fn(&AggCall, &mut Value, &Value),
    /// Removes a value (table aggregations); `None` when not undoable.
    pub undo: Option<fn(&AggCall, &mut Value, &Value)>,
    pub result: fn(&AggCall, &Value) -> Value,
}

/// Looks an aggregate up by name (any case).
pub fn aggregate(name: &str) -> Option<&'static Aggregate> {
    let up = name.to_ascii_uppercase();
    AGGREGATES.iter().find(|a| a.name == up)
}

fn arg(c: &AggCall) -> Result<SqlType, String> {
    c.arg_type
        .clone()
        .ok_or_else(|| "needs a column argument".to_string())
}

fn numeric(c: &AggCall) -> Result<SqlType, String> {
    match arg(c)? {
        t if t.is_numeric() => Ok(t),
        t => Err(format!("does not accept {t}")),
    }
}

fn comparable(c: &AggCall) -> Result<SqlType, String> {
    match arg(c)? {
        t @ (SqlType::Array(_) | SqlType::Map(..) | SqlType::Struct(_) | SqlType::Boolean) => {
            Err(format!("does not accept {t}"))
        }
        t => Ok(t),
    }
}

fn int_param(c: &AggCall, at: usize, default: i64) -> i64 {
    c.params.get(at).and_then(Value::as_i64).unwrap_or(default)
}

fn bigint(v: &Value) -> i64 {
    v.as_i64().unwrap_or(0)
}

fn add_num(a: &Value, b: &Value, sign: i64) -> Value {
    match (a, b) {
        // DECIMAL sums keep the column's type (ksqlDB's DecimalSumKudaf).
        (Value::Decimal(x), y) => {
            let Some(y) = y.as_dec() else {
                return a.clone();
            };
            let y = Dec::new(y.unscaled * i128::from(sign.signum()), y.scale);
            // Any precision here: `fit_sum` checks the column's.
            match decimal::apply(DecOp::Add, *x, y, u32::MAX, x.scale) {
                Some(v) => Value::Decimal(v),
                None => a.clone(),
            }
        }
        (Value::Int(x), y) => Value::Int(x.wrapping_add((sign * y.as_i64().unwrap_or(0)) as i32)),
        (Value::Bigint(x), y) => Value::Bigint(x.wrapping_add(sign * y.as_i64().unwrap_or(0))),
        (Value::Double(x), y) => Value::Double(x + sign as f64 * y.as_f64().unwrap_or(0.0)),
        _ => a.clone(),
    }
}

/// A DECIMAL sum that overflows the column's precision keeps the old
/// state (ksqlDB's "Numeric field overflow" fails that record).
fn fit_sum(c: &AggCall, new: Value, old: &Value) -> Value {
    match (&c.arg_type, &new) {
        (Some(SqlType::Decimal(p, _)), Value::Decimal(d)) if !d.fits(*p) => old.clone(),
        _ => new,
    }
}

fn zero(t: &Option<SqlType>) -> Value {
    match t {
        Some(SqlType::Decimal(_, s)) => Value::Decimal(Dec::new(0, *s)),
        Some(SqlType::Int) => Value::Int(0),
        Some(SqlType::Double) => Value::Double(0.0),
        _ => Value::Bigint(0),
    }
}

fn push_limited(list: &mut Value, v: &Value, limit: usize, distinct: bool) {
    if let Value::Array(items) = list {
        if (distinct && items.contains(v)) || items.len() >= limit {
            return;
        }
        items.push(v.clone());
    }
}

fn top_k(c: &AggCall, state: &mut Value, v: &Value, distinct: bool) {
    if v.is_null() {
        return;
    }
    let k = int_param(c, 0, 1).max(0) as usize;
    if let Value::Array(items) = state {
        if distinct && items.contains(v) {
            return;
        }
        items.push(v.clone());
        items.sort_by(|a, b| b.total_cmp(a));
        items.truncate(k);
    }
}

/// MAX: keeps `v` when it is larger (NULLs ignored).
fn keep_max(s: &mut Value, v: &Value) {
    if !v.is_null() && (s.is_null() || v.total_cmp(s).is_gt()) {
        *s = v.clone();
    }
}

/// MIN: keeps `v` when it is smaller (NULLs ignored).
fn keep_min(s: &mut Value, v: &Value) {
    if !v.is_null() && (s.is_null() || v.total_cmp(s).is_lt()) {
        *s = v.clone();
    }
}

/// The list limit of COLLECT_LIST and COLLECT_SET
/// (`ksql.functions.collect_list.limit`'s default).
const COLLECT_LIMIT: usize = 1000;

/// Every aggregate, in name order.
pub static AGGREGATES: &[Aggregate] = &[
    Aggregate {
        name: "AVG",
        description: "Returns the average of the non-NULL values.",
        signatures: &[("val NUMBER", "DOUBLE")],
        star: false,
        params: (0, 0),
        ret: |c| numeric(c).map(|_| SqlType::Double),
        init: |_| Value::Array(vec![Value::Double(0.0), Value::Bigint(0)]),
        add: |_, s, v| {
            if let (Value::Array(st), Some(x)) = (s, v.as_f64()) {
                st[0] = Value::Double(st[0].as_f64().unwrap_or(0.0) + x);
                st[1] = Value::Bigint(bigint(&st[1]) + 1);
            }
        },
        merge: |_, s, o| {
            if let (Value::Array(a), Value::Array(b)) = (s, o) {
                a[0] = Value::Double(a[0].as_f64().unwrap_or(0.0) + b[0].as_f64().unwrap_or(0.0));
                a[1] = Value::Bigint(bigint(&a[1]) + bigint(&b[1]));
            }
        },
        undo: Some(|_, s, v| {
            if let (Value::Array(st), Some(x)) = (s, v.as_f64()) {
                st[0] = Value::Double(st[0].as_f64().unwrap_or(0.0) - x);
                st[1] = Value::Bigint(bigint(&st[1]) - 1);
            }
        }),
        result: |_, s| match s {
            Value::Array(st) if bigint(&st[1]) > 0 => {
                Value::Double(st[0].as_f64().unwrap_or(0.0) / bigint(&st[1]) as f64)
            }
            _ => Value::Double(0.0),
        },
    },
    Aggregate {
        name: "COLLECT_LIST",
        description: "Returns an array of every value (up to 1000), NULLs included.",
        signatures: &[("val T", "ARRAY<T>")],
        star: false,
        params: (0, 0),
        ret: |c| arg(c).map(|t| SqlType::Array(Box::new(t))),
        init: |_| Value::Array(Vec::new()),
        add: |_, s, v| push_limited(s, v, COLLECT_LIMIT, false),
        merge: |_, s, o| {
            if let Value::Array(b) = o {
                for v in b {
                    push_limited(s, v, COLLECT_LIMIT, false);
                }
            }
        },
        undo: Some(|_, s, v| {
            if let Value::Array(items) = s {
                if let Some(p) = items.iter().position(|x| x == v) {
                    items.remove(p);
                }
            }
        }),
        result: |_, s| s.clone(),
    },
    Aggregate {
        name: "COLLECT_SET",
        description: "Returns an array of the distinct values (up to 1000).",
        signatures: &[("val T", "ARRAY<T>")],
        star: false,
        params: (0, 0),
        ret: |c| arg(c).map(|t| SqlType::Array(Box::new(t))),
        init: |_| Value::Array(Vec::new()),
        add: |_, s, v| push_limited(s, v, COLLECT_LIMIT, true),
        merge: |_, s, o| {
            if let Value::Array(b) = o {
                for v in b {
                    push_limited(s, v, COLLECT_LIMIT, true);
                }
            }
        },
        undo: None,
        result: |_, s| s.clone(),
    },
    Aggregate {
        name: "COUNT",
        description: "Counts the rows (COUNT(*)) or the non-NULL values of a column.",
        signatures: &[("*", "BIGINT"), ("val T", "BIGINT")],
        star: true,
        params: (0, 0),
        ret: |_| Ok(SqlType::Bigint),
        init: |_| Value::Bigint(0),
        add: |c, s, v| {
            if c.arg_type.is_none() || !v.is_null() {
                *s = Value::Bigint(bigint(s) + 1);
            }
        },
        merge: |_, s, o| *s = Value::Bigint(bigint(s) + bigint(o)),
        undo: Some(|c, s, v| {
            if c.arg_type.is_none() || !v.is_null() {
                *s = Value::Bigint(bigint(s) - 1);
            }
        }),
        result: |_, s| s.clone(),
    },
    Aggregate {
        name: "COUNT_DISTINCT",
        description: "Counts the distinct non-NULL values.",
        signatures: &[("val T", "BIGINT")],
        star: false,
        params: (0, 0),
        ret: |c| comparable(c).map(|_| SqlType::Bigint),
        init: |_| Value::Array(Vec::new()),
        add: |_, s, v| {
            if !v.is_null() {
                push_limited(s, v, usize::MAX, true)
            }
        },
        merge: |_, s, o| {
            if let Value::Array(b) = o {
                for v in b {
                    push_limited(s, v, usize::MAX, true);
                }
            }
        },
        undo: None,
        result: |_, s| match s {
            Value::Array(items) => Value::Bigint(items.len() as i64),
            _ => Value::Bigint(0),
        },
    },
    Aggregate {
        name: "EARLIEST_BY_OFFSET",
        description: "Returns the earliest value by offset (NULLs ignored unless the second argument is false).",
        signatures: &[("val T", "T"), ("val T, ignoreNulls BOOLEAN", "T")],
        star: false,
        params: (0, 1),
        ret: arg,
        init: |_| Value::Array(Vec::new()),
        add: |c, s, v| {
            let ignore_nulls = c.params.first() != Some(&Value::Boolean(false));
            if let Value::Array(items) = s {
                if items.is_empty() && !(ignore_nulls && v.is_null()) {
                    items.push(v.clone());
                }
            }
        },
        merge: |_, s, o| {
            if matches!(s, Value::Array(a) if a.is_empty()) {
                *s = o.clone();
            }
        },
        undo: None,
        result: |_, s| match s {
            Value::Array(items) => items.first().cloned().unwrap_or(Value::Null),
            _ => Value::Null,
        },
    },
    Aggregate {
        name: "HISTOGRAM",
        description: "Counts each distinct string value, as a map.",
        signatures: &[("val STRING", "MAP<STRING, BIGINT>")],
        star: false,
        params: (0, 0),
        ret: |c| match arg(c)? {
            SqlType::String => Ok(SqlType::Map(Box::new(SqlType::String), Box::new(SqlType::Bigint))),
            t => Err(format!("does not accept {t}")),
        },
        init: |_| Value::Map(Vec::new()),
        add: |_, s, v| {
            if let (Value::Map(entries), false) = (s, v.is_null()) {
                match entries.iter().position(|(k, _)| k == v) {
                    Some(p) => entries[p].1 = Value::Bigint(bigint(&entries[p].1) + 1),
                    None if entries.len() < COLLECT_LIMIT => entries.push((v.clone(), Value::Bigint(1))),
                    None => {}
                }
            }
        },
        merge: |_, s, o| {
            if let (Value::Map(a), Value::Map(b)) = (s, o) {
                for (k, n) in b {
                    match a.iter().position(|(x, _)| x == k) {
                        Some(p) => a[p].1 = Value::Bigint(bigint(&a[p].1) + bigint(n)),
                        None => a.push((k.clone(), n.clone())),
                    }
                }
            }
        },
        undo: Some(|_, s, v| {
            if let Value::Map(entries) = s {
                if let Some(p) = entries.iter().position(|(k, _)| k == v) {
                    let n = bigint(&entries[p].1) - 1;
                    if n <= 0 {
                        entries.remove(p);
                    } else {
                        entries[p].1 = Value::Bigint(n);
                    }
                }
            }
        }),
        result: |_, s| s.clone(),
    },
    Aggregate {
        name: "LATEST_BY_OFFSET",
        description: "Returns the latest value by offset (NULLs ignored unless the second argument is false).",
        signatures: &[("val T", "T"), ("val T, ignoreNulls BOOLEAN", "T")],
        star: false,
        params: (0, 1),
        ret: arg,
        init: |_| Value::Null,
        add: |c, s, v| {
            let ignore_nulls = c.params.first() != Some(&Value::Boolean(false));
            if !(ignore_nulls && v.is_null()) {
                *s = v.clone();
            }
        },
        merge: |_, s, o| {
            if !o.is_null() {
                *s = o.clone();
            }
        },
        undo: None,
        result: |_, s| s.clone(),
    },
    Aggregate {
        name: "MAX",
        description: "Returns the largest non-NULL value.",
        signatures: &[("val T", "T")],
        star: false,
        params: (0, 0),
        ret: comparable,
        init: |_| Value::Null,
        add: |_, s, v| keep_max(s, v),
        merge: |_, s, o| keep_max(s, o),
        undo: None,
        result: |_, s| s.clone(),
    },
    Aggregate {
        name: "MIN",
        description: "Returns the smallest non-NULL value.",
        signatures: &[("val T", "T")],
        star: false,
        params: (0, 0),
        ret: comparable,
        init: |_| Value::Null,
        add: |_, s, v| keep_min(s, v),
        merge: |_, s, o| keep_min(s, o),
        undo: None,
        result: |_, s| s.clone(),
    },
    Aggregate {
        name: "SUM",
        description: "Returns the sum of the non-NULL values.",
        signatures: &[
            ("val INT", "INT"),
            ("val BIGINT", "BIGINT"),
            ("val DOUBLE", "DOUBLE"),
            ("val DECIMAL", "DECIMAL"),
        ],
        star: false,
        params: (0, 0),
        ret: numeric,
        init: |c| zero(&c.arg_type),
        add: |c, s, v| {
            if !v.is_null() {
                *s = fit_sum(c, add_num(s, v, 1), s);
            }
        },
        merge: |c, s, o| *s = fit_sum(c, add_num(s, o, 1), s),
        undo: Some(|c, s, v| {
            if !v.is_null() {
                *s = fit_sum(c, add_num(s, v, -1), s);
            }
        }),
        result: |_, s| s.clone(),
    },
    Aggregate {
        name: "TOPK",
        description: "Returns the k largest values, largest first.",
        signatures: &[("val T, k INT", "ARRAY<T>")],
        star: false,
        params: (1, 1),
        ret: |c| comparable(c).map(|t| SqlType::Array(Box::new(t))),
        init: |_| Value::Array(Vec::new()),
        add: |c, s, v| top_k(c, s, v, false),
        merge: |c, s, o| {
            if let Value::Array(b) = o {
                for v in b {
                    top_k(c, s, v, false);
                }
            }
        },
        undo: None,
        result: |_, s| s.clone(),
    },
    Aggregate {
        name: "TOPKDISTINCT",
        description: "Returns the k largest distinct values, largest first.",
        signatures: &[("val T, k INT", "ARRAY<T>")],
        star: false,
        params: (1, 1),
        ret: |c| comparable(c).map(|t| SqlType::Array(Box::new(t))),
        init: |_| Value::Array(Vec::new()),
        add: |c, s, v| top_k(c, s, v, true),
        merge: |c, s, o| {
            if let Value::Array(b) = o {
                for v in b {
                    top_k(c, s, v, true);
                }
            }
        },
        undo: None,
        result: |_, s| s.clone(),
    },
];

#[cfg(test)]
mod tests {
    use super::*;

    fn run(name: &str, ty: Option<SqlType>, params: Vec<Value>, values: &[Value]) -> Value {
        let a = aggregate(name).unwrap();
        let c = AggCall {
            arg_type: ty,
            params,
        };
        (a.ret)(&c).unwrap();
        let mut s = (a.init)(&c);
        for v in values {
            (a.add)(&c, &mut s, v);
        }
        (a.result)(&c, &s)
    }

    fn ints(v: &[i32]) -> Vec<Value> {
        v.iter().map(|x| Value::Int(*x)).collect()
    }

    #[test]
    fn counts_and_sums() {
        let vals = [Value::Int(1), Value::Null, Value::Int(3)];
        assert_eq!(run("COUNT", None, vec![], &vals), Value::Bigint(3));
        assert_eq!(
            run("COUNT", Some(SqlType::Int), vec![], &vals),
            Value::Bigint(2)
        );
        assert_eq!(run("SUM", Some(SqlType::Int), vec![], &vals), Value::Int(4));
        assert_eq!(
            run("AVG", Some(SqlType::Int), vec![], &vals),
            Value::Double(2.0)
        );
        assert_eq!(
            run(
                "COUNT_DISTINCT",
                Some(SqlType::Int),
                vec![],
                &ints(&[1, 1, 2])
            ),
            Value::Bigint(2)
        );
    }

    #[test]
    fn min_max_latest_earliest() {
        let vals = ints(&[3, 1, 2]);
        assert_eq!(run("MIN", Some(SqlType::Int), vec![], &vals), Value::Int(1));
        assert_eq!(run("MAX", Some(SqlType::Int), vec![], &vals), Value::Int(3));
        let with_null = [Value::Int(1), Value::Int(2), Value::Null];
        assert_eq!(
            run("LATEST_BY_OFFSET", Some(SqlType::Int), vec![], &with_null),
            Value::Int(2)
        );
        assert_eq!(
            run(
                "LATEST_BY_OFFSET",
                Some(SqlType::Int),
                vec![Value::Boolean(false)],
                &with_null
            ),
            Value::Null
        );
        assert_eq!(
            run(
                "EARLIEST_BY_OFFSET",
                Some(SqlType::Int),
                vec![],
                &[Value::Null, Value::Int(5)]
            ),
            Value::Int(5)
        );
    }

    #[test]
    fn collections() {
        let vals = ints(&[3, 1, 3, 2]);
        assert_eq!(
            run("COLLECT_LIST", Some(SqlType::Int), vec![], &vals),
            Value::Array(ints(&[3, 1, 3, 2]))
        );
        assert_eq!(
            run("COLLECT_SET", Some(SqlType::Int), vec![], &vals),
            Value::Array(ints(&[3, 1, 2]))
        );
        assert_eq!(
            run("TOPK", Some(SqlType::Int), vec![Value::Int(2)], &vals),
            Value::Array(ints(&[3, 3]))
        );
        assert_eq!(
            run(
                "TOPKDISTINCT",
                Some(SqlType::Int),
                vec![Value::Int(2)],
                &vals
            ),
            Value::Array(ints(&[3, 2]))
        );
        let words = [
            Value::String("a".into()),
            Value::String("b".into()),
            Value::String("a".into()),
        ];
        assert_eq!(
            run("HISTOGRAM", Some(SqlType::String), vec![], &words),
            Value::Map(vec![
                (Value::String("a".into()), Value::Bigint(2)),
                (Value::String("b".into()), Value::Bigint(1))
            ])
        );
    }

    #[test]
    fn undo_reverses_add() {
        let a = aggregate("SUM").unwrap();
        let c = AggCall {
            arg_type: Some(SqlType::Bigint),
            params: vec![],
        };
        let mut s = (a.init)(&c);
        (a.add)(&c, &mut s, &Value::Bigint(5));
        (a.add)(&c, &mut s, &Value::Bigint(7));
        (a.undo.unwrap())(&c, &mut s, &Value::Bigint(5));
        assert_eq!((a.result)(&c, &s), Value::Bigint(7));
    }
}
