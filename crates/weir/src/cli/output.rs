//! Output for people (aligned tables) and for scripts (`--output json`).

use std::io::Write;

use clap::ValueEnum;
use serde_json::Value;

/// `--output`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum OutputFormat {
    /// Aligned tables.
    #[default]
    Table,
    /// JSON, one document.
    Json,
}

/// Fails with Kafka's error name and the broker's message, if any.
pub fn check(code: i16, what: &str, message: Option<&str>) -> anyhow::Result<()> {
    Ok(weir_client::check(code, what, message)?)
}

/// Writes to stdout, ignoring a closed pipe (`weir ... | head`).
pub fn out(text: &str) {
    let mut o = std::io::stdout().lock();
    let _ = o.write_all(text.as_bytes());
    let _ = o.flush();
}

/// Prints a JSON document.
pub fn json(v: &Value) {
    out(&format!(
        "{}\n",
        serde_json::to_string_pretty(v).unwrap_or_default()
    ));
}

/// An aligned table: a header row and rows, columns padded to the widest
/// cell, two spaces apart.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(c.chars().count());
            }
        }
    }
    let mut s = String::new();
    let line = |cells: Vec<&str>, s: &mut String| {
        let n = cells.len();
        for (i, c) in cells.into_iter().enumerate() {
            s.push_str(c);
            if i + 1 < n {
                let pad = widths[i] - c.chars().count() + 2;
                s.extend(std::iter::repeat_n(' ', pad));
            }
        }
        s.push('\n');
    };
    line(header.to_vec(), &mut s);
    for r in rows {
        line(r.iter().map(String::as_str).collect(), &mut s);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align() {
        let t = table(
            &["TOPIC", "P"],
            &[
                vec!["a".into(), "10".into()],
                vec!["long-name".into(), "1".into()],
            ],
        );
        assert_eq!(t, "TOPIC      P\na          10\nlong-name  1\n");
    }
}
