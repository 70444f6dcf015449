//! Java `.properties` files, the format of Kafka's client and worker
//! configs (`--command-config`, `worker.properties`).

use std::collections::BTreeMap;

/// Parses `.properties` text as `java.util.Properties.load` does: `#` and
/// `!` comments, `key=value`, `key: value` or `key value`, a trailing `\`
/// continuing a line, and the escapes `\t \n \r \f \uXXXX`. A later key
/// wins over an earlier one.
pub fn parse_properties(text: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut logical = String::new();
    let mut lines = text.lines();
    while let Some(line) = lines.next() {
        let mut line = line.trim_start();
        if logical.is_empty() && (line.starts_with('#') || line.starts_with('!')) {
            continue;
        }
        // An odd number of trailing backslashes continues the line.
        loop {
            let trailing = line.len() - line.trim_end_matches('\\').len();
            if trailing % 2 == 1 {
                logical.push_str(&line[..line.len() - 1]);
                match lines.next() {
                    Some(next) => line = next.trim_start(),
                    None => {
                        line = "";
                        break;
                    }
                }
            } else {
                break;
            }
        }
        logical.push_str(line);
        let entry = std::mem::take(&mut logical);
        if entry.trim().is_empty() {
            continue;
        }
        let (key, value) = split_entry(&entry);
        out.insert(unescape(key), unescape(value));
    }
    out
}

/// Splits at the first unescaped `=`, `:` or whitespace.
fn split_entry(entry: &str) -> (&str, &str) {
    let bytes = entry.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 2,
            b'=' | b':' => return (&entry[..i], entry[i + 1..].trim_start()),
            c if c.is_ascii_whitespace() => {
                let rest = entry[i..].trim_start();
                let rest = rest
                    .strip_prefix('=')
                    .or_else(|| rest.strip_prefix(':'))
                    .unwrap_or(rest);
                return (&entry[..i], rest.trim_start());
            }
            _ => i += 1,
        }
    }
    (entry, "")
}

fn unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('t') => out.push('\t'),
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            Some('f') => out.push('\u{c}'),
            Some('u') => {
                let hex: String = chars.by_ref().take(4).collect();
                match u32::from_str_radix(&hex, 16).ok().and_then(char::from_u32) {
                    Some(ch) => out.push(ch),
                    None => out.push_str(&hex),
                }
            }
            Some(other) => out.push(other),
            None => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn java_properties_parse() {
        let p = parse_properties(
            "# comment\n! also\nbootstrap.servers=127.0.0.1:9092\n  group.id : connect-cluster\nkey.converter org.apache.kafka.connect.json.JsonConverter\nsasl.jaas.config=a \\\n    b;\npath=C\\:\\\\dir\\u0041\nempty=\nbare\n",
        );
        assert_eq!(p["bootstrap.servers"], "127.0.0.1:9092");
        assert_eq!(p["group.id"], "connect-cluster");
        assert_eq!(
            p["key.converter"],
            "org.apache.kafka.connect.json.JsonConverter"
        );
        assert_eq!(p["sasl.jaas.config"], "a b;");
        assert_eq!(p["path"], "C:\\dirA");
        assert_eq!(p["empty"], "");
        assert_eq!(p["bare"], "");
        assert_eq!(p.len(), 7);
    }
}
