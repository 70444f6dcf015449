//! A walk over an Avro datum's binary encoding that builds nothing and
//! checks that every length and item count is possible in the bytes that
//! remain.
//!
//! `apache-avro` reserves an array's or map's capacity from its block count
//! before it reads the items, and checks the count only against its global
//! allocation cap (512 Mi items): a ten-byte record claiming a hundred
//! million items makes it allocate gigabytes. Records come from any
//! producer, and the services that decode them run in the node's process,
//! so the datum is checked first and such a record is refused as invalid.

use std::collections::HashMap;

use apache_avro::Schema;

/// Named types by full name.
pub(crate) type Named = HashMap<String, Schema>;

/// Most items a block may claim beyond the bytes left: items of types that
/// take no bytes (null, empty records) need no bytes each.
const FREE_ITEMS: u64 = 1 << 16;
/// Deepest nesting walked (recursive types nest through unions).
const MAX_DEPTH: usize = 128;

/// Checks that `bytes` starts with a datum of `schema` whose lengths and
/// counts fit in `bytes`; the reason otherwise.
pub(crate) fn check(schema: &Schema, named: &Named, bytes: &[u8]) -> Result<(), String> {
    let mut buf = bytes;
    walk(schema, named, &mut buf, 0)
}

fn walk(s: &Schema, named: &Named, buf: &mut &[u8], depth: usize) -> Result<(), String> {
    if depth > MAX_DEPTH {
        return Err(format!("nested deeper than {MAX_DEPTH} levels"));
    }
    match s {
        Schema::Null => Ok(()),
        Schema::Boolean => take(buf, 1),
        Schema::Int
        | Schema::Long
        | Schema::Date
        | Schema::TimeMillis
        | Schema::TimeMicros
        | Schema::TimestampMillis
        | Schema::TimestampMicros
        | Schema::TimestampNanos
        | Schema::LocalTimestampMillis
        | Schema::LocalTimestampMicros
        | Schema::LocalTimestampNanos
        | Schema::Enum(_) => varint(buf).map(drop),
        Schema::Float => take(buf, 4),
        Schema::Double => take(buf, 8),
        Schema::Duration => take(buf, 12),
        Schema::Fixed(f) => take(buf, f.size),
        Schema::Bytes | Schema::String | Schema::Uuid | Schema::BigDecimal => {
            let n = length(buf)?;
            take(buf, n)
        }
        Schema::Decimal(d) => walk(&d.inner, named, buf, depth + 1),
        Schema::Ref { name } => {
            let target = named
                .get(&name.fullname(None))
                .ok_or_else(|| format!("undefined name {}", name.fullname(None)))?;
            walk(target, named, buf, depth + 1)
        }
        Schema::Union(u) => {
            let i = varint(buf)?;
            let branch = usize::try_from(i)
                .ok()
                .and_then(|i| u.variants().get(i))
                .ok_or_else(|| format!("union branch {i} does not exist"))?;
            walk(branch, named, buf, depth + 1)
        }
        Schema::Record(r) => r
            .fields
            .iter()
            .try_for_each(|f| walk(&f.schema, named, buf, depth + 1)),
        Schema::Array(a) => blocks(buf, |buf| walk(&a.items, named, buf, depth + 1)),
        Schema::Map(m) => blocks(buf, |buf| {
            let n = length(buf)?;
            take(buf, n)?;
            walk(&m.types, named, buf, depth + 1)
        }),
        // A type this walk does not know: apache-avro alone judges it.
        #[allow(unreachable_patterns)]
        _ => Ok(()),
    }
}

/// An array's or map's blocks: a count (negative: followed by the block's
/// size in bytes), the items, until a zero count.
fn blocks(
    buf: &mut &[u8],
    mut item: impl FnMut(&mut &[u8]) -> Result<(), String>,
) -> Result<(), String> {
    loop {
        let count = varint(buf)?;
        if count == 0 {
            return Ok(());
        }
        if count < 0 {
            varint(buf)?;
        }
        let count = count.unsigned_abs();
        if count > FREE_ITEMS.max(buf.len() as u64) {
            return Err(format!(
                "a block claims {count} items with {} bytes left",
                buf.len()
            ));
        }
        for _ in 0..count {
            item(buf)?;
        }
    }
}

fn take(buf: &mut &[u8], n: usize) -> Result<(), String> {
    if n > buf.len() {
        return Err(format!("{n} bytes needed, {} left", buf.len()));
    }
    *buf = &buf[n..];
    Ok(())
}

fn length(buf: &mut &[u8]) -> Result<usize, String> {
    let n = varint(buf)?;
    usize::try_from(n).map_err(|_| format!("negative length {n}"))
}

/// A zig-zag varint (Avro's int and long).
fn varint(buf: &mut &[u8]) -> Result<i64, String> {
    let mut raw: u64 = 0;
    for shift in (0..64).step_by(7) {
        let (&b, rest) = buf.split_first().ok_or("the datum ends inside a number")?;
        *buf = rest;
        raw |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Ok((raw >> 1) as i64 ^ -((raw & 1) as i64));
        }
    }
    Err("a number longer than 10 bytes".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schema(text: &str) -> Schema {
        Schema::parse_str(text).unwrap()
    }

    #[test]
    fn a_count_beyond_the_bytes_left_is_refused() {
        let s = schema(r#"{"type":"array","items":"string"}"#);
        // 100,000,000 items (zig-zag varint), then nothing.
        let mut bytes = Vec::new();
        let mut v = 200_000_000u64;
        while v >= 0x80 {
            bytes.push((v as u8) | 0x80);
            v >>= 7;
        }
        bytes.push(v as u8);
        let err = check(&s, &Named::new(), &bytes).unwrap_err();
        assert!(err.contains("claims 100000000 items"), "{err}");
    }

    #[test]
    fn valid_datums_pass() {
        let s = schema(
            r#"{"type":"record","name":"R","fields":[
              {"name":"a","type":{"type":"array","items":"null"}},
              {"name":"m","type":{"type":"map","values":["null","long"]}},
              {"name":"f","type":{"type":"fixed","name":"F","size":2}}]}"#,
        );
        let value = apache_avro::types::Value::Record(vec![
            (
                "a".into(),
                apache_avro::types::Value::Array(vec![apache_avro::types::Value::Null; 3]),
            ),
            (
                "m".into(),
                apache_avro::types::Value::Map(
                    [(
                        "k".to_string(),
                        apache_avro::types::Value::Union(1, Box::new(7i64.into())),
                    )]
                    .into(),
                ),
            ),
            ("f".into(), apache_avro::types::Value::Fixed(2, vec![1, 2])),
        ]);
        let bytes = apache_avro::to_avro_datum(&s, value).unwrap();
        check(&s, &Named::new(), &bytes).unwrap();
        assert!(check(&s, &Named::new(), &bytes[..bytes.len() - 1]).is_err());
    }
}
