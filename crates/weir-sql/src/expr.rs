//! Typed expressions: the compiler from the syntax tree (resolving columns
//! and functions, checking types, inserting ksqlDB's implicit widening)
//! and the row-at-a-time evaluator.
//!
//! Evaluation never fails: as in ksqlDB, an error inside an expression
//! (a bad cast, a function refusing its input) yields NULL.

use std::sync::Arc;

use regex::Regex;

use crate::ast::{BinOp, Expr, Literal};
use crate::decimal::{self, Dec, DecOp};
use crate::error::{Result, SqlError};
use crate::functions::{self, Scalar};
use crate::types::{SqlType, Value};

/// One column visible to an expression.
#[derive(Debug, Clone, PartialEq)]
pub struct ScopeColumn {
    /// The source name or alias that qualifies it (`A` in `A.ID`).
    pub qualifier: Option<String>,
    pub name: String,
    pub ty: SqlType,
}

/// The columns an expression may name, in row order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Scope {
    pub columns: Vec<ScopeColumn>,
}

impl Scope {
    pub fn push(&mut self, qualifier: Option<&str>, name: &str, ty: SqlType) {
        self.columns.push(ScopeColumn {
            qualifier: qualifier.map(str::to_string),
            name: name.to_string(),
            ty,
        });
    }

    /// The index of a column; errors name the clause (`SELECT`, `WHERE`...).
    pub fn resolve(&self, qualifier: Option<&str>, name: &str, clause: &str) -> Result<usize> {
        let matches: Vec<usize> = self
            .columns
            .iter()
            .enumerate()
            .filter(|(_, c)| {
                c.name == name
                    && match qualifier {
                        Some(q) => c.qualifier.as_deref() == Some(q),
                        None => true,
                    }
            })
            .map(|(i, _)| i)
            .collect();
        match matches.as_slice() {
            [i] => Ok(*i),
            [] => {
                let shown = match qualifier {
                    Some(q) => format!("{q}.{name}"),
                    None => name.to_string(),
                };
                Err(SqlError::invalid(format!(
                    "{clause} column '{shown}' cannot be resolved."
                )))
            }
            many => Err(SqlError::invalid(format!(
                "Column '{name}' is ambiguous. Could be any of: {}",
                many.iter()
                    .map(|i| format!(
                        "{}.{}",
                        self.columns[*i].qualifier.as_deref().unwrap_or(""),
                        name
                    ))
                    .collect::<Vec<_>>()
                    .join(", ")
            ))),
        }
    }
}

/// A compiled expression node.
#[derive(Debug, Clone)]
pub enum Node {
    Const(Value),
    Column(usize),
    LambdaArg(usize),
    Arith(BinOp, Box<Node>, Box<Node>, SqlType),
    Concat(Box<Node>, Box<Node>),
    Compare(BinOp, Box<Node>, Box<Node>),
    And(Box<Node>, Box<Node>),
    Or(Box<Node>, Box<Node>),
    Not(Box<Node>),
    Negate(Box<Node>),
    IsNull(Box<Node>, bool),
    Like(Box<Node>, LikePattern, bool),
    Between(Box<Node>, Box<Node>, Box<Node>, bool),
    In(Box<Node>, Vec<Node>, bool),
    Case(Vec<(Node, Node)>, Option<Box<Node>>),
    Cast(Box<Node>, SqlType),
    Call(&'static Scalar, Vec<Node>, SqlType),
    /// A lambda: its body and how many parameters it binds.
    Lambda(Box<Node>, usize),
    Subscript(Box<Node>, Box<Node>),
    Field(Box<Node>, String),
    Array(Vec<Node>),
    Map(Vec<(Node, Node)>),
    Struct(Vec<(String, Node)>),
}

/// A LIKE pattern, compiled when it is a literal.
#[derive(Debug, Clone)]
pub enum LikePattern {
    Fixed(Arc<Regex>),
    Dynamic(Box<Node>, Option<char>),
}

/// A compiled expression and its type.
#[derive(Debug, Clone)]
pub struct Typed {
    pub node: Node,
    pub ty: SqlType,
}

/// Compiles `expr` against `scope`. `clause` names where it appears, for
/// errors.
pub fn compile(expr: &Expr, scope: &Scope, clause: &str) -> Result<Typed> {
    Compiler {
        scope,
        clause,
        lambda: Vec::new(),
    }
    .compile(expr)
}

struct Compiler<'a> {
    scope: &'a Scope,
    clause: &'a str,
    /// Lambda parameters in scope: name and type, innermost last.
    lambda: Vec<(String, SqlType)>,
}

fn type_error(expr: &Expr, why: impl std::fmt::Display) -> SqlError {
    SqlError::invalid(format!("Error processing expression: {expr}. {why}"))
}

/// Translates a LIKE pattern (`%`, `_`, optional escape) to a regex.
pub fn like_regex(pattern: &str, escape: Option<char>) -> Option<Regex> {
    let mut re = String::from("(?s)^");
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        if Some(c) == escape {
            if let Some(n) = chars.next() {
                re.push_str(&regex::escape(&n.to_string()));
            }
            continue;
        }
        match c {
            '%' => re.push_str(".*"),
            '_' => re.push('.'),
            c => re.push_str(&regex::escape(&c.to_string())),
        }
    }
    re.push('$');
    Regex::new(&re).ok()
}

/// The value of a literal and its type (integers that fit are INT).
pub fn literal_value(l: &Literal) -> (Value, SqlType) {
    match l {
        Literal::Null => (Value::Null, SqlType::String),
        Literal::Boolean(b) => (Value::Boolean(*b), SqlType::Boolean),
        Literal::Integer(i) => match i32::try_from(*i) {
            Ok(v) => (Value::Int(v), SqlType::Int),
            Err(_) => (Value::Bigint(*i), SqlType::Bigint),
        },
        // ksqlDB types `1.5` as DECIMAL(2, 1) and `1.5E3` as DOUBLE.
        Literal::Decimal(d) => match Dec::parse(d) {
            Some(v) if !d.contains(['e', 'E']) => {
                let (p, s) = v.literal_type();
                (Value::Decimal(v), SqlType::Decimal(p, s))
            }
            _ => (
                Value::Double(d.parse().unwrap_or(f64::NAN)),
                SqlType::Double,
            ),
        },
        Literal::String(s) => (Value::String(s.clone()), SqlType::String),
    }
}

fn is_null_literal(e: &Expr) -> bool {
    matches!(e, Expr::Literal(Literal::Null))
}

impl Compiler<'_> {
    fn compile(&mut self, expr: &Expr) -> Result<Typed> {
        Ok(match expr {
            Expr::Literal(l) => {
                let (v, ty) = literal_value(l);
                Typed {
                    node: Node::Const(v),
                    ty,
                }
            }
            Expr::Column { qualifier, name } => {
                if qualifier.is_none() {
                    if let Some(pos) = self.lambda.iter().rposition(|(n, _)| n == name) {
                        return Ok(Typed {
                            node: Node::LambdaArg(pos),
                            ty: self.lambda[pos].1.clone(),
                        });
                    }
                }
                let i = self.scope.resolve(qualifier.as_deref(), name, self.clause)?;
                Typed {
                    node: Node::Column(i),
                    ty: self.scope.columns[i].ty.clone(),
                }
            }
            Expr::LambdaVar(name) => {
                let pos = self
                    .lambda
                    .iter()
                    .rposition(|(n, _)| n == name)
                    .ok_or_else(|| {
                        SqlError::invalid(format!("Lambda variable '{name}' is not bound"))
                    })?;
                Typed {
                    node: Node::LambdaArg(pos),
                    ty: self.lambda[pos].1.clone(),
                }
            }
            Expr::Binary { op, left, right } => self.binary(expr, *op, left, right)?,
            Expr::Not(e) => {
                let t = self.compile(e)?;
                self.expect_bool(expr, &t)?;
                Typed {
                    node: Node::Not(Box::new(t.node)),
                    ty: SqlType::Boolean,
                }
            }
            Expr::Negate(e) => {
                let t = self.compile(e)?;
                if !t.ty.is_numeric() {
                    return Err(type_error(expr, format!("Cannot negate {}", t.ty)));
                }
                Typed {
                    ty: t.ty,
                    node: Node::Negate(Box::new(t.node)),
                }
            }
            Expr::IsNull { expr: e, negated } => {
                let t = self.compile(e)?;
                Typed {
                    node: Node::IsNull(Box::new(t.node), *negated),
                    ty: SqlType::Boolean,
                }
            }
            Expr::Like {
                expr: e,
                pattern,
                escape,
                negated,
            } => {
                let t = self.compile(e)?;
                let p = self.compile(pattern)?;
                if t.ty != SqlType::String || p.ty != SqlType::String {
                    return Err(type_error(expr, "LIKE needs STRING operands"));
                }
                let pat = match &p.node {
                    Node::Const(Value::String(s)) => LikePattern::Fixed(Arc::new(
                        like_regex(s, *escape)
                            .ok_or_else(|| type_error(expr, "invalid LIKE pattern"))?,
                    )),
                    _ => LikePattern::Dynamic(Box::new(p.node), *escape),
                };
                Typed {
                    node: Node::Like(Box::new(t.node), pat, *negated),
                    ty: SqlType::Boolean,
                }
            }
            Expr::Between {
                expr: e,
                low,
                high,
                negated,
            } => {
                let t = self.compile(e)?;
                let l = self.coerce_to(low, &t.ty)?;
                let h = self.coerce_to(high, &t.ty)?;
                for o in [&l, &h] {
                    if !comparable(&t.ty, &o.ty) {
                        return Err(type_error(
                            expr,
                            format!("Cannot compare {} with {}", t.ty, o.ty),
                        ));
                    }
                }
                Typed {
                    node: Node::Between(Box::new(t.node), Box::new(l.node), Box::new(h.node), *negated),
                    ty: SqlType::Boolean,
                }
            }
            Expr::InList {
                expr: e,
                list,
                negated,
            } => {
                let t = self.compile(e)?;
                let mut items = Vec::new();
                for item in list {
                    let c = self.coerce_to(item, &t.ty)?;
                    if !comparable(&t.ty, &c.ty) && !is_null_literal(item) {
                        return Err(type_error(
                            expr,
                            format!("Cannot compare {} with {}", t.ty, c.ty),
                        ));
                    }
                    items.push(c.node);
                }
                Typed {
                    node: Node::In(Box::new(t.node), items, *negated),
                    ty: SqlType::Boolean,
                }
            }
            Expr::Case {
                operand,
                whens,
                else_,
            } => self.case(expr, operand.as_deref(), whens, else_.as_deref())?,
            Expr::Cast { expr: e, ty } => {
                let t = self.compile(e)?;
                if !castable(&t.ty, ty) && !is_null_literal(e) {
                    return Err(type_error(
                        expr,
                        format!("Cast of {} to {} is not supported", t.ty, ty),
                    ));
                }
                Typed {
                    node: Node::Cast(Box::new(t.node), ty.clone()),
                    ty: ty.clone(),
                }
            }
            Expr::Function { name, args, star } => self.function(expr, name, args, *star)?,
            Expr::Lambda { .. } => {
                return Err(type_error(
                    expr,
                    "A lambda is only allowed as an argument of TRANSFORM, FILTER, REDUCE and similar functions",
                ))
            }
            Expr::Subscript { base, index } => {
                let b = self.compile(base)?;
                match &b.ty {
                    SqlType::Array(elem) => {
                        let i = self.compile(index)?;
                        if !matches!(i.ty, SqlType::Int | SqlType::Bigint) {
                            return Err(type_error(expr, "Array index must be an integer"));
                        }
                        Typed {
                            ty: (**elem).clone(),
                            node: Node::Subscript(Box::new(b.node), Box::new(i.node)),
                        }
                    }
                    SqlType::Map(k, v) => {
                        let i = self.coerce_to(index, k)?;
                        Typed {
                            ty: (**v).clone(),
                            node: Node::Subscript(Box::new(b.node), Box::new(i.node)),
                        }
                    }
                    other => {
                        return Err(type_error(
                            expr,
                            format!("Subscript is only allowed on ARRAY and MAP, not {other}"),
                        ))
                    }
                }
            }
            Expr::Field { base, name } => {
                let b = self.compile(base)?;
                let SqlType::Struct(fields) = &b.ty else {
                    return Err(type_error(
                        expr,
                        format!("Field access (->) is only allowed on STRUCT, not {}", b.ty),
                    ));
                };
                let (fname, fty) = fields
                    .iter()
                    .find(|(n, _)| n == name)
                    .or_else(|| fields.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)))
                    .ok_or_else(|| type_error(expr, format!("Unknown struct field '{name}'")))?;
                Typed {
                    ty: fty.clone(),
                    node: Node::Field(Box::new(b.node), fname.clone()),
                }
            }
            Expr::ArrayCtor(items) => {
                let compiled = items
                    .iter()
                    .map(|e| self.compile(e))
                    .collect::<Result<Vec<_>>>()?;
                let elem = common_type(
                    compiled
                        .iter()
                        .zip(items)
                        .filter(|(_, e)| !is_null_literal(e))
                        .map(|(t, _)| &t.ty),
                )
                .ok_or_else(|| type_error(expr, "Array elements must all have one type"))?
                .unwrap_or(SqlType::String);
                Typed {
                    node: Node::Array(compiled.into_iter().map(|t| widen(t, &elem)).collect()),
                    ty: SqlType::Array(Box::new(elem)),
                }
            }
            Expr::MapCtor(entries) => {
                let mut keys = Vec::new();
                let mut vals = Vec::new();
                for (k, v) in entries {
                    keys.push(self.compile(k)?);
                    vals.push(self.compile(v)?);
                }
                let kt = common_type(keys.iter().map(|t| &t.ty))
                    .ok_or_else(|| type_error(expr, "Map keys must all have one type"))?
                    .unwrap_or(SqlType::String);
                let vt = common_type(
                    vals.iter()
                        .zip(entries)
                        .filter(|(_, (_, e))| !is_null_literal(e))
                        .map(|(t, _)| &t.ty),
                )
                .ok_or_else(|| type_error(expr, "Map values must all have one type"))?
                .unwrap_or(SqlType::String);
                Typed {
                    node: Node::Map(
                        keys.into_iter()
                            .zip(vals)
                            .map(|(k, v)| (widen(k, &kt), widen(v, &vt)))
                            .collect(),
                    ),
                    ty: SqlType::Map(Box::new(kt), Box::new(vt)),
                }
            }
            Expr::StructCtor(fields) => {
                let mut nodes = Vec::new();
                let mut types = Vec::new();
                for (n, e) in fields {
                    let t = self.compile(e)?;
                    types.push((n.clone(), t.ty));
                    nodes.push((n.clone(), t.node));
                }
                Typed {
                    node: Node::Struct(nodes),
                    ty: SqlType::Struct(types),
                }
            }
        })
    }

    /// Compiles `e` and, when it is a literal of another type that ksqlDB
    /// converts implicitly (a string for a timestamp, an int for a
    /// double), converts it.
    fn coerce_to(&mut self, e: &Expr, ty: &SqlType) -> Result<Typed> {
        let t = self.compile(e)?;
        if t.ty == *ty {
            return Ok(t);
        }
        if let Node::Const(v) = &t.node {
            if v.is_null() {
                return Ok(Typed {
                    node: Node::Const(Value::Null),
                    ty: ty.clone(),
                });
            }
            if t.ty == SqlType::String
                && matches!(ty, SqlType::Timestamp | SqlType::Date | SqlType::Time)
            {
                let cast = cast_value(v, ty);
                if cast.is_null() {
                    return Err(type_error(
                        e,
                        format!("'{}' is not a valid {ty}", v.to_sql_string()),
                    ));
                }
                return Ok(Typed {
                    node: Node::Const(cast),
                    ty: ty.clone(),
                });
            }
        }
        Ok(if t.ty.widens_to(ty) {
            Typed {
                node: widen(t, ty),
                ty: ty.clone(),
            }
        } else {
            t
        })
    }

    fn expect_bool(&self, expr: &Expr, t: &Typed) -> Result<()> {
        if t.ty != SqlType::Boolean && !matches!(t.node, Node::Const(Value::Null)) {
            return Err(type_error(
                expr,
                format!("Expected BOOLEAN but got {}", t.ty),
            ));
        }
        Ok(())
    }

    fn binary(&mut self, expr: &Expr, op: BinOp, left: &Expr, right: &Expr) -> Result<Typed> {
        match op {
            BinOp::And | BinOp::Or => {
                let l = self.compile(left)?;
                let r = self.compile(right)?;
                self.expect_bool(expr, &l)?;
                self.expect_bool(expr, &r)?;
                let node = if op == BinOp::And {
                    Node::And(Box::new(l.node), Box::new(r.node))
                } else {
                    Node::Or(Box::new(l.node), Box::new(r.node))
                };
                Ok(Typed {
                    node,
                    ty: SqlType::Boolean,
                })
            }
            BinOp::Eq
            | BinOp::NotEq
            | BinOp::Lt
            | BinOp::LtEq
            | BinOp::Gt
            | BinOp::GtEq
            | BinOp::IsDistinctFrom
            | BinOp::IsNotDistinctFrom => {
                let mut l = self.compile(left)?;
                let mut r = self.compile(right)?;
                if l.ty != r.ty {
                    if matches!(l.node, Node::Const(_)) {
                        l = self.coerce_to(left, &r.ty)?;
                    } else if matches!(r.node, Node::Const(_)) {
                        r = self.coerce_to(right, &l.ty)?;
                    }
                }
                if !comparable(&l.ty, &r.ty) && !is_null_literal(left) && !is_null_literal(right) {
                    return Err(type_error(
                        expr,
                        format!(
                            "Cannot compare {} ({}) to {} ({}) with {}.",
                            left,
                            l.ty,
                            right,
                            r.ty,
                            op.symbol()
                        ),
                    ));
                }
                Ok(Typed {
                    node: Node::Compare(op, Box::new(l.node), Box::new(r.node)),
                    ty: SqlType::Boolean,
                })
            }
            BinOp::Concat => {
                let l = self.compile(left)?;
                let r = self.compile(right)?;
                if l.ty != SqlType::String || r.ty != SqlType::String {
                    return Err(type_error(expr, "|| needs STRING operands"));
                }
                Ok(Typed {
                    node: Node::Concat(Box::new(l.node), Box::new(r.node)),
                    ty: SqlType::String,
                })
            }
            BinOp::Add | BinOp::Sub | BinOp::Mul | BinOp::Div | BinOp::Mod => {
                let l = self.compile(left)?;
                let r = self.compile(right)?;
                if op == BinOp::Add && l.ty == SqlType::String && r.ty == SqlType::String {
                    return Ok(Typed {
                        node: Node::Concat(Box::new(l.node), Box::new(r.node)),
                        ty: SqlType::String,
                    });
                }
                let ty = arith_type(op, &l.ty, &r.ty).ok_or_else(|| {
                    type_error(
                        expr,
                        format!(
                            "Unsupported arithmetic types. {} {}",
                            l.ty.rest_name(),
                            r.ty.rest_name()
                        ),
                    )
                })?;
                Ok(Typed {
                    node: Node::Arith(op, Box::new(l.node), Box::new(r.node), ty.clone()),
                    ty,
                })
            }
        }
    }

    fn case(
        &mut self,
        expr: &Expr,
        operand: Option<&Expr>,
        whens: &[(Expr, Expr)],
        else_: Option<&Expr>,
    ) -> Result<Typed> {
        let mut conds = Vec::new();
        let mut results = Vec::new();
        for (w, t) in whens {
            let cond = match operand {
                // `CASE x WHEN v` is `CASE WHEN x = v`.
                Some(o) => Expr::Binary {
                    op: BinOp::Eq,
                    left: Box::new(o.clone()),
                    right: Box::new(w.clone()),
                },
                None => w.clone(),
            };
            let c = self.compile(&cond)?;
            self.expect_bool(expr, &c)?;
            conds.push(c.node);
            results.push((self.compile(t)?, is_null_literal(t)));
        }
        let else_t = match else_ {
            Some(e) => Some((self.compile(e)?, is_null_literal(e))),
            None => None,
        };
        let ty = common_type(
            results
                .iter()
                .chain(else_t.iter())
                .filter(|(_, null)| !null)
                .map(|(t, _)| &t.ty),
        )
        .ok_or_else(|| {
            type_error(
                expr,
                "Invalid Case expression. Type for all 'THEN' clauses should be the same.",
            )
        })?
        .unwrap_or(SqlType::String);
        let whens = conds
            .into_iter()
            .zip(results)
            .map(|(c, (t, _))| (c, widen(t, &ty)))
            .collect();
        Ok(Typed {
            node: Node::Case(whens, else_t.map(|(t, _)| Box::new(widen(t, &ty)))),
            ty,
        })
    }

    fn function(&mut self, expr: &Expr, name: &str, args: &[Expr], star: bool) -> Result<Typed> {
        if functions::aggregate(name).is_some() {
            return Err(SqlError::invalid(format!(
                "Aggregate function {name} is not allowed in {}: use it in the SELECT or HAVING of a GROUP BY query.",
                self.clause
            )));
        }
        if star {
            return Err(type_error(
                expr,
                format!("{name}(*) is not a function call"),
            ));
        }
        let scalar = functions::scalar(name).ok_or_else(|| SqlError::UnknownFunction {
            name: name.to_string(),
        })?;
        // Lambdas are typed from the other arguments: compile the non-lambda
        // arguments first.
        let mut compiled: Vec<Option<Typed>> = Vec::with_capacity(args.len());
        for a in args {
            compiled.push(match a {
                Expr::Lambda { .. } => None,
                e => Some(self.compile(e)?),
            });
        }
        let known: Vec<Option<SqlType>> = compiled
            .iter()
            .map(|t| t.as_ref().map(|t| t.ty.clone()))
            .collect();
        for (i, a) in args.iter().enumerate() {
            if let Expr::Lambda { params, body } = a {
                let param_types = functions::lambda_params(name, &known, i, params.len())
                    .ok_or_else(|| {
                        type_error(expr, format!("{name} does not take a lambda here"))
                    })?;
                let before = self.lambda.len();
                for (p, t) in params.iter().zip(param_types) {
                    self.lambda.push((p.clone(), t));
                }
                let body = self.compile(body);
                self.lambda.truncate(before);
                let body = body?;
                compiled[i] = Some(Typed {
                    node: Node::Lambda(Box::new(body.node), params.len()),
                    ty: body.ty,
                });
            }
        }
        let compiled: Vec<Typed> = compiled.into_iter().flatten().collect();
        let types: Vec<SqlType> = compiled.iter().map(|t| t.ty.clone()).collect();
        let nulls: Vec<bool> = args.iter().map(is_null_literal).collect();
        let (ret, arg_types) = scalar.check(&types, &nulls).map_err(|why| {
            SqlError::invalid(format!(
                "Function '{}' does not accept parameters ({}).{}",
                scalar.name,
                types
                    .iter()
                    .map(|t| t.to_string())
                    .collect::<Vec<_>>()
                    .join(", "),
                if why.is_empty() {
                    String::new()
                } else {
                    format!(" {why}")
                }
            ))
        })?;
        let nodes = compiled
            .into_iter()
            .enumerate()
            .map(|(i, t)| match arg_types.get(i) {
                Some(Some(want)) => widen(t, want),
                _ => t.node,
            })
            .collect();
        Ok(Typed {
            node: Node::Call(scalar, nodes, ret.clone()),
            ty: ret,
        })
    }
}

fn dec_op(op: BinOp) -> Option<DecOp> {
    Some(match op {
        BinOp::Add => DecOp::Add,
        BinOp::Sub => DecOp::Sub,
        BinOp::Mul => DecOp::Mul,
        BinOp::Div => DecOp::Div,
        BinOp::Mod => DecOp::Mod,
        _ => return None,
    })
}

/// The type of `l op r`: the wider type, except that DECIMAL operands
/// (with INT or BIGINT) take ksqlDB's precision and scale of the operator.
fn arith_type(op: BinOp, l: &SqlType, r: &SqlType) -> Option<SqlType> {
    let wide = SqlType::wider(l, r)?;
    if !matches!(wide, SqlType::Decimal(..)) {
        return Some(wide);
    }
    let (p, s) = decimal::result_type(dec_op(op)?, l.as_decimal()?, r.as_decimal()?);
    Some(SqlType::Decimal(p, s))
}

/// Wraps a node in a widening cast when its type differs from `ty`.
fn widen(t: Typed, ty: &SqlType) -> Node {
    if t.ty == *ty {
        t.node
    } else if let Node::Const(v) = &t.node {
        Node::Const(cast_value(v, ty))
    } else {
        Node::Cast(Box::new(t.node), ty.clone())
    }
}

/// The common type of several (numeric ones widen); `Some(None)` when
/// there are none, `None` when they conflict.
fn common_type<'a>(mut types: impl Iterator<Item = &'a SqlType>) -> Option<Option<SqlType>> {
    let Some(first) = types.next() else {
        return Some(None);
    };
    let mut acc = first.clone();
    for t in types {
        if *t == acc {
            continue;
        }
        acc = SqlType::wider(&acc, t)?;
    }
    Some(Some(acc))
}

fn comparable(a: &SqlType, b: &SqlType) -> bool {
    a == b || (a.is_numeric() && b.is_numeric())
}

fn castable(from: &SqlType, to: &SqlType) -> bool {
    use SqlType::*;
    if from == to || *to == String {
        return true;
    }
    match (from, to) {
        (Int | Bigint | Double | Decimal(..) | String, Int | Bigint | Double | Decimal(..)) => true,
        (String, Boolean | Timestamp | Date | Time | Bytes) => true,
        (Bytes, String) => true,
        (Timestamp, Date | Time) | (Date, Timestamp) => true,
        (Bigint, Timestamp) => true,
        (Array(a), Array(b)) => castable(a, b),
        (Map(ak, av), Map(bk, bv)) => castable(ak, bk) && castable(av, bv),
        _ => false,
    }
}

/// CAST semantics; NULL when the value does not convert.
pub fn cast_value(v: &Value, to: &SqlType) -> Value {
    use crate::time;
    match (v, to) {
        (Value::Null, _) => Value::Null,
        (_, SqlType::String) => Value::String(v.to_sql_string()),
        (Value::Decimal(d), SqlType::Int) => Value::Int(d.trunc_i64() as i32),
        (Value::Decimal(d), SqlType::Bigint) => Value::Bigint(d.trunc_i64()),
        (Value::Decimal(d), SqlType::Double) => Value::Double(d.to_f64()),
        (_, SqlType::Decimal(p, s)) => {
            let d = match v {
                Value::Int(_) | Value::Bigint(_) | Value::Decimal(_) => v.as_dec(),
                Value::Double(x) => Dec::from_f64(*x, *p, *s),
                Value::String(t) => Dec::parse(t),
                _ => None,
            };
            d.and_then(|d| d.fit(*p, *s))
                .map_or(Value::Null, Value::Decimal)
        }
        (Value::Int(_) | Value::Bigint(_) | Value::Double(_), SqlType::Int) => match v {
            Value::Double(d) => Value::Int(*d as i32),
            _ => Value::Int(v.as_i64().unwrap_or(0) as i32),
        },
        (Value::Int(_) | Value::Bigint(_) | Value::Double(_), SqlType::Bigint) => match v {
            Value::Double(d) => Value::Bigint(*d as i64),
            _ => Value::Bigint(v.as_i64().unwrap_or(0)),
        },
        (Value::Int(_) | Value::Bigint(_) | Value::Double(_), SqlType::Double) => {
            Value::Double(v.as_f64().unwrap_or(0.0))
        }
        (Value::String(s), SqlType::Int) => s.trim().parse().map_or(Value::Null, Value::Int),
        (Value::String(s), SqlType::Bigint) => s.trim().parse().map_or(Value::Null, Value::Bigint),
        (Value::String(s), SqlType::Double) => s.trim().parse().map_or(Value::Null, Value::Double),
        (Value::String(s), SqlType::Boolean) => match s.trim().to_ascii_lowercase().as_str() {
            "true" | "t" | "yes" | "y" | "1" => Value::Boolean(true),
            "false" | "f" | "no" | "n" | "0" => Value::Boolean(false),
            _ => Value::Null,
        },
        (Value::String(s), SqlType::Timestamp) => {
            time::parse_timestamp_text(s).map_or(Value::Null, Value::Timestamp)
        }
        (Value::String(s), SqlType::Date) => {
            time::parse_date_text(s).map_or(Value::Null, Value::Date)
        }
        (Value::String(s), SqlType::Time) => {
            time::parse_time_text(s).map_or(Value::Null, Value::Time)
        }
        (Value::String(s), SqlType::Bytes) => {
            functions::base64_decode(s).map_or(Value::Null, Value::Bytes)
        }
        (Value::Timestamp(ms), SqlType::Date) => Value::Date(ms.div_euclid(86_400_000) as i32),
        (Value::Timestamp(ms), SqlType::Time) => Value::Time(ms.rem_euclid(86_400_000)),
        (Value::Date(d), SqlType::Timestamp) => Value::Timestamp(i64::from(*d) * 86_400_000),
        (Value::Bigint(ms), SqlType::Timestamp) => Value::Timestamp(*ms),
        (Value::Array(items), SqlType::Array(t)) => {
            Value::Array(items.iter().map(|i| cast_value(i, t)).collect())
        }
        (Value::Map(entries), SqlType::Map(kt, vt)) => Value::Map(
            entries
                .iter()
                .map(|(k, v)| (cast_value(k, kt), cast_value(v, vt)))
                .collect(),
        ),
        (v, t) if value_has_type(v, t) => v.clone(),
        _ => Value::Null,
    }
}

fn value_has_type(v: &Value, t: &SqlType) -> bool {
    matches!(
        (v, t),
        (Value::Boolean(_), SqlType::Boolean)
            | (Value::Int(_), SqlType::Int)
            | (Value::Bigint(_), SqlType::Bigint)
            | (Value::Double(_), SqlType::Double)
            | (Value::Bytes(_), SqlType::Bytes)
            | (Value::Timestamp(_), SqlType::Timestamp)
            | (Value::Date(_), SqlType::Date)
            | (Value::Time(_), SqlType::Time)
            | (Value::Struct(_), SqlType::Struct(_))
    )
}

/// The evaluation context: the row, and lambda arguments bound so far.
#[derive(Debug)]
pub struct Ctx<'a> {
    pub row: &'a [Value],
    pub lambda: Vec<Value>,
}

impl Node {
    /// Marks the row columns the expression reads (`used[i]` for
    /// column `i`; indexes past the end are ignored).
    pub fn mark_columns(&self, used: &mut [bool]) {
        fn all<'a>(nodes: impl IntoIterator<Item = &'a Node>, used: &mut [bool]) {
            for n in nodes {
                n.mark_columns(used);
            }
        }
        match self {
            Node::Column(i) => {
                if let Some(u) = used.get_mut(*i) {
                    *u = true;
                }
            }
            Node::Const(_) | Node::LambdaArg(_) => {}
            Node::Not(a)
            | Node::Negate(a)
            | Node::IsNull(a, _)
            | Node::Cast(a, _)
            | Node::Lambda(a, _)
            | Node::Field(a, _) => a.mark_columns(used),
            Node::Arith(_, a, b, _)
            | Node::Concat(a, b)
            | Node::Compare(_, a, b)
            | Node::And(a, b)
            | Node::Or(a, b)
            | Node::Subscript(a, b) => all([&**a, &**b], used),
            Node::Like(a, p, _) => {
                a.mark_columns(used);
                if let LikePattern::Dynamic(p, _) = p {
                    p.mark_columns(used);
                }
            }
            Node::Between(a, b, c, _) => all([&**a, &**b, &**c], used),
            Node::In(a, list, _) => {
                a.mark_columns(used);
                all(list, used);
            }
            Node::Case(arms, default) => {
                all(arms.iter().flat_map(|(w, t)| [w, t]), used);
                all(default.iter().map(|n| &**n), used);
            }
            Node::Call(_, args, _) | Node::Array(args) => all(args, used),
            Node::Map(entries) => all(entries.iter().flat_map(|(k, v)| [k, v]), used),
            Node::Struct(fields) => all(fields.iter().map(|(_, n)| n), used),
        }
    }

    /// Evaluates against a row.
    pub fn eval(&self, row: &[Value]) -> Value {
        self.eval_in(&mut Ctx {
            row,
            lambda: Vec::new(),
        })
    }

    /// Evaluates with lambda arguments bound.
    pub fn eval_in(&self, ctx: &mut Ctx<'_>) -> Value {
        match self {
            Node::Const(v) => v.clone(),
            Node::Column(i) => ctx.row.get(*i).cloned().unwrap_or(Value::Null),
            Node::LambdaArg(i) => ctx.lambda.get(*i).cloned().unwrap_or(Value::Null),
            Node::Arith(op, l, r, ty) => arith(*op, &l.eval_in(ctx), &r.eval_in(ctx), ty),
            Node::Concat(l, r) => match (l.eval_in(ctx), r.eval_in(ctx)) {
                (Value::String(a), Value::String(b)) => Value::String(a + &b),
                _ => Value::Null,
            },
            Node::Compare(op, l, r) => compare(*op, &l.eval_in(ctx), &r.eval_in(ctx)),
            Node::And(l, r) => match l.eval_in(ctx) {
                Value::Boolean(false) => Value::Boolean(false),
                a => match (a, r.eval_in(ctx)) {
                    (_, Value::Boolean(false)) => Value::Boolean(false),
                    (Value::Boolean(true), Value::Boolean(true)) => Value::Boolean(true),
                    _ => Value::Null,
                },
            },
            Node::Or(l, r) => match l.eval_in(ctx) {
                Value::Boolean(true) => Value::Boolean(true),
                a => match (a, r.eval_in(ctx)) {
                    (_, Value::Boolean(true)) => Value::Boolean(true),
                    (Value::Boolean(false), Value::Boolean(false)) => Value::Boolean(false),
                    _ => Value::Null,
                },
            },
            Node::Not(e) => match e.eval_in(ctx) {
                Value::Boolean(b) => Value::Boolean(!b),
                _ => Value::Null,
            },
            Node::Negate(e) => match e.eval_in(ctx) {
                Value::Int(v) => Value::Int(v.wrapping_neg()),
                Value::Bigint(v) => Value::Bigint(v.wrapping_neg()),
                Value::Double(v) => Value::Double(-v),
                Value::Decimal(d) => Value::Decimal(Dec::new(-d.unscaled, d.scale)),
                _ => Value::Null,
            },
            Node::IsNull(e, negated) => Value::Boolean(e.eval_in(ctx).is_null() != *negated),
            Node::Like(e, pat, negated) => {
                let Value::String(s) = e.eval_in(ctx) else {
                    return Value::Null;
                };
                let m = match pat {
                    LikePattern::Fixed(re) => re.is_match(&s),
                    LikePattern::Dynamic(p, esc) => match p.eval_in(ctx) {
                        Value::String(p) => match like_regex(&p, *esc) {
                            Some(re) => re.is_match(&s),
                            None => return Value::Null,
                        },
                        _ => return Value::Null,
                    },
                };
                Value::Boolean(m != *negated)
            }
            Node::Between(e, lo, hi, negated) => {
                let v = e.eval_in(ctx);
                match (v.sql_cmp(&lo.eval_in(ctx)), v.sql_cmp(&hi.eval_in(ctx))) {
                    (Some(a), Some(b)) => Value::Boolean((a.is_ge() && b.is_le()) != *negated),
                    _ => Value::Null,
                }
            }
            Node::In(e, list, negated) => {
                let v = e.eval_in(ctx);
                if v.is_null() {
                    return Value::Null;
                }
                let mut saw_null = false;
                for item in list {
                    let i = item.eval_in(ctx);
                    if i.is_null() {
                        saw_null = true;
                    } else if v.sql_cmp(&i) == Some(std::cmp::Ordering::Equal) {
                        return Value::Boolean(!*negated);
                    }
                }
                if saw_null {
                    Value::Null
                } else {
                    Value::Boolean(*negated)
                }
            }
            Node::Case(whens, else_) => {
                for (c, t) in whens {
                    if c.eval_in(ctx) == Value::Boolean(true) {
                        return t.eval_in(ctx);
                    }
                }
                else_.as_ref().map_or(Value::Null, |e| e.eval_in(ctx))
            }
            Node::Cast(e, ty) => cast_value(&e.eval_in(ctx), ty),
            Node::Call(f, args, _) => f.call(args, ctx),
            Node::Lambda(body, _) => body.eval_in(ctx),
            Node::Subscript(b, i) => match (b.eval_in(ctx), i.eval_in(ctx)) {
                (Value::Array(items), idx) => {
                    // ksqlDB arrays are 1-based; negative indexes count from the end.
                    let Some(i) = idx.as_i64() else {
                        return Value::Null;
                    };
                    let len = items.len() as i64;
                    let pos = if i > 0 {
                        i - 1
                    } else if i < 0 {
                        len + i
                    } else {
                        -1
                    };
                    if (0..len).contains(&pos) {
                        items[pos as usize].clone()
                    } else {
                        Value::Null
                    }
                }
                (m @ Value::Map(_), k) => m.map_get(&k).cloned().unwrap_or(Value::Null),
                _ => Value::Null,
            },
            Node::Field(b, name) => match b.eval_in(ctx) {
                Value::Struct(fields) => fields
                    .into_iter()
                    .find(|(n, _)| n == name)
                    .map_or(Value::Null, |(_, v)| v),
                _ => Value::Null,
            },
            Node::Array(items) => Value::Array(items.iter().map(|i| i.eval_in(ctx)).collect()),
            Node::Map(entries) => {
                let mut out: Vec<(Value, Value)> = Vec::new();
                for (k, v) in entries {
                    let k = k.eval_in(ctx);
                    let v = v.eval_in(ctx);
                    match out.iter_mut().find(|(ek, _)| *ek == k) {
                        Some(e) => e.1 = v,
                        None => out.push((k, v)),
                    }
                }
                Value::Map(out)
            }
            Node::Struct(fields) => Value::Struct(
                fields
                    .iter()
                    .map(|(n, e)| (n.clone(), e.eval_in(ctx)))
                    .collect(),
            ),
        }
    }

    /// Calls a lambda node with arguments.
    pub fn call_lambda(&self, ctx: &mut Ctx<'_>, args: &[Value]) -> Value {
        let before = ctx.lambda.len();
        ctx.lambda.extend_from_slice(args);
        let v = self.eval_in(ctx);
        ctx.lambda.truncate(before);
        v
    }
}

fn compare(op: BinOp, l: &Value, r: &Value) -> Value {
    use std::cmp::Ordering::*;
    match op {
        BinOp::IsDistinctFrom | BinOp::IsNotDistinctFrom => {
            let same = match (l.is_null(), r.is_null()) {
                (true, true) => true,
                (false, false) => l.sql_cmp(r) == Some(Equal) || l == r,
                _ => false,
            };
            Value::Boolean(same == (op == BinOp::IsNotDistinctFrom))
        }
        _ => {
            if l.is_null() || r.is_null() {
                return Value::Null;
            }
            let ord = match l.sql_cmp(r) {
                Some(o) => o,
                // Structs, maps: only equality is defined.
                None => {
                    return match op {
                        BinOp::Eq => Value::Boolean(l == r),
                        BinOp::NotEq => Value::Boolean(l != r),
                        _ => Value::Null,
                    }
                }
            };
            Value::Boolean(match op {
                BinOp::Eq => ord == Equal,
                BinOp::NotEq => ord != Equal,
                BinOp::Lt => ord == Less,
                BinOp::LtEq => ord != Greater,
                BinOp::Gt => ord == Greater,
                BinOp::GtEq => ord != Less,
                _ => return Value::Null,
            })
        }
    }
}

fn arith(op: BinOp, l: &Value, r: &Value, ty: &SqlType) -> Value {
    if l.is_null() || r.is_null() {
        return Value::Null;
    }
    match ty {
        SqlType::Int | SqlType::Bigint => {
            let (Some(a), Some(b)) = (l.as_i64(), r.as_i64()) else {
                return Value::Null;
            };
            let v = match op {
                BinOp::Add => a.wrapping_add(b),
                BinOp::Sub => a.wrapping_sub(b),
                BinOp::Mul => a.wrapping_mul(b),
                // Java throws on integer division by zero; ksqlDB logs and yields NULL.
                BinOp::Div if b == 0 => return Value::Null,
                BinOp::Div => a.wrapping_div(b),
                BinOp::Mod if b == 0 => return Value::Null,
                BinOp::Mod => a.wrapping_rem(b),
                _ => return Value::Null,
            };
            if *ty == SqlType::Int {
                Value::Int(v as i32)
            } else {
                Value::Bigint(v)
            }
        }
        SqlType::Decimal(p, s) => match (l.as_dec(), r.as_dec(), dec_op(op)) {
            (Some(a), Some(b), Some(op)) => {
                decimal::apply(op, a, b, *p, *s).map_or(Value::Null, Value::Decimal)
            }
            _ => Value::Null,
        },
        SqlType::Double => {
            let (Some(a), Some(b)) = (l.as_f64(), r.as_f64()) else {
                return Value::Null;
            };
            Value::Double(match op {
                BinOp::Add => a + b,
                BinOp::Sub => a - b,
                BinOp::Mul => a * b,
                BinOp::Div => a / b,
                BinOp::Mod => a % b,
                _ => return Value::Null,
            })
        }
        _ => Value::Null,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn scope() -> Scope {
        let mut s = Scope::default();
        s.push(Some("T"), "ID", SqlType::Int);
        s.push(Some("T"), "NAME", SqlType::String);
        s.push(Some("T"), "PRICE", SqlType::Double);
        s.push(
            Some("T"),
            "S",
            SqlType::Struct(vec![("A".into(), SqlType::Int)]),
        );
        s.push(Some("T"), "ARR", SqlType::Array(Box::new(SqlType::Int)));
        s
    }

    fn row() -> Vec<Value> {
        vec![
            Value::Int(7),
            Value::String("widget".into()),
            Value::Double(2.5),
            Value::Struct(vec![("A".into(), Value::Int(3))]),
            Value::Array(vec![Value::Int(1), Value::Int(2), Value::Int(3)]),
        ]
    }

    fn eval(text: &str) -> Result<Value> {
        let parsed = crate::parser::parse_one(&format!("SELECT {text} FROM T;"), &BTreeMap::new())?;
        let crate::ast::Statement::Select(q) = parsed.statement else {
            panic!()
        };
        let crate::ast::SelectItem::Expr { expr, .. } = &q.select[0] else {
            panic!()
        };
        Ok(compile(expr, &scope(), "SELECT")?.node.eval(&row()))
    }

    fn typed(text: &str) -> SqlType {
        let parsed =
            crate::parser::parse_one(&format!("SELECT {text} FROM T;"), &BTreeMap::new()).unwrap();
        let crate::ast::Statement::Select(q) = parsed.statement else {
            panic!()
        };
        let crate::ast::SelectItem::Expr { expr, .. } = &q.select[0] else {
            panic!()
        };
        compile(expr, &scope(), "SELECT").unwrap().ty
    }

    fn dec(s: &str) -> Value {
        Value::Decimal(Dec::parse(s).unwrap())
    }

    #[test]
    fn decimals_type_and_compute_like_ksqldb() {
        assert_eq!(typed("1.5"), SqlType::Decimal(2, 1));
        assert_eq!(typed("1.5E3"), SqlType::Double);
        assert_eq!(typed("ID + 1.25"), SqlType::Decimal(13, 2));
        assert_eq!(eval("ID + 1.25").unwrap(), dec("8.25"));
        assert_eq!(typed("1.5 * 0.25"), SqlType::Decimal(6, 3));
        assert_eq!(eval("1.5 * 0.25").unwrap(), dec("0.375"));
        assert_eq!(typed("PRICE * 1.5"), SqlType::Double);
        assert_eq!(eval("PRICE * 1.5").unwrap(), Value::Double(3.75));
        assert_eq!(eval("-1.5 < 1").unwrap(), Value::Boolean(true));
        assert_eq!(eval("1.50 = 1.5").unwrap(), Value::Boolean(true));
        assert_eq!(eval("CAST(2.675 AS DECIMAL(3, 2))").unwrap(), dec("2.68"));
        assert_eq!(eval("CAST(123.4 AS DECIMAL(3, 1))").unwrap(), Value::Null);
        assert_eq!(eval("CAST(-7.9 AS INT)").unwrap(), Value::Int(-7));
        assert_eq!(
            eval("CAST('0.1' AS DECIMAL(2, 1)) + 0.2").unwrap(),
            dec("0.3")
        );
        assert_eq!(
            eval("CAST(1.50 AS STRING)").unwrap(),
            Value::String("1.50".into())
        );
        assert_eq!(eval("1.0 / 3").unwrap(), Value::Null);
    }

    #[test]
    fn arithmetic_widens() {
        assert_eq!(eval("ID + 1").unwrap(), Value::Int(8));
        assert_eq!(eval("ID * PRICE").unwrap(), Value::Double(17.5));
        assert_eq!(eval("ID / 0").unwrap(), Value::Null);
        assert_eq!(
            eval("ID + 3000000000").unwrap(),
            Value::Bigint(3_000_000_007)
        );
    }

    #[test]
    fn three_valued_logic() {
        assert_eq!(eval("NULL AND false").unwrap(), Value::Boolean(false));
        assert_eq!(
            eval("CAST(NULL AS BOOLEAN) OR true").unwrap(),
            Value::Boolean(true)
        );
        assert_eq!(eval("ID IN (1, NULL)").unwrap(), Value::Null);
        assert_eq!(eval("ID IN (1, 7)").unwrap(), Value::Boolean(true));
    }

    #[test]
    fn case_like_between() {
        assert_eq!(
            eval("CASE WHEN ID > 5 THEN 'big' ELSE 'small' END").unwrap(),
            Value::String("big".into())
        );
        assert_eq!(eval("NAME LIKE 'wid%'").unwrap(), Value::Boolean(true));
        assert_eq!(eval("NAME NOT LIKE '_x%'").unwrap(), Value::Boolean(true));
        assert_eq!(eval("ID BETWEEN 1 AND 7").unwrap(), Value::Boolean(true));
    }

    #[test]
    fn struct_array_access() {
        assert_eq!(eval("S->A").unwrap(), Value::Int(3));
        assert_eq!(eval("ARR[1]").unwrap(), Value::Int(1));
        assert_eq!(eval("ARR[-1]").unwrap(), Value::Int(3));
        assert_eq!(eval("ARR[9]").unwrap(), Value::Null);
    }

    #[test]
    fn casts() {
        assert_eq!(eval("CAST('42' AS INT)").unwrap(), Value::Int(42));
        assert_eq!(eval("CAST('x' AS INT)").unwrap(), Value::Null);
        assert_eq!(
            eval("CAST(PRICE AS STRING)").unwrap(),
            Value::String("2.5".into())
        );
    }

    #[test]
    fn errors() {
        assert_eq!(
            eval("NOPE").unwrap_err().to_string(),
            "SELECT column 'NOPE' cannot be resolved."
        );
        assert!(eval("ID + 'x'")
            .unwrap_err()
            .to_string()
            .contains("Unsupported arithmetic types. INTEGER STRING"));
        assert!(matches!(
            eval("FOO(1)"),
            Err(SqlError::UnknownFunction { .. })
        ));
    }
}
