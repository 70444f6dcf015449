//! A recursive-descent parser for ksqlDB's statement language.
//!
//! Unquoted identifiers are upper-cased; back-quoted (or double-quoted)
//! ones keep their case. Errors carry the line and column of the token
//! that did not fit, as ksqlDB's `line L:C: Syntax Error` messages do.

use std::collections::BTreeMap;

use crate::ast::*;
use crate::error::{Result, SqlError};
use crate::lexer::{tokenize, Tok, Token};
use crate::types::SqlType;

/// Words that cannot be unquoted identifiers, because the grammar would be
/// ambiguous with them.
const RESERVED: &[&str] = &[
    "SELECT",
    "FROM",
    "WHERE",
    "GROUP",
    "BY",
    "HAVING",
    "AND",
    "OR",
    "NOT",
    "AS",
    "ON",
    "JOIN",
    "INNER",
    "LEFT",
    "RIGHT",
    "FULL",
    "OUTER",
    "WINDOW",
    "WITHIN",
    "EMIT",
    "LIMIT",
    "PARTITION",
    "CASE",
    "WHEN",
    "THEN",
    "ELSE",
    "END",
    "IS",
    "NULL",
    "TRUE",
    "FALSE",
    "LIKE",
    "BETWEEN",
    "IN",
    "CAST",
    "CREATE",
    "INSERT",
    "INTO",
    "VALUES",
    "DROP",
    "WITH",
    "DISTINCT",
    "EXISTS",
];

/// Whether `word` (upper case) is reserved.
pub fn is_reserved(word: &str) -> bool {
    RESERVED.contains(&word)
}

/// Parses every statement of `text`, replacing `${name}` with `vars`.
pub fn parse_script(text: &str, vars: &BTreeMap<String, String>) -> Result<Vec<Parsed>> {
    let text = substitute(text, vars)?;
    let tokens = tokenize(&text)?;
    let mut p = Parser {
        tokens,
        i: 0,
        lambda_vars: Vec::new(),
    };
    let mut out = Vec::new();
    loop {
        while p.eat_sym(";") {}
        if p.peek_is_eof() {
            break;
        }
        let start = p.tok().pos;
        let statement = p.statement()?;
        // The statement's text runs through its ';', or to the end of the
        // script when the last statement has none.
        let end = if p.eat_sym(";") {
            p.tokens[p.i - 1].pos + 1
        } else if p.peek_is_eof() {
            text.len()
        } else {
            return Err(p.unexpected("';'"));
        };
        let mut stmt_text = text[start..end].trim().to_string();
        if !stmt_text.ends_with(';') {
            stmt_text.push(';');
        }
        out.push(Parsed {
            statement,
            text: stmt_text,
        });
    }
    Ok(out)
}

/// Parses exactly one statement.
pub fn parse_one(text: &str, vars: &BTreeMap<String, String>) -> Result<Parsed> {
    let mut all = parse_script(text, vars)?;
    match all.len() {
        1 => Ok(all.remove(0)),
        0 => Err(SqlError::invalid("No statement given")),
        n => Err(SqlError::invalid(format!(
            "Expected exactly one statement, found {n}"
        ))),
    }
}

/// Replaces `${name}` references (DEFINE'd variables).
pub fn substitute(text: &str, vars: &BTreeMap<String, String>) -> Result<String> {
    if !text.contains("${") {
        return Ok(text.to_string());
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    let mut in_string = false;
    while let Some(at) = rest.find(['$', '\'']) {
        out.push_str(&rest[..at]);
        if rest[at..].starts_with('\'') {
            in_string = !in_string;
            out.push('\'');
            rest = &rest[at + 1..];
            continue;
        }
        if rest[at..].starts_with("${") {
            if let Some(end) = rest[at..].find('}') {
                let name = &rest[at + 2..at + end];
                let value = vars
                    .iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case(name))
                    .map(|(_, v)| v)
                    .ok_or_else(|| {
                        SqlError::invalid(format!("Variable '{name}' is not defined"))
                    })?;
                out.push_str(value);
                rest = &rest[at + end + 1..];
                continue;
            }
        }
        out.push('$');
        rest = &rest[at + 1..];
    }
    out.push_str(rest);
    let _ = in_string;
    Ok(out)
}

struct Parser {
    tokens: Vec<Token>,
    i: usize,
    /// Lambda parameters in scope (upper-cased).
    lambda_vars: Vec<String>,
}

fn describe(t: &Tok) -> String {
    match t {
        Tok::Word(w) => format!("'{w}'"),
        Tok::Quoted(q) => format!("'`{q}`'"),
        Tok::Str(s) => format!("''{s}''"),
        Tok::Int(n) | Tok::Decimal(n) => format!("'{n}'"),
        Tok::Sym(s) => format!("'{s}'"),
        Tok::Variable(v) => format!("'${{{v}}}'"),
        Tok::Eof => "'<EOF>'".into(),
    }
}

impl Parser {
    fn tok(&self) -> &Token {
        &self.tokens[self.i.min(self.tokens.len() - 1)]
    }

    fn peek(&self) -> &Tok {
        &self.tok().tok
    }

    fn peek_at(&self, n: usize) -> &Tok {
        &self.tokens[(self.i + n).min(self.tokens.len() - 1)].tok
    }

    fn peek_is_eof(&self) -> bool {
        matches!(self.peek(), Tok::Eof)
    }

    fn advance(&mut self) -> Tok {
        let t = self.peek().clone();
        if self.i < self.tokens.len() - 1 {
            self.i += 1;
        }
        t
    }

    fn error_at(&self, message: String) -> SqlError {
        let t = self.tok();
        SqlError::Syntax {
            line: t.line,
            col: t.col,
            message,
        }
    }

    fn unexpected(&self, expecting: &str) -> SqlError {
        let t = self.peek();
        if let Tok::Variable(v) = t {
            return SqlError::invalid(format!("Variable '{v}' is not defined"));
        }
        self.error_at(format!(
            "mismatched input {} expecting {expecting}",
            describe(t)
        ))
    }

    fn is_kw(&self, kw: &str) -> bool {
        matches!(self.peek(), Tok::Word(w) if w.eq_ignore_ascii_case(kw))
    }

    fn is_kw_at(&self, n: usize, kw: &str) -> bool {
        matches!(self.peek_at(n), Tok::Word(w) if w.eq_ignore_ascii_case(kw))
    }

    fn eat_kw(&mut self, kw: &str) -> bool {
        if self.is_kw(kw) {
            self.advance();
            true
        } else {
            false
        }
    }

    fn expect_kw(&mut self, kw: &str) -> Result<()> {
        if self.eat_kw(kw) {
            Ok(())
        } else {
            Err(self.unexpected(&format!("'{kw}'")))
        }
    }

    fn is_sym(&self, s: &str) -> bool {
        matches!(self.peek(), Tok::Sym(x) if *x == s)
    }

    fn eat_sym(&mut self, s: &str) -> bool {
        if self.is_sym(s) {
            self.advance();
            true
        } else {
            false
        }
    }

    fn expect_sym(&mut self, s: &str) -> Result<()> {
        if self.eat_sym(s) {
            Ok(())
        } else {
            Err(self.unexpected(&format!("'{s}'")))
        }
    }

    /// An identifier: unquoted words upper-cased, quoted ones as written.
    fn ident(&mut self) -> Result<String> {
        match self.peek().clone() {
            Tok::Word(w) if !is_reserved(&w.to_ascii_uppercase()) => {
                self.advance();
                Ok(w.to_ascii_uppercase())
            }
            Tok::Quoted(q) => {
                self.advance();
                Ok(q)
            }
            _ => Err(self.unexpected("an identifier")),
        }
    }

    fn string_lit(&mut self) -> Result<String> {
        match self.advance() {
            Tok::Str(s) => Ok(s),
            _ => {
                self.i -= 1;
                Err(self.unexpected("a string literal"))
            }
        }
    }

    fn integer(&mut self) -> Result<i64> {
        match self.peek().clone() {
            Tok::Int(n) => {
                self.advance();
                n.parse()
                    .map_err(|_| self.error_at(format!("number out of range: {n}")))
            }
            _ => Err(self.unexpected("an integer")),
        }
    }

    /// A DECIMAL precision or scale.
    fn type_param(&mut self) -> Result<u32> {
        let n = self.integer()?;
        u32::try_from(n).map_err(|_| self.error_at(format!("DECIMAL parameter out of range: {n}")))
    }

    fn statement(&mut self) -> Result<Statement> {
        let first = match self.peek() {
            Tok::Word(w) => w.to_ascii_uppercase(),
            _ => return Err(self.unknown_statement()),
        };
        match first.as_str() {
            "CREATE" => self.create(),
            "INSERT" => self.insert(),
            "DROP" => self.drop(),
            "TERMINATE" => {
                self.advance();
                if self.eat_kw("ALL") {
                    Ok(Statement::Terminate { query_id: None })
                } else {
                    Ok(Statement::Terminate {
                        query_id: Some(self.ident()?),
                    })
                }
            }
            "SHOW" | "LIST" => self.show(),
            "DESCRIBE" => self.describe_stmt(),
            "EXPLAIN" => {
                self.advance();
                if self.is_kw("SELECT") || self.is_kw("CREATE") || self.is_kw("INSERT") {
                    Ok(Statement::Explain(ExplainTarget::Statement(Box::new(
                        self.statement()?,
                    ))))
                } else {
                    Ok(Statement::Explain(ExplainTarget::QueryId(self.ident()?)))
                }
            }
            "PRINT" => self.print(),
            "SET" => {
                self.advance();
                let name = self.string_lit()?;
                self.expect_sym("=")?;
                let value = self.string_lit()?;
                Ok(Statement::Set { name, value })
            }
            "UNSET" => {
                self.advance();
                Ok(Statement::Unset(self.string_lit()?))
            }
            "DEFINE" => {
                self.advance();
                let name = self.ident()?;
                self.expect_sym("=")?;
                let value = self.string_lit()?;
                Ok(Statement::Define { name, value })
            }
            "UNDEFINE" => {
                self.advance();
                Ok(Statement::Undefine(self.ident()?))
            }
            "RUN" => {
                self.advance();
                self.expect_kw("SCRIPT")?;
                Ok(Statement::RunScript(self.string_lit()?))
            }
            "SELECT" => Ok(Statement::Select(Box::new(self.query()?))),
            _ => Err(self.unknown_statement()),
        }
    }

    fn unknown_statement(&self) -> SqlError {
        let t = self.peek();
        self.error_at(format!(
            "Unknown statement {}\nExpecting one of: CREATE, DESCRIBE, DROP, EXPLAIN, INSERT, LIST, PRINT, RUN SCRIPT, SELECT, SET, SHOW, TERMINATE, UNSET, DEFINE, UNDEFINE",
            describe(t)
        ))
    }

    fn source_kind(&mut self) -> Result<SourceKind> {
        if self.eat_kw("STREAM") {
            Ok(SourceKind::Stream)
        } else if self.eat_kw("TABLE") {
            Ok(SourceKind::Table)
        } else {
            Err(self.unexpected("'STREAM' or 'TABLE'"))
        }
    }

    fn create(&mut self) -> Result<Statement> {
        self.expect_kw("CREATE")?;
        let or_replace = if self.eat_kw("OR") {
            self.expect_kw("REPLACE")?;
            true
        } else {
            false
        };
        let source = self.eat_kw("SOURCE");
        let kind = self.source_kind()?;
        let if_not_exists = if self.eat_kw("IF") {
            self.expect_kw("NOT")?;
            self.expect_kw("EXISTS")?;
            true
        } else {
            false
        };
        let name = self.ident()?;
        let columns = if self.is_sym("(") {
            self.column_defs()?
        } else {
            Vec::new()
        };
        let props = if self.is_kw("WITH") {
            self.with_props()?
        } else {
            BTreeMap::new()
        };
        if self.eat_kw("AS") {
            if !columns.is_empty() {
                return Err(SqlError::invalid(
                    "Column definitions are not allowed with CREATE ... AS SELECT",
                ));
            }
            if source {
                return Err(SqlError::invalid(
                    "CREATE SOURCE ... AS SELECT is not a statement: a source is read-only",
                ));
            }
            let query = self.query()?;
            return Ok(Statement::CreateAsSelect(CreateAsSelect {
                kind,
                name,
                or_replace,
                if_not_exists,
                props,
                query: Box::new(query),
            }));
        }
        Ok(Statement::CreateSource(CreateSource {
            kind,
            name,
            or_replace,
            if_not_exists,
            source,
            columns,
            props,
        }))
    }

    fn column_defs(&mut self) -> Result<Vec<ColumnDef>> {
        self.expect_sym("(")?;
        let mut cols = Vec::new();
        loop {
            let name = self.ident()?;
            let ty = self.sql_type()?;
            let mut role = ColumnRole::Value;
            let mut header_key = None;
            if self.eat_kw("PRIMARY") {
                self.expect_kw("KEY")?;
                role = ColumnRole::PrimaryKey;
            } else if self.eat_kw("KEY") {
                role = ColumnRole::Key;
            } else if self.eat_kw("HEADERS") {
                role = ColumnRole::Headers;
            } else if self.eat_kw("HEADER") {
                self.expect_sym("(")?;
                header_key = Some(self.string_lit()?);
                self.expect_sym(")")?;
                role = ColumnRole::Headers;
            }
            cols.push(ColumnDef {
                name,
                ty,
                role,
                header_key,
            });
            if !self.eat_sym(",") {
                break;
            }
        }
        self.expect_sym(")")?;
        Ok(cols)
    }

    /// A type: `INT`, `ARRAY<STRING>`, `STRUCT<A INT, B STRING>`, ...
    pub fn sql_type(&mut self) -> Result<SqlType> {
        let word = match self.peek() {
            Tok::Word(w) => w.to_ascii_uppercase(),
            _ => return Err(self.unexpected("a type")),
        };
        self.advance();
        Ok(match word.as_str() {
            "BOOLEAN" => SqlType::Boolean,
            "INT" | "INTEGER" => SqlType::Int,
            "BIGINT" => SqlType::Bigint,
            "DOUBLE" => SqlType::Double,
            "STRING" | "VARCHAR" => SqlType::String,
            "BYTES" => SqlType::Bytes,
            "TIMESTAMP" => SqlType::Timestamp,
            "DATE" => SqlType::Date,
            "TIME" => SqlType::Time,
            "ARRAY" => {
                self.expect_sym("<")?;
                let t = self.sql_type()?;
                self.expect_sym(">")?;
                SqlType::Array(Box::new(t))
            }
            "MAP" => {
                self.expect_sym("<")?;
                let k = self.sql_type()?;
                self.expect_sym(",")?;
                let v = self.sql_type()?;
                self.expect_sym(">")?;
                SqlType::Map(Box::new(k), Box::new(v))
            }
            "STRUCT" => {
                self.expect_sym("<")?;
                let mut fields = Vec::new();
                if !self.is_sym(">") {
                    loop {
                        let name = self.ident()?;
                        let t = self.sql_type()?;
                        fields.push((name, t));
                        if !self.eat_sym(",") {
                            break;
                        }
                    }
                }
                self.expect_sym(">")?;
                SqlType::Struct(fields)
            }
            "DECIMAL" => {
                self.expect_sym("(")?;
                let p = self.type_param()?;
                self.expect_sym(",")?;
                let s = self.type_param()?;
                self.expect_sym(")")?;
                decimal_type(p, s)?
            }
            other => {
                self.i -= 1;
                return Err(self.error_at(format!("Unknown type: {other}")));
            }
        })
    }

    fn with_props(&mut self) -> Result<Props> {
        self.expect_kw("WITH")?;
        self.expect_sym("(")?;
        let mut props = BTreeMap::new();
        loop {
            let name = match self.advance() {
                Tok::Word(w) => w.to_ascii_uppercase(),
                Tok::Quoted(q) | Tok::Str(q) => q.to_ascii_uppercase(),
                _ => {
                    self.i -= 1;
                    return Err(self.unexpected("a property name"));
                }
            };
            self.expect_sym("=")?;
            let value = self.literal()?;
            props.insert(name, value);
            if !self.eat_sym(",") {
                break;
            }
        }
        self.expect_sym(")")?;
        Ok(props)
    }

    fn literal(&mut self) -> Result<Literal> {
        let neg = self.eat_sym("-");
        let lit = match self.advance() {
            Tok::Str(s) => Literal::String(s),
            Tok::Int(n) => Literal::Integer(
                n.parse::<i64>()
                    .map_err(|_| self.error_at(format!("number out of range: {n}")))?,
            ),
            Tok::Decimal(d) => Literal::Decimal(d),
            Tok::Word(w) if w.eq_ignore_ascii_case("true") => Literal::Boolean(true),
            Tok::Word(w) if w.eq_ignore_ascii_case("false") => Literal::Boolean(false),
            Tok::Word(w) if w.eq_ignore_ascii_case("null") => Literal::Null,
            _ => {
                self.i -= 1;
                return Err(self.unexpected("a literal"));
            }
        };
        Ok(match (neg, lit) {
            (false, l) => l,
            (true, Literal::Integer(n)) => Literal::Integer(-n),
            (true, Literal::Decimal(d)) => Literal::Decimal(format!("-{d}")),
            (true, _) => return Err(self.unexpected("a number")),
        })
    }

    fn insert(&mut self) -> Result<Statement> {
        self.expect_kw("INSERT")?;
        self.expect_kw("INTO")?;
        let target = self.ident()?;
        if self.is_kw("SELECT") || self.is_kw("WITH") {
            let props = if self.is_kw("WITH") {
                self.with_props()?
            } else {
                BTreeMap::new()
            };
            let query = self.query()?;
            return Ok(Statement::InsertInto {
                target,
                query: Box::new(query),
                props,
            });
        }
        let mut columns = Vec::new();
        if self.is_sym("(") {
            self.advance();
            loop {
                columns.push(self.ident()?);
                if !self.eat_sym(",") {
                    break;
                }
            }
            self.expect_sym(")")?;
        }
        self.expect_kw("VALUES")?;
        self.expect_sym("(")?;
        let mut values = Vec::new();
        if !self.is_sym(")") {
            loop {
                values.push(self.expr()?);
                if !self.eat_sym(",") {
                    break;
                }
            }
        }
        self.expect_sym(")")?;
        Ok(Statement::InsertValues {
            target,
            columns,
            values,
        })
    }

    fn drop(&mut self) -> Result<Statement> {
        self.expect_kw("DROP")?;
        let kind = self.source_kind()?;
        let if_exists = if self.eat_kw("IF") {
            self.expect_kw("EXISTS")?;
            true
        } else {
            false
        };
        let name = self.ident()?;
        let delete_topic = if self.eat_kw("DELETE") {
            self.expect_kw("TOPIC")?;
            true
        } else {
            false
        };
        Ok(Statement::Drop {
            kind,
            name,
            if_exists,
            delete_topic,
        })
    }

    fn show(&mut self) -> Result<Statement> {
        self.advance();
        let all = self.eat_kw("ALL");
        let what = match self.peek() {
            Tok::Word(w) => w.to_ascii_uppercase(),
            _ => {
                return Err(self.unexpected(
                    "STREAMS, TABLES, QUERIES, TOPICS, PROPERTIES, FUNCTIONS or VARIABLES",
                ))
            }
        };
        let what = match what.as_str() {
            "STREAMS" => ShowWhat::Streams,
            "TABLES" => ShowWhat::Tables,
            "QUERIES" => ShowWhat::Queries,
            "TOPICS" => ShowWhat::Topics { all },
            "PROPERTIES" => ShowWhat::Properties,
            "FUNCTIONS" => ShowWhat::Functions,
            "VARIABLES" => ShowWhat::Variables,
            _ => {
                return Err(self.unexpected(
                    "STREAMS, TABLES, QUERIES, TOPICS, PROPERTIES, FUNCTIONS or VARIABLES",
                ))
            }
        };
        self.advance();
        let extended = self.eat_kw("EXTENDED");
        Ok(Statement::Show { what, extended })
    }

    fn describe_stmt(&mut self) -> Result<Statement> {
        self.expect_kw("DESCRIBE")?;
        if self.eat_kw("FUNCTION") {
            return Ok(Statement::DescribeFunction(self.ident()?));
        }
        let extended = self.eat_kw("EXTENDED");
        if self.is_kw("STREAMS") || self.is_kw("TABLES") {
            let kind = if self.eat_kw("STREAMS") {
                SourceKind::Stream
            } else {
                self.advance();
                SourceKind::Table
            };
            let extended = extended || self.eat_kw("EXTENDED");
            return Ok(Statement::DescribeAll { kind, extended });
        }
        let name = self.ident()?;
        let extended = extended || self.eat_kw("EXTENDED");
        Ok(Statement::Describe { name, extended })
    }

    fn print(&mut self) -> Result<Statement> {
        self.expect_kw("PRINT")?;
        let topic = match self.advance() {
            Tok::Word(w) => w,
            Tok::Quoted(q) | Tok::Str(q) => q,
            _ => {
                self.i -= 1;
                return Err(self.unexpected("a topic name"));
            }
        };
        let mut from_beginning = false;
        let mut interval = None;
        let mut limit = None;
        loop {
            if self.eat_kw("FROM") {
                self.expect_kw("BEGINNING")?;
                from_beginning = true;
            } else if self.eat_kw("INTERVAL") || self.eat_kw("SAMPLE") {
                interval = Some(self.integer()?.max(1) as u64);
            } else if self.eat_kw("LIMIT") {
                limit = Some(self.integer()?.max(0) as u64);
            } else {
                break;
            }
        }
        Ok(Statement::Print {
            topic,
            from_beginning,
            interval,
            limit,
        })
    }

    fn duration(&mut self) -> Result<i64> {
        let n = self.integer()?;
        let unit = match self.peek() {
            Tok::Word(w) => crate::time::unit_ms(w),
            _ => None,
        }
        .ok_or_else(|| {
            self.unexpected("a time unit (MILLISECONDS, SECONDS, MINUTES, HOURS, DAYS)")
        })?;
        self.advance();
        n.checked_mul(unit)
            .ok_or_else(|| self.error_at("duration out of range".into()))
    }

    fn query(&mut self) -> Result<Query> {
        self.expect_kw("SELECT")?;
        let mut select = Vec::new();
        loop {
            if self.eat_sym("*") {
                select.push(SelectItem::Wildcard(None));
            } else if matches!(self.peek(), Tok::Word(_) | Tok::Quoted(_))
                && matches!(self.peek_at(1), Tok::Sym("."))
                && matches!(self.peek_at(2), Tok::Sym("*"))
            {
                let q = self.ident()?;
                self.advance();
                self.advance();
                select.push(SelectItem::Wildcard(Some(q)));
            } else {
                let expr = self.expr()?;
                let alias = self.alias()?;
                select.push(SelectItem::Expr { expr, alias });
            }
            if !self.eat_sym(",") {
                break;
            }
        }
        self.expect_kw("FROM")?;
        let first = self.aliased_source()?;
        let mut joins = Vec::new();
        loop {
            let kind = if self.eat_kw("JOIN") {
                JoinType::Inner
            } else if self.eat_kw("INNER") {
                self.expect_kw("JOIN")?;
                JoinType::Inner
            } else if self.is_kw("LEFT") || self.is_kw("RIGHT") || self.is_kw("FULL") {
                let k = match self.advance() {
                    Tok::Word(w) if w.eq_ignore_ascii_case("LEFT") => JoinType::Left,
                    Tok::Word(w) if w.eq_ignore_ascii_case("RIGHT") => JoinType::Right,
                    _ => JoinType::Full,
                };
                self.eat_kw("OUTER");
                self.expect_kw("JOIN")?;
                k
            } else {
                break;
            };
            let right = self.aliased_source()?;
            let within = if self.eat_kw("WITHIN") {
                let (before_ms, after_ms) = if self.eat_sym("(") {
                    let b = self.duration()?;
                    self.expect_sym(",")?;
                    let a = self.duration()?;
                    self.expect_sym(")")?;
                    (b, a)
                } else {
                    let d = self.duration()?;
                    (d, d)
                };
                let grace_ms = if self.eat_kw("GRACE") {
                    self.expect_kw("PERIOD")?;
                    Some(self.duration()?)
                } else {
                    None
                };
                Some(Within {
                    before_ms,
                    after_ms,
                    grace_ms,
                })
            } else {
                None
            };
            self.expect_kw("ON")?;
            let on = self.expr()?;
            joins.push(Join {
                kind,
                right,
                within,
                on,
            });
        }
        let window = if self.eat_kw("WINDOW") {
            Some(self.window()?)
        } else {
            None
        };
        let where_ = if self.eat_kw("WHERE") {
            Some(self.expr()?)
        } else {
            None
        };
        let mut group_by = Vec::new();
        let mut partition_by = Vec::new();
        let mut having = None;
        loop {
            if self.eat_kw("GROUP") {
                self.expect_kw("BY")?;
                group_by = self.expr_list()?;
            } else if self.eat_kw("PARTITION") {
                self.expect_kw("BY")?;
                partition_by = self.expr_list()?;
            } else if self.eat_kw("HAVING") {
                having = Some(self.expr()?);
            } else {
                break;
            }
        }
        let emit = if self.eat_kw("EMIT") {
            if self.eat_kw("CHANGES") {
                Emit::Changes
            } else if self.eat_kw("FINAL") {
                Emit::Final
            } else {
                return Err(self.unexpected("'CHANGES' or 'FINAL'"));
            }
        } else {
            Emit::None
        };
        let limit = if self.eat_kw("LIMIT") {
            Some(self.integer()?.max(0) as u64)
        } else {
            None
        };
        Ok(Query {
            select,
            from: Relation { first, joins },
            window,
            where_,
            group_by,
            partition_by,
            having,
            emit,
            limit,
        })
    }

    fn expr_list(&mut self) -> Result<Vec<Expr>> {
        let paren = self.is_sym("(") && self.paren_list_ahead();
        if paren {
            self.advance();
        }
        let mut out = vec![self.expr()?];
        while self.eat_sym(",") {
            out.push(self.expr()?);
        }
        if paren {
            self.expect_sym(")")?;
        }
        Ok(out)
    }

    /// Whether a `(` starts a parenthesised list `(a, b)` rather than an
    /// expression.
    fn paren_list_ahead(&self) -> bool {
        let mut depth = 0i32;
        let mut j = self.i;
        while j < self.tokens.len() {
            match &self.tokens[j].tok {
                Tok::Sym("(") => depth += 1,
                Tok::Sym(")") => {
                    depth -= 1;
                    if depth == 0 {
                        return false;
                    }
                }
                Tok::Sym(",") if depth == 1 => return true,
                Tok::Eof => return false,
                _ => {}
            }
            j += 1;
        }
        false
    }

    /// An optional alias: `AS name`, or a bare identifier.
    fn alias(&mut self) -> Result<Option<String>> {
        let bare = matches!(self.peek(), Tok::Word(w) if !is_reserved(&w.to_ascii_uppercase()))
            || matches!(self.peek(), Tok::Quoted(_));
        if self.eat_kw("AS") || bare {
            Ok(Some(self.ident()?))
        } else {
            Ok(None)
        }
    }

    fn aliased_source(&mut self) -> Result<AliasedSource> {
        let name = self.ident()?;
        let alias = self.alias()?;
        Ok(AliasedSource { name, alias })
    }

    fn window(&mut self) -> Result<WindowExpr> {
        let kind_word = match self.advance() {
            Tok::Word(w) => w.to_ascii_uppercase(),
            _ => {
                self.i -= 1;
                return Err(self.unexpected("TUMBLING, HOPPING or SESSION"));
            }
        };
        self.expect_sym("(")?;
        let mut size = None;
        let mut advance = None;
        let mut retention_ms = None;
        let mut grace_ms = None;
        let mut gap = None;
        loop {
            if self.eat_kw("SIZE") {
                size = Some(self.duration()?);
            } else if self.eat_kw("ADVANCE") {
                self.expect_kw("BY")?;
                advance = Some(self.duration()?);
            } else if self.eat_kw("RETENTION") {
                retention_ms = Some(self.duration()?);
            } else if self.eat_kw("GRACE") {
                self.expect_kw("PERIOD")?;
                grace_ms = Some(self.duration()?);
            } else if kind_word == "SESSION" && gap.is_none() && matches!(self.peek(), Tok::Int(_))
            {
                gap = Some(self.duration()?);
            } else {
                return Err(self.unexpected("SIZE, ADVANCE BY, RETENTION or GRACE PERIOD"));
            }
            if !self.eat_sym(",") {
                break;
            }
        }
        self.expect_sym(")")?;
        let positive = |v: Option<i64>, what: &str| -> Result<i64> {
            match v {
                Some(v) if v > 0 => Ok(v),
                Some(_) => Err(SqlError::invalid(format!("{what} must be positive"))),
                None => Err(SqlError::invalid(format!(
                    "{kind_word} window requires {what}"
                ))),
            }
        };
        let kind = match kind_word.as_str() {
            "TUMBLING" => WindowKind::Tumbling {
                size_ms: positive(size, "SIZE")?,
            },
            "HOPPING" => {
                let size_ms = positive(size, "SIZE")?;
                let advance_ms = positive(advance, "ADVANCE BY")?;
                if advance_ms > size_ms {
                    return Err(SqlError::invalid(
                        "Window advance must be less than or equal to the window size",
                    ));
                }
                WindowKind::Hopping {
                    size_ms,
                    advance_ms,
                }
            }
            "SESSION" => WindowKind::Session {
                gap_ms: positive(gap, "an inactivity gap")?,
            },
            _ => {
                return Err(SqlError::invalid(format!(
                    "Unknown window type: {kind_word} (expecting TUMBLING, HOPPING or SESSION)"
                )))
            }
        };
        Ok(WindowExpr {
            kind,
            retention_ms,
            grace_ms,
        })
    }

    // ---- expressions, lowest precedence first ----

    pub fn expr(&mut self) -> Result<Expr> {
        self.or_expr()
    }

    fn or_expr(&mut self) -> Result<Expr> {
        let mut left = self.and_expr()?;
        while self.eat_kw("OR") {
            let right = self.and_expr()?;
            left = Expr::Binary {
                op: BinOp::Or,
                left: Box::new(left),
                right: Box::new(right),
            };
        }
        Ok(left)
    }

    fn and_expr(&mut self) -> Result<Expr> {
        let mut left = self.not_expr()?;
        while self.eat_kw("AND") {
            let right = self.not_expr()?;
            left = Expr::Binary {
                op: BinOp::And,
                left: Box::new(left),
                right: Box::new(right),
            };
        }
        Ok(left)
    }

    fn not_expr(&mut self) -> Result<Expr> {
        if self.eat_kw("NOT") {
            return Ok(Expr::Not(Box::new(self.not_expr()?)));
        }
        self.comparison()
    }

    fn comparison(&mut self) -> Result<Expr> {
        let left = self.additive()?;
        let op = match self.peek() {
            Tok::Sym("=") => Some(BinOp::Eq),
            Tok::Sym("<>") | Tok::Sym("!=") => Some(BinOp::NotEq),
            Tok::Sym("<") => Some(BinOp::Lt),
            Tok::Sym("<=") => Some(BinOp::LtEq),
            Tok::Sym(">") => Some(BinOp::Gt),
            Tok::Sym(">=") => Some(BinOp::GtEq),
            _ => None,
        };
        if let Some(op) = op {
            self.advance();
            let right = self.additive()?;
            return Ok(Expr::Binary {
                op,
                left: Box::new(left),
                right: Box::new(right),
            });
        }
        if self.eat_kw("IS") {
            let negated = self.eat_kw("NOT");
            if self.eat_kw("NULL") {
                return Ok(Expr::IsNull {
                    expr: Box::new(left),
                    negated,
                });
            }
            self.expect_kw("DISTINCT")?;
            self.expect_kw("FROM")?;
            let right = self.additive()?;
            return Ok(Expr::Binary {
                op: if negated {
                    BinOp::IsNotDistinctFrom
                } else {
                    BinOp::IsDistinctFrom
                },
                left: Box::new(left),
                right: Box::new(right),
            });
        }
        let negated = if self.is_kw("NOT")
            && (self.is_kw_at(1, "LIKE") || self.is_kw_at(1, "BETWEEN") || self.is_kw_at(1, "IN"))
        {
            self.advance();
            true
        } else {
            false
        };
        if self.eat_kw("LIKE") {
            let pattern = self.additive()?;
            let escape = if self.eat_kw("ESCAPE") {
                let s = self.string_lit()?;
                let mut chars = s.chars();
                match (chars.next(), chars.next()) {
                    (Some(c), None) => Some(c),
                    _ => return Err(SqlError::invalid("ESCAPE must be a single character")),
                }
            } else {
                None
            };
            return Ok(Expr::Like {
                expr: Box::new(left),
                pattern: Box::new(pattern),
                escape,
                negated,
            });
        }
        if self.eat_kw("BETWEEN") {
            let low = self.additive()?;
            self.expect_kw("AND")?;
            let high = self.additive()?;
            return Ok(Expr::Between {
                expr: Box::new(left),
                low: Box::new(low),
                high: Box::new(high),
                negated,
            });
        }
        if self.eat_kw("IN") {
            self.expect_sym("(")?;
            let mut list = Vec::new();
            loop {
                list.push(self.expr()?);
                if !self.eat_sym(",") {
                    break;
                }
            }
            self.expect_sym(")")?;
            return Ok(Expr::InList {
                expr: Box::new(left),
                list,
                negated,
            });
        }
        if negated {
            return Err(self.unexpected("LIKE, BETWEEN or IN"));
        }
        Ok(left)
    }

    fn additive(&mut self) -> Result<Expr> {
        let mut left = self.multiplicative()?;
        loop {
            let op = match self.peek() {
                Tok::Sym("+") => BinOp::Add,
                Tok::Sym("-") => BinOp::Sub,
                Tok::Sym("||") => BinOp::Concat,
                _ => break,
            };
            self.advance();
            let right = self.multiplicative()?;
            left = Expr::Binary {
                op,
                left: Box::new(left),
                right: Box::new(right),
            };
        }
        Ok(left)
    }

    fn multiplicative(&mut self) -> Result<Expr> {
        let mut left = self.unary()?;
        loop {
            let op = match self.peek() {
                Tok::Sym("*") => BinOp::Mul,
                Tok::Sym("/") => BinOp::Div,
                Tok::Sym("%") => BinOp::Mod,
                _ => break,
            };
            self.advance();
            let right = self.unary()?;
            left = Expr::Binary {
                op,
                left: Box::new(left),
                right: Box::new(right),
            };
        }
        Ok(left)
    }

    fn unary(&mut self) -> Result<Expr> {
        if self.eat_sym("-") {
            let e = self.unary()?;
            return Ok(match e {
                Expr::Literal(Literal::Integer(n)) => Expr::Literal(Literal::Integer(-n)),
                Expr::Literal(Literal::Decimal(d)) => {
                    Expr::Literal(Literal::Decimal(format!("-{d}")))
                }
                e => Expr::Negate(Box::new(e)),
            });
        }
        if self.eat_sym("+") {
            return self.unary();
        }
        self.postfix()
    }

    fn postfix(&mut self) -> Result<Expr> {
        let mut e = self.primary()?;
        loop {
            if self.eat_sym("[") {
                let index = self.expr()?;
                self.expect_sym("]")?;
                e = Expr::Subscript {
                    base: Box::new(e),
                    index: Box::new(index),
                };
            } else if self.eat_sym("->") {
                let name = self.ident()?;
                e = Expr::Field {
                    base: Box::new(e),
                    name,
                };
            } else {
                break;
            }
        }
        Ok(e)
    }

    /// Whether a lambda starts here: `x =>` or `(x, y) =>`.
    fn lambda_ahead(&self) -> bool {
        if matches!(self.peek(), Tok::Word(_)) && matches!(self.peek_at(1), Tok::Sym("=>")) {
            return true;
        }
        if !self.is_sym("(") {
            return false;
        }
        let mut j = 1;
        loop {
            if !matches!(self.peek_at(j), Tok::Word(_)) {
                return false;
            }
            match self.peek_at(j + 1) {
                Tok::Sym(",") => j += 2,
                Tok::Sym(")") => return matches!(self.peek_at(j + 2), Tok::Sym("=>")),
                _ => return false,
            }
        }
    }

    fn lambda(&mut self) -> Result<Expr> {
        let mut params = Vec::new();
        if self.eat_sym("(") {
            loop {
                params.push(self.ident()?);
                if !self.eat_sym(",") {
                    break;
                }
            }
            self.expect_sym(")")?;
        } else {
            params.push(self.ident()?);
        }
        self.expect_sym("=>")?;
        let before = self.lambda_vars.len();
        self.lambda_vars.extend(params.iter().cloned());
        let body = self.expr();
        self.lambda_vars.truncate(before);
        Ok(Expr::Lambda {
            params,
            body: Box::new(body?),
        })
    }

    fn primary(&mut self) -> Result<Expr> {
        let t = self.peek().clone();
        match t {
            Tok::Str(_) | Tok::Int(_) | Tok::Decimal(_) => Ok(Expr::Literal(self.literal()?)),
            Tok::Sym("(") => {
                self.advance();
                let e = self.expr()?;
                self.expect_sym(")")?;
                Ok(e)
            }
            Tok::Variable(_) => Err(self.unexpected("an expression")),
            Tok::Quoted(q) => {
                self.advance();
                self.column_rest(q)
            }
            Tok::Word(w) => {
                let up = w.to_ascii_uppercase();
                match up.as_str() {
                    "TRUE" | "FALSE" | "NULL" => return Ok(Expr::Literal(self.literal()?)),
                    "CASE" => return self.case(),
                    "CAST" => {
                        self.advance();
                        self.expect_sym("(")?;
                        let e = self.expr()?;
                        self.expect_kw("AS")?;
                        let ty = self.sql_type()?;
                        self.expect_sym(")")?;
                        return Ok(Expr::Cast {
                            expr: Box::new(e),
                            ty,
                        });
                    }
                    "ARRAY" if matches!(self.peek_at(1), Tok::Sym("[")) => {
                        self.advance();
                        self.advance();
                        let mut items = Vec::new();
                        if !self.is_sym("]") {
                            loop {
                                items.push(self.expr()?);
                                if !self.eat_sym(",") {
                                    break;
                                }
                            }
                        }
                        self.expect_sym("]")?;
                        return Ok(Expr::ArrayCtor(items));
                    }
                    "MAP" if matches!(self.peek_at(1), Tok::Sym("(")) => {
                        self.advance();
                        self.advance();
                        let mut entries = Vec::new();
                        if !self.is_sym(")") {
                            loop {
                                let k = self.expr()?;
                                self.expect_sym(":=")?;
                                let v = self.expr()?;
                                entries.push((k, v));
                                if !self.eat_sym(",") {
                                    break;
                                }
                            }
                        }
                        self.expect_sym(")")?;
                        return Ok(Expr::MapCtor(entries));
                    }
                    "STRUCT" if matches!(self.peek_at(1), Tok::Sym("(")) => {
                        self.advance();
                        self.advance();
                        let mut fields = Vec::new();
                        if !self.is_sym(")") {
                            loop {
                                let n = self.ident()?;
                                self.expect_sym(":=")?;
                                let v = self.expr()?;
                                fields.push((n, v));
                                if !self.eat_sym(",") {
                                    break;
                                }
                            }
                        }
                        self.expect_sym(")")?;
                        return Ok(Expr::StructCtor(fields));
                    }
                    _ => {}
                }
                if is_reserved(&up) {
                    return Err(self.unexpected("an expression"));
                }
                self.advance();
                if self.is_sym("(") {
                    return self.function(up);
                }
                self.column_rest(up)
            }
            _ => Err(self.unexpected("an expression")),
        }
    }

    fn column_rest(&mut self, first: String) -> Result<Expr> {
        if self.lambda_vars.contains(&first) {
            return Ok(Expr::LambdaVar(first));
        }
        if self.is_sym(".") && matches!(self.peek_at(1), Tok::Word(_) | Tok::Quoted(_)) {
            self.advance();
            let name = self.ident()?;
            return Ok(Expr::Column {
                qualifier: Some(first),
                name,
            });
        }
        Ok(Expr::Column {
            qualifier: None,
            name: first,
        })
    }

    fn function(&mut self, name: String) -> Result<Expr> {
        self.expect_sym("(")?;
        let mut args = Vec::new();
        let mut star = false;
        if self.eat_sym("*") {
            star = true;
        } else if !self.is_sym(")") {
            loop {
                if self.lambda_ahead() {
                    args.push(self.lambda()?);
                } else {
                    args.push(self.expr()?);
                }
                if !self.eat_sym(",") {
                    break;
                }
            }
        }
        self.expect_sym(")")?;
        Ok(Expr::Function { name, args, star })
    }

    fn case(&mut self) -> Result<Expr> {
        self.expect_kw("CASE")?;
        let operand = if self.is_kw("WHEN") {
            None
        } else {
            Some(Box::new(self.expr()?))
        };
        let mut whens = Vec::new();
        while self.eat_kw("WHEN") {
            let w = self.expr()?;
            self.expect_kw("THEN")?;
            let t = self.expr()?;
            whens.push((w, t));
        }
        if whens.is_empty() {
            return Err(self.unexpected("'WHEN'"));
        }
        let else_ = if self.eat_kw("ELSE") {
            Some(Box::new(self.expr()?))
        } else {
            None
        };
        self.expect_kw("END")?;
        Ok(Expr::Case {
            operand,
            whens,
            else_,
        })
    }
}

/// Checks `DECIMAL(p, s)` as ksqlDB does, and Weir's 38-digit limit.
pub fn decimal_type(precision: u32, scale: u32) -> Result<SqlType> {
    if precision < 1 {
        return Err(SqlError::invalid(format!(
            "DECIMAL precision must be >= 1: DECIMAL({precision},{scale})"
        )));
    }
    if precision < scale {
        return Err(SqlError::invalid(format!(
            "DECIMAL precision must be >= scale: DECIMAL({precision},{scale})"
        )));
    }
    if precision > crate::decimal::MAX_PRECISION {
        return Err(SqlError::invalid(format!(
            "DECIMAL precision above {} is not supported by Weir: DECIMAL({precision},{scale})",
            crate::decimal::MAX_PRECISION
        )));
    }
    Ok(SqlType::Decimal(precision, scale))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(s: &str) -> Statement {
        parse_one(s, &BTreeMap::new()).unwrap().statement
    }

    fn err(s: &str) -> String {
        parse_one(s, &BTreeMap::new()).unwrap_err().to_string()
    }

    #[test]
    fn create_stream_with_columns_and_props() {
        let Statement::CreateSource(c) = one(
            "CREATE STREAM pageviews (id INT KEY, `Name` STRING, tags ARRAY<STRING>, s STRUCT<a INT>) \
             WITH (kafka_topic='pv', value_format='JSON', partitions=2);",
        ) else {
            panic!()
        };
        assert_eq!(c.name, "PAGEVIEWS");
        assert_eq!(c.columns[0].role, ColumnRole::Key);
        assert_eq!(c.columns[1].name, "Name");
        assert_eq!(
            c.columns[3].ty,
            SqlType::Struct(vec![("A".into(), SqlType::Int)])
        );
        assert_eq!(c.props["KAFKA_TOPIC"], Literal::String("pv".into()));
        assert_eq!(c.props["PARTITIONS"], Literal::Integer(2));
    }

    #[test]
    fn create_as_select_with_window_and_group_by() {
        let Statement::CreateAsSelect(c) =
            one("CREATE TABLE counts AS SELECT id, COUNT(*) AS n FROM pv \
             WINDOW TUMBLING (SIZE 1 HOUR, GRACE PERIOD 10 MINUTES) \
             WHERE x > 1 GROUP BY id HAVING COUNT(*) > 2 EMIT CHANGES;")
        else {
            panic!()
        };
        let w = c.query.window.unwrap();
        assert_eq!(w.kind, WindowKind::Tumbling { size_ms: 3_600_000 });
        assert_eq!(w.grace_ms, Some(600_000));
        assert_eq!(c.query.group_by.len(), 1);
        assert_eq!(c.query.emit, Emit::Changes);
        assert!(c.query.having.is_some());
    }

    #[test]
    fn joins_with_within() {
        let Statement::Select(q) = one(
            "SELECT * FROM a JOIN b WITHIN (1 SECOND, 2 SECONDS) GRACE PERIOD 1 SECOND ON a.id = b.id \
             LEFT OUTER JOIN c ON a.x = c.id EMIT CHANGES;",
        ) else {
            panic!()
        };
        assert_eq!(q.from.joins.len(), 2);
        assert_eq!(
            q.from.joins[0].within,
            Some(Within {
                before_ms: 1000,
                after_ms: 2000,
                grace_ms: Some(1000)
            })
        );
        assert_eq!(q.from.joins[1].kind, JoinType::Left);
    }

    #[test]
    fn expression_precedence_and_postfix() {
        let Statement::Select(q) = one("SELECT a + b * 2 > 3 AND NOT c, s->f[1], m['k'] FROM t;")
        else {
            panic!()
        };
        let SelectItem::Expr { expr, .. } = &q.select[0] else {
            panic!()
        };
        assert_eq!(expr.to_string(), "(((A + (B * 2)) > 3) AND (NOT C))");
        let SelectItem::Expr { expr, .. } = &q.select[1] else {
            panic!()
        };
        assert_eq!(expr.to_string(), "S->F[1]");
    }

    #[test]
    fn lambdas() {
        let Statement::Select(q) =
            one("SELECT TRANSFORM(arr, x => x + 1), REDUCE(arr, 0, (s, x) => s + x) FROM t;")
        else {
            panic!()
        };
        let SelectItem::Expr { expr, .. } = &q.select[1] else {
            panic!()
        };
        assert_eq!(expr.to_string(), "REDUCE(ARR, 0, ((S, X) => (S + X)))");
    }

    #[test]
    fn syntax_errors_have_line_and_column() {
        assert!(err("SELEC * FROM x;").starts_with("line 1:1: Syntax Error"));
        let e = err("SELECT *\nFROM x WHERE;");
        assert!(e.starts_with("line 2:13: Syntax Error"), "{e}");
    }

    #[test]
    fn variables_are_substituted() {
        let mut vars = BTreeMap::new();
        vars.insert("TOPIC".to_string(), "orders".to_string());
        let p = parse_one("PRINT '${topic}' FROM BEGINNING;", &vars).unwrap();
        assert!(matches!(p.statement, Statement::Print { ref topic, .. } if topic == "orders"));
        assert!(parse_one("PRINT '${nope}';", &vars).is_err());
    }

    #[test]
    fn script_splits_statements_with_their_text() {
        let all =
            parse_script("SHOW STREAMS; LIST TOPICS;\nSET 'a'='b';", &BTreeMap::new()).unwrap();
        assert_eq!(all.len(), 3);
        assert_eq!(all[1].text, "LIST TOPICS;");
        assert_eq!(all[2].text, "SET 'a'='b';");
    }

    #[test]
    fn last_statement_without_semicolon_keeps_its_whole_text() {
        let all = parse_script("SHOW STREAMS; UNDEFINE   \u{662}", &BTreeMap::new()).unwrap();
        assert_eq!(all[0].text, "SHOW STREAMS;");
        assert_eq!(all[1].text, "UNDEFINE   \u{662};");
        let one = parse_one("LIST TOPICS", &BTreeMap::new()).unwrap();
        assert_eq!(one.text, "LIST TOPICS;");
    }
}
