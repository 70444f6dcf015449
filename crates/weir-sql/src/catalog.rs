//! The metastore: streams and tables, with their schemas, topics and
//! formats, built from CREATE statements.

use std::collections::BTreeMap;

use crate::ast::{ColumnDef, ColumnRole, CreateSource, Literal, Props, SourceKind};
use crate::error::{Result, SqlError};
use crate::format::{Codec, Format, WindowType};
use crate::types::{SqlType, Value};

/// A stream or table.
#[derive(Debug, Clone, PartialEq)]
pub struct Source {
    pub name: String,
    pub kind: SourceKind,
    pub topic: String,
    pub key: Vec<(String, SqlType)>,
    pub value: Vec<(String, SqlType)>,
    /// Columns read from the record headers, after the value columns.
    pub headers: Vec<HeaderColumn>,
    pub key_format: Format,
    pub value_format: Format,
    /// JSON values: whether a single value column is wrapped.
    pub wrap_single: bool,
    /// `TIMESTAMP` column and its `TIMESTAMP_FORMAT`.
    pub timestamp: Option<(String, Option<String>)>,
    /// Windowed keys: the window type and, for time windows, the size.
    pub window: Option<(WindowType, Option<i64>)>,
    /// `CREATE SOURCE`: read-only.
    pub read_only: bool,
    /// The statement that created it.
    pub statement: String,
}

impl Source {
    pub fn key_codec(&self) -> Codec {
        // Protobuf has no bare values: a single key is a message too.
        let wrapped = self.key_format.sr_kind() == Some(crate::sr::SrKind::Protobuf);
        Codec::new(self.key_format.clone(), self.key.clone(), wrapped)
    }

    pub fn value_codec(&self) -> Codec {
        Codec::new(
            self.value_format.clone(),
            self.value.clone(),
            self.wrap_single,
        )
    }

    /// Every column: keys, values, then header columns.
    pub fn columns(&self) -> impl Iterator<Item = &(String, SqlType)> {
        self.key
            .iter()
            .chain(self.value.iter())
            .chain(self.headers.iter().map(|h| &h.column))
    }

    /// The row index of ROWTIME: the first pseudo-column after the
    /// declared ones.
    pub fn rowtime_index(&self) -> usize {
        self.key.len() + self.value.len() + self.headers.len()
    }

    pub fn header(&self, name: &str) -> Option<&HeaderColumn> {
        self.headers.iter().find(|h| h.column.0 == name)
    }

    pub fn is_table(&self) -> bool {
        self.kind == SourceKind::Table
    }
}

/// A `HEADERS` column (every header, in order) or a `HEADER('key')`
/// column (the last header with that key). ksqlDB never writes them.
#[derive(Debug, Clone, PartialEq)]
pub struct HeaderColumn {
    pub column: (String, SqlType),
    pub key: Option<String>,
}

impl HeaderColumn {
    /// The column's value for a record's headers.
    pub fn read(&self, headers: &[(&str, Option<&[u8]>)]) -> Value {
        let bytes = |v: Option<&[u8]>| v.map_or(Value::Null, |b| Value::Bytes(b.to_vec()));
        match &self.key {
            Some(k) => headers
                .iter()
                .rev()
                .find(|(n, _)| n == k)
                .map_or(Value::Null, |(_, v)| bytes(*v)),
            None => Value::Array(
                headers
                    .iter()
                    .map(|(n, v)| {
                        Value::Struct(vec![
                            ("KEY".to_string(), Value::String(n.to_string())),
                            ("VALUE".to_string(), bytes(*v)),
                        ])
                    })
                    .collect(),
            ),
        }
    }
}

/// The type of a `HEADERS` column.
pub fn headers_type() -> SqlType {
    SqlType::Array(Box::new(SqlType::Struct(vec![
        ("KEY".to_string(), SqlType::String),
        ("VALUE".to_string(), SqlType::Bytes),
    ])))
}

/// Property lookup helpers for `WITH (...)`.
#[derive(Debug)]
pub struct WithProps<'a>(pub &'a Props);

impl WithProps<'_> {
    pub fn text(&self, name: &str) -> Option<String> {
        self.0.get(name).map(Literal::as_text)
    }

    pub fn int(&self, name: &str) -> Result<Option<i64>> {
        match self.0.get(name) {
            None => Ok(None),
            Some(Literal::Integer(i)) => Ok(Some(*i)),
            Some(Literal::String(s)) => s
                .trim()
                .parse()
                .map(Some)
                .map_err(|_| SqlError::invalid(format!("Invalid value for {name}: '{s}'"))),
            Some(other) => Err(SqlError::invalid(format!(
                "Invalid value for {name}: {other}"
            ))),
        }
    }

    pub fn boolean(&self, name: &str) -> Result<Option<bool>> {
        match self.0.get(name) {
            None => Ok(None),
            Some(Literal::Boolean(b)) => Ok(Some(*b)),
            Some(Literal::String(s)) if s.eq_ignore_ascii_case("true") => Ok(Some(true)),
            Some(Literal::String(s)) if s.eq_ignore_ascii_case("false") => Ok(Some(false)),
            Some(other) => Err(SqlError::invalid(format!(
                "Invalid value for {name}: {other}"
            ))),
        }
    }

    /// Rejects properties not in `allowed`.
    pub fn only(&self, allowed: &[&str]) -> Result<()> {
        for k in self.0.keys() {
            if !allowed.contains(&k.as_str()) {
                return Err(SqlError::invalid(format!(
                    "Invalid config variable(s) in the WITH clause: {k}"
                )));
            }
        }
        Ok(())
    }

    /// (key format, value format) from FORMAT / KEY_FORMAT / VALUE_FORMAT
    /// and the delimiters, falling back to `default_key`/`default_value`.
    pub fn formats(
        &self,
        default_key: Option<&Format>,
        default_value: Option<&Format>,
    ) -> Result<(Format, Format)> {
        let both = self.text("FORMAT");
        let key = self.text("KEY_FORMAT");
        let value = self.text("VALUE_FORMAT");
        if both.is_some() && (key.is_some() || value.is_some()) {
            return Err(SqlError::invalid(
                "Cannot supply both 'FORMAT' and 'KEY_FORMAT' or 'VALUE_FORMAT' properties",
            ));
        }
        let delimiter = self.text("VALUE_DELIMITER");
        let key_delimiter = self.text("KEY_DELIMITER");
        let key_fmt = match key.or_else(|| both.clone()) {
            Some(k) => Format::parse(&k, key_delimiter.as_deref())?,
            None => default_key.cloned().unwrap_or(Format::Kafka),
        };
        let value_fmt =
            match value.or(both) {
                Some(v) => Format::parse(&v, delimiter.as_deref())?,
                None => match default_value {
                    Some(v) => v.clone(),
                    None => return Err(SqlError::invalid(
                        "Missing required property \"VALUE_FORMAT\" which has no default value.",
                    )),
                },
            };
        Ok((key_fmt, value_fmt))
    }
}

/// The WITH properties `CREATE STREAM|TABLE ... AS SELECT` accepts.
pub const CREATE_AS_PROPS: &[&str] = &[
    "KAFKA_TOPIC",
    "KEY_FORMAT",
    "VALUE_FORMAT",
    "FORMAT",
    "PARTITIONS",
    "REPLICAS",
    "TIMESTAMP",
    "TIMESTAMP_FORMAT",
    "WRAP_SINGLE_VALUE",
    "VALUE_DELIMITER",
    "KEY_DELIMITER",
    "RETENTION_MS",
    "KEY_SCHEMA_ID",
    "VALUE_SCHEMA_ID",
    "KEY_SCHEMA_FULL_NAME",
    "VALUE_SCHEMA_FULL_NAME",
];

/// The WITH properties `CREATE STREAM|TABLE` accepts: those, and the
/// window of a windowed topic.
const CREATE_ONLY_PROPS: &[&str] = &["WINDOW_TYPE", "WINDOW_SIZE"];

/// Builds a source from a CREATE STREAM|TABLE statement (the topic's
/// existence is checked by the caller).
pub fn source_from_create(c: &CreateSource, statement: &str) -> Result<(Source, Option<i32>)> {
    let props = WithProps(&c.props);
    props.only(&[CREATE_AS_PROPS, CREATE_ONLY_PROPS].concat())?;
    let topic = props.text("KAFKA_TOPIC").ok_or_else(|| {
        SqlError::invalid("Missing required property \"KAFKA_TOPIC\" which has no default value.")
    })?;
    if c.columns.is_empty() {
        return Err(SqlError::invalid(format!(
            "The statement does not define any columns. Declare the columns of {}, or use a schema registry format (AVRO, PROTOBUF, JSON_SR) to infer them.",
            c.name
        )));
    }
    let (key_format, value_format) = props.formats(None, None)?;
    let mut key = Vec::new();
    let mut value = Vec::new();
    let mut headers: Vec<HeaderColumn> = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for col in &c.columns {
        if !seen.insert(col.name.clone()) {
            return Err(SqlError::invalid(format!(
                "Duplicate column names:\n\t{}",
                col.name
            )));
        }
        if is_reserved_column(&col.name) {
            return Err(SqlError::invalid(format!(
                "'{}' is a reserved column name. You cannot use it as a name for a column.",
                col.name
            )));
        }
        match (col.role, c.kind) {
            (ColumnRole::Key, SourceKind::Table) => {
                return Err(SqlError::invalid(format!(
                    "Column `{}` is a 'KEY' column: please use 'PRIMARY KEY' for tables.\nTables have PRIMARY KEYs, which are unique and NON NULL.\nStreams have KEYs, which have no uniqueness or NON NULL constraints.",
                    col.name
                )))
            }
            (ColumnRole::PrimaryKey, SourceKind::Stream) => {
                return Err(SqlError::invalid(format!(
                    "Column `{}` is a 'PRIMARY KEY' column: please use 'KEY' for streams.\nTables have PRIMARY KEYs, which are unique and NON NULL.\nStreams have KEYs, which have no uniqueness or NON NULL constraints.",
                    col.name
                )))
            }
            (ColumnRole::Key | ColumnRole::PrimaryKey, _) => key.push((col.name.clone(), col.ty.clone())),
            (ColumnRole::Headers, _) => {
                let header = header_column(col, &headers)?;
                headers.push(header);
            }
            (ColumnRole::Value, _) => value.push((col.name.clone(), col.ty.clone())),
        }
    }
    if c.kind == SourceKind::Table && key.is_empty() {
        return Err(SqlError::invalid(
            "Tables require a PRIMARY KEY. Please define the PRIMARY KEY.",
        ));
    }
    let key_format = if key.is_empty() {
        Format::None
    } else {
        key_format
    };
    key_format.check(&key, "key")?;
    value_format.check(&value, "value")?;
    let wrap_single = props.boolean("WRAP_SINGLE_VALUE")?.unwrap_or(true);
    let timestamp = match props.text("TIMESTAMP") {
        Some(t) => {
            let col = t.to_ascii_uppercase();
            let ty = key
                .iter()
                .chain(value.iter())
                .find(|(n, _)| n.eq_ignore_ascii_case(&t))
                .map(|(_, ty)| ty.clone())
                .ok_or_else(|| SqlError::invalid(format!("The TIMESTAMP column set in the WITH clause does not exist in the schema: '{col}'")))?;
            let fmt = props.text("TIMESTAMP_FORMAT");
            match (&ty, &fmt) {
                (SqlType::Bigint | SqlType::Timestamp, None) | (SqlType::String, Some(_)) => {}
                (SqlType::String, None) => {
                    return Err(SqlError::invalid(format!(
                        "Column `{col}` is a STRING: set TIMESTAMP_FORMAT to read it as a timestamp"
                    )))
                }
                _ => {
                    return Err(SqlError::invalid(format!(
                        "Timestamp column, `{col}`, should be LONG(INT64), TIMESTAMP, or a String with a timestamp_format specified."
                    )))
                }
            }
            let name = key
                .iter()
                .chain(value.iter())
                .find(|(n, _)| n.eq_ignore_ascii_case(&t))
                .map(|(n, _)| n.clone())
                .unwrap_or(col);
            Some((name, fmt))
        }
        None => None,
    };
    let window = match props.text("WINDOW_TYPE") {
        None => None,
        Some(w) => {
            let wt = match w.to_ascii_uppercase().as_str() {
                "TUMBLING" => WindowType::Tumbling,
                "HOPPING" => WindowType::Hopping,
                "SESSION" => WindowType::Session,
                other => return Err(SqlError::invalid(format!("Unknown WINDOW_TYPE: {other}"))),
            };
            let size = match props.text("WINDOW_SIZE") {
                Some(s) => Some(parse_duration_text(&s)?),
                None if wt != WindowType::Session => {
                    return Err(SqlError::invalid(format!(
                        "{} windows require WINDOW_SIZE",
                        wt.name()
                    )))
                }
                None => None,
            };
            Some((wt, size))
        }
    };
    let partitions = props.int("PARTITIONS")?.map(|p| p as i32);
    if partitions.is_some_and(|p| p < 1) {
        return Err(SqlError::invalid("PARTITIONS must be at least 1"));
    }
    Ok((
        Source {
            name: c.name.clone(),
            kind: c.kind,
            topic,
            key,
            value,
            headers,
            key_format,
            value_format,
            wrap_single,
            timestamp,
            window,
            read_only: c.source,
            statement: statement.to_string(),
        },
        partitions,
    ))
}

/// A header column declaration checked as ksqlDB checks it: HEADER('k')
/// is BYTES, HEADERS is [`headers_type`], one HEADERS column and one
/// column per header key (ksqlDB's check is order-dependent: a HEADERS
/// column refuses header columns after it, not before).
fn header_column(col: &ColumnDef, before: &[HeaderColumn]) -> Result<HeaderColumn> {
    match &col.header_key {
        Some(k) if col.ty != SqlType::Bytes => {
            return Err(SqlError::invalid(format!(
                "Invalid type for HEADER('{k}') column: expected BYTES, got {}",
                col.ty
            )))
        }
        None if col.ty != headers_type() => {
            return Err(SqlError::invalid(format!(
                "Invalid type for HEADERS column: expected {}, got {}",
                headers_type(),
                col.ty
            )))
        }
        _ => {}
    }
    if before.iter().any(|h| h.key.is_none()) {
        return Err(SqlError::invalid(
            "Schema already contains a HEADERS column.",
        ));
    }
    if let Some(k) = &col.header_key {
        if before.iter().any(|h| h.key.as_ref() == Some(k)) {
            return Err(SqlError::invalid(format!(
                "Schema already contains a HEADER('{k}') column."
            )));
        }
    }
    Ok(HeaderColumn {
        column: (col.name.clone(), col.ty.clone()),
        key: col.header_key.clone(),
    })
}

/// `10 SECONDS`-style text as milliseconds.
pub fn parse_duration_text(s: &str) -> Result<i64> {
    let mut parts = s.split_whitespace();
    let n: i64 = parts
        .next()
        .and_then(|p| p.parse().ok())
        .ok_or_else(|| SqlError::invalid(format!("Invalid duration: '{s}'")))?;
    let ms = crate::time::unit_ms(parts.next().unwrap_or("MILLISECONDS"))
        .ok_or_else(|| SqlError::invalid(format!("Invalid duration: '{s}'")))?;
    Ok(n * ms)
}

/// Pseudo-columns every source has; user columns may not take these names.
pub const PSEUDO_COLUMNS: &[&str] = &[
    "ROWTIME",
    "ROWPARTITION",
    "ROWOFFSET",
    "WINDOWSTART",
    "WINDOWEND",
];

pub fn is_reserved_column(name: &str) -> bool {
    PSEUDO_COLUMNS.contains(&name)
}

/// Streams and tables by name.
#[derive(Debug, Clone, Default)]
pub struct MetaStore {
    pub sources: BTreeMap<String, Source>,
}

impl MetaStore {
    pub fn get(&self, name: &str) -> Result<&Source> {
        self.sources
            .get(name)
            .ok_or_else(|| SqlError::invalid(format!("{name} does not exist.")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ast::Statement;

    fn create(columns: &str) -> Result<Source> {
        let text =
            format!("CREATE STREAM s ({columns}) WITH (KAFKA_TOPIC='s', VALUE_FORMAT='JSON');");
        let parsed = crate::parser::parse_one(&text, &BTreeMap::new())?;
        let Statement::CreateSource(c) = parsed.statement else {
            panic!("not a CREATE");
        };
        source_from_create(&c, &text).map(|(s, _)| s)
    }

    fn error(columns: &str) -> String {
        create(columns).unwrap_err().to_string()
    }

    #[test]
    fn header_columns_follow_the_value_columns() {
        let s = create(
            "H BYTES HEADER('a'), ID INT KEY, HS ARRAY<STRUCT<key STRING, value BYTES>> HEADERS, V STRING",
        )
        .unwrap();
        assert_eq!(s.key.len(), 1);
        assert_eq!(s.value, vec![("V".to_string(), SqlType::String)]);
        let names: Vec<&str> = s.columns().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["ID", "V", "H", "HS"]);
        assert_eq!(s.rowtime_index(), 4);
        assert_eq!(s.header("H").unwrap().key.as_deref(), Some("a"));
        assert_eq!(s.header("HS").unwrap().key, None);
        assert!(s.header("V").is_none());
    }

    #[test]
    fn header_columns_are_checked_as_ksqldb_checks_them() {
        assert!(error("H INT HEADER('a')")
            .contains("Invalid type for HEADER('a') column: expected BYTES, got INTEGER"));
        assert!(error("H ARRAY<STRUCT<key STRING, value STRING>> HEADERS").contains(
            "Invalid type for HEADERS column: expected ARRAY<STRUCT<`KEY` STRING, `VALUE` BYTES>>, got ARRAY<STRUCT<`KEY` STRING, `VALUE` STRING>>"
        ));
        let headers = "ARRAY<STRUCT<key STRING, value BYTES>>";
        assert!(error(&format!("A {headers} HEADERS, B {headers} HEADERS"))
            .contains("Schema already contains a HEADERS column."));
        assert!(error(&format!("A {headers} HEADERS, B BYTES HEADER('k')"))
            .contains("Schema already contains a HEADERS column."));
        assert!(error("A BYTES HEADER('k'), B BYTES HEADER('k')")
            .contains("Schema already contains a HEADER('k') column."));
        // ksqlDB's check looks back only: HEADER('k') before HEADERS passes.
        create(&format!("B BYTES HEADER('k'), A {headers} HEADERS")).unwrap();
        assert!(error("A BYTES HEADER('k'), A STRING").contains("Duplicate column names"));
        let ts = "CREATE STREAM s (H BYTES HEADER('k')) WITH (KAFKA_TOPIC='s', VALUE_FORMAT='JSON', TIMESTAMP='H');";
        let Statement::CreateSource(c) = crate::parser::parse_one(ts, &BTreeMap::new())
            .unwrap()
            .statement
        else {
            panic!()
        };
        // Event time comes from the key or the value, never a header.
        assert!(source_from_create(&c, ts)
            .unwrap_err()
            .to_string()
            .contains(
                "The TIMESTAMP column set in the WITH clause does not exist in the schema: 'H'"
            ));
    }

    #[test]
    fn header_columns_read_the_record_headers() {
        let one = HeaderColumn {
            column: ("H".to_string(), SqlType::Bytes),
            key: Some("a".to_string()),
        };
        let all = HeaderColumn {
            column: ("HS".to_string(), headers_type()),
            key: None,
        };
        let hs: &[(&str, Option<&[u8]>)] = &[("a", Some(b"1")), ("b", None), ("a", Some(b"3"))];
        // The last header of the key, NULL without one.
        assert_eq!(one.read(hs), Value::Bytes(b"3".to_vec()));
        assert_eq!(one.read(&hs[1..2]), Value::Null);
        assert_eq!(one.read(&[]), Value::Null);
        let entry = |k: &str, v: Value| {
            Value::Struct(vec![
                ("KEY".to_string(), Value::String(k.to_string())),
                ("VALUE".to_string(), v),
            ])
        };
        assert_eq!(
            all.read(hs),
            Value::Array(vec![
                entry("a", Value::Bytes(b"1".to_vec())),
                entry("b", Value::Null),
                entry("a", Value::Bytes(b"3".to_vec())),
            ])
        );
        assert_eq!(all.read(&[]), Value::Array(vec![]));
    }
}
