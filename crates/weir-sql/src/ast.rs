//! The syntax tree of ksqlDB statements, as the parser builds it.

use std::collections::BTreeMap;

use crate::types::SqlType;

/// A statement with the text it was parsed from.
#[derive(Debug, Clone, PartialEq)]
pub struct Parsed {
    pub statement: Statement,
    /// The statement's text, ending with `;`.
    pub text: String,
}

/// `WITH (...)` properties: upper-cased names to literal values.
pub type Props = BTreeMap<String, Literal>;

#[derive(Debug, Clone, PartialEq)]
pub enum Statement {
    CreateSource(CreateSource),
    CreateAsSelect(CreateAsSelect),
    InsertInto {
        target: String,
        query: Box<Query>,
        props: Props,
    },
    InsertValues {
        target: String,
        columns: Vec<String>,
        values: Vec<Expr>,
    },
    Drop {
        kind: SourceKind,
        name: String,
        if_exists: bool,
        delete_topic: bool,
    },
    Terminate {
        /// `None` for `TERMINATE ALL`.
        query_id: Option<String>,
    },
    Show {
        what: ShowWhat,
        extended: bool,
    },
    Describe {
        name: String,
        extended: bool,
    },
    DescribeFunction(String),
    DescribeAll {
        kind: SourceKind,
        extended: bool,
    },
    Explain(ExplainTarget),
    Print {
        topic: String,
        from_beginning: bool,
        interval: Option<u64>,
        limit: Option<u64>,
    },
    Set {
        name: String,
        value: String,
    },
    Unset(String),
    Define {
        name: String,
        value: String,
    },
    Undefine(String),
    RunScript(String),
    Select(Box<Query>),
}

#[derive(Debug, Clone, PartialEq)]
pub enum ExplainTarget {
    QueryId(String),
    Statement(Box<Statement>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceKind {
    Stream,
    Table,
}

impl SourceKind {
    pub fn name(self) -> &'static str {
        match self {
            SourceKind::Stream => "STREAM",
            SourceKind::Table => "TABLE",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShowWhat {
    Streams,
    Tables,
    Queries,
    Topics { all: bool },
    Properties,
    Functions,
    Variables,
}

/// How a column is declared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnRole {
    Value,
    /// `KEY` (streams).
    Key,
    /// `PRIMARY KEY` (tables).
    PrimaryKey,
    /// `HEADERS` or `HEADER('name')`.
    Headers,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ColumnDef {
    pub name: String,
    pub ty: SqlType,
    pub role: ColumnRole,
    /// For `HEADER('key')`.
    pub header_key: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct CreateSource {
    pub kind: SourceKind,
    pub name: String,
    pub or_replace: bool,
    pub if_not_exists: bool,
    /// `CREATE SOURCE STREAM|TABLE`: read-only (and, for tables, materialized).
    pub source: bool,
    pub columns: Vec<ColumnDef>,
    pub props: Props,
}

#[derive(Debug, Clone, PartialEq)]
pub struct CreateAsSelect {
    pub kind: SourceKind,
    pub name: String,
    pub or_replace: bool,
    pub if_not_exists: bool,
    pub props: Props,
    pub query: Box<Query>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Literal {
    Null,
    Boolean(bool),
    Integer(i64),
    Decimal(String),
    String(String),
}

impl Literal {
    /// The literal as text (property values).
    pub fn as_text(&self) -> String {
        match self {
            Literal::Null => "null".into(),
            Literal::Boolean(b) => b.to_string(),
            Literal::Integer(i) => i.to_string(),
            Literal::Decimal(d) | Literal::String(d) => d.clone(),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Query {
    pub select: Vec<SelectItem>,
    pub from: Relation,
    pub window: Option<WindowExpr>,
    pub where_: Option<Expr>,
    pub group_by: Vec<Expr>,
    pub partition_by: Vec<Expr>,
    pub having: Option<Expr>,
    pub emit: Emit,
    pub limit: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Emit {
    /// No EMIT clause: a pull query (or a persistent query, where EMIT
    /// CHANGES is implied).
    None,
    Changes,
    Final,
}

#[derive(Debug, Clone, PartialEq)]
pub enum SelectItem {
    /// `*`, or `alias.*`.
    Wildcard(Option<String>),
    Expr {
        expr: Expr,
        alias: Option<String>,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub struct AliasedSource {
    pub name: String,
    pub alias: Option<String>,
}

impl AliasedSource {
    /// The name columns are qualified with.
    pub fn qualifier(&self) -> &str {
        self.alias.as_deref().unwrap_or(&self.name)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JoinType {
    Inner,
    Left,
    Right,
    Full,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Join {
    pub kind: JoinType,
    pub right: AliasedSource,
    pub within: Option<Within>,
    pub on: Expr,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Within {
    pub before_ms: i64,
    pub after_ms: i64,
    pub grace_ms: Option<i64>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Relation {
    pub first: AliasedSource,
    pub joins: Vec<Join>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum WindowKind {
    Tumbling { size_ms: i64 },
    Hopping { size_ms: i64, advance_ms: i64 },
    Session { gap_ms: i64 },
}

#[derive(Debug, Clone, PartialEq)]
pub struct WindowExpr {
    pub kind: WindowKind,
    pub retention_ms: Option<i64>,
    pub grace_ms: Option<i64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BinOp {
    Add,
    Sub,
    Mul,
    Div,
    Mod,
    Concat,
    Eq,
    NotEq,
    Lt,
    LtEq,
    Gt,
    GtEq,
    And,
    Or,
    IsDistinctFrom,
    IsNotDistinctFrom,
}

impl BinOp {
    pub fn symbol(self) -> &'static str {
        match self {
            BinOp::Add => "+",
            BinOp::Sub => "-",
            BinOp::Mul => "*",
            BinOp::Div => "/",
            BinOp::Mod => "%",
            BinOp::Concat => "||",
            BinOp::Eq => "=",
            BinOp::NotEq => "<>",
            BinOp::Lt => "<",
            BinOp::LtEq => "<=",
            BinOp::Gt => ">",
            BinOp::GtEq => ">=",
            BinOp::And => "AND",
            BinOp::Or => "OR",
            BinOp::IsDistinctFrom => "IS DISTINCT FROM",
            BinOp::IsNotDistinctFrom => "IS NOT DISTINCT FROM",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    Literal(Literal),
    /// A column, optionally qualified by a source name or alias.
    Column {
        qualifier: Option<String>,
        name: String,
    },
    /// A lambda parameter inside a lambda body.
    LambdaVar(String),
    Binary {
        op: BinOp,
        left: Box<Expr>,
        right: Box<Expr>,
    },
    Not(Box<Expr>),
    Negate(Box<Expr>),
    IsNull {
        expr: Box<Expr>,
        negated: bool,
    },
    Like {
        expr: Box<Expr>,
        pattern: Box<Expr>,
        escape: Option<char>,
        negated: bool,
    },
    Between {
        expr: Box<Expr>,
        low: Box<Expr>,
        high: Box<Expr>,
        negated: bool,
    },
    InList {
        expr: Box<Expr>,
        list: Vec<Expr>,
        negated: bool,
    },
    Case {
        operand: Option<Box<Expr>>,
        whens: Vec<(Expr, Expr)>,
        else_: Option<Box<Expr>>,
    },
    Cast {
        expr: Box<Expr>,
        ty: SqlType,
    },
    Function {
        name: String,
        args: Vec<Expr>,
        /// `COUNT(*)`.
        star: bool,
    },
    Lambda {
        params: Vec<String>,
        body: Box<Expr>,
    },
    Subscript {
        base: Box<Expr>,
        index: Box<Expr>,
    },
    Field {
        base: Box<Expr>,
        name: String,
    },
    ArrayCtor(Vec<Expr>),
    MapCtor(Vec<(Expr, Expr)>),
    StructCtor(Vec<(String, Expr)>),
}

impl Expr {
    pub fn col(name: &str) -> Expr {
        Expr::Column {
            qualifier: None,
            name: name.to_string(),
        }
    }
}

/// Quotes an identifier with back-quotes when it would not read back as
/// itself unquoted.
pub fn quote_ident(name: &str) -> String {
    let plain = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_uppercase() || c == '_')
        && name
            .chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
    if plain && !crate::parser::is_reserved(name) {
        name.to_string()
    } else {
        format!("`{name}`")
    }
}

impl std::fmt::Display for Literal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Literal::String(s) => write!(f, "'{}'", s.replace('\'', "''")),
            other => f.write_str(&other.as_text()),
        }
    }
}

impl std::fmt::Display for Expr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        fn list(f: &mut std::fmt::Formatter<'_>, items: &[Expr]) -> std::fmt::Result {
            for (i, e) in items.iter().enumerate() {
                if i > 0 {
                    f.write_str(", ")?;
                }
                write!(f, "{e}")?;
            }
            Ok(())
        }
        match self {
            Expr::Literal(l) => write!(f, "{l}"),
            Expr::Column { qualifier, name } => match qualifier {
                Some(q) => write!(f, "{}.{}", quote_ident(q), quote_ident(name)),
                None => f.write_str(&quote_ident(name)),
            },
            Expr::LambdaVar(v) => f.write_str(v),
            Expr::Binary { op, left, right } => write!(f, "({left} {} {right})", op.symbol()),
            Expr::Not(e) => write!(f, "(NOT {e})"),
            Expr::Negate(e) => write!(f, "-{e}"),
            Expr::IsNull { expr, negated } => {
                write!(f, "({expr} IS {}NULL)", if *negated { "NOT " } else { "" })
            }
            Expr::Like {
                expr,
                pattern,
                negated,
                ..
            } => {
                write!(
                    f,
                    "({expr} {}LIKE {pattern})",
                    if *negated { "NOT " } else { "" }
                )
            }
            Expr::Between {
                expr,
                low,
                high,
                negated,
            } => write!(
                f,
                "({expr} {}BETWEEN {low} AND {high})",
                if *negated { "NOT " } else { "" }
            ),
            Expr::InList {
                expr,
                list: items,
                negated,
            } => {
                write!(f, "({expr} {}IN (", if *negated { "NOT " } else { "" })?;
                list(f, items)?;
                f.write_str("))")
            }
            Expr::Case {
                operand,
                whens,
                else_,
            } => {
                f.write_str("(CASE")?;
                if let Some(o) = operand {
                    write!(f, " {o}")?;
                }
                for (w, t) in whens {
                    write!(f, " WHEN {w} THEN {t}")?;
                }
                if let Some(e) = else_ {
                    write!(f, " ELSE {e}")?;
                }
                f.write_str(" END)")
            }
            Expr::Cast { expr, ty } => write!(f, "CAST({expr} AS {ty})"),
            Expr::Function { name, args, star } => {
                write!(f, "{name}(")?;
                if *star {
                    f.write_str("*")?;
                }
                list(f, args)?;
                f.write_str(")")
            }
            Expr::Lambda { params, body } => {
                if params.len() == 1 {
                    write!(f, "({} => {body})", params[0])
                } else {
                    write!(f, "(({}) => {body})", params.join(", "))
                }
            }
            Expr::Subscript { base, index } => write!(f, "{base}[{index}]"),
            Expr::Field { base, name } => write!(f, "{base}->{}", quote_ident(name)),
            Expr::ArrayCtor(items) => {
                f.write_str("ARRAY[")?;
                list(f, items)?;
                f.write_str("]")
            }
            Expr::MapCtor(entries) => {
                f.write_str("MAP(")?;
                for (i, (k, v)) in entries.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{k}:={v}")?;
                }
                f.write_str(")")
            }
            Expr::StructCtor(fields) => {
                f.write_str("STRUCT(")?;
                for (i, (n, v)) in fields.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{}:={v}", quote_ident(n))?;
                }
                f.write_str(")")
            }
        }
    }
}
