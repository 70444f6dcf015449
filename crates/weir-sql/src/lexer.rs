//! Tokens of ksqlDB's language, each with the line and column it starts at
//! (1-based, as ksqlDB reports them in `line 1:8: ...` errors).

use crate::error::SqlError;

/// A token kind.
#[derive(Debug, Clone, PartialEq)]
pub enum Tok {
    /// An unquoted word (keyword or identifier), as written.
    Word(String),
    /// A back-quoted or double-quoted identifier (case kept).
    Quoted(String),
    /// A single-quoted string literal, quotes removed and `''` unescaped.
    Str(String),
    /// An integer literal.
    Int(String),
    /// A literal with a fraction or exponent.
    Decimal(String),
    /// Punctuation and operators.
    Sym(&'static str),
    /// `${name}` left unsubstituted.
    Variable(String),
    Eof,
}

/// A token and where it starts.
#[derive(Debug, Clone, PartialEq)]
pub struct Token {
    pub tok: Tok,
    pub line: usize,
    pub col: usize,
    /// Byte offset in the text.
    pub pos: usize,
}

const SYMBOLS: [&str; 24] = [
    "=>", "->", "<>", "!=", "<=", ">=", "||", ":=", "(", ")", ",", ";", ".", "*", "+", "-", "/",
    "%", "=", "<", ">", "[", "]", ":",
];

/// Splits `text` into tokens, ending with `Eof`.
pub fn tokenize(text: &str) -> Result<Vec<Token>, SqlError> {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let (mut i, mut line, mut line_start) = (0usize, 1usize, 0usize);
    while i < bytes.len() {
        let c = bytes[i];
        let col = text[line_start..i].chars().count() + 1;
        if c == b'\n' {
            i += 1;
            line += 1;
            line_start = i;
            continue;
        }
        if c.is_ascii_whitespace() {
            i += 1;
            continue;
        }
        // Comments: `-- ...` to the end of the line, `/* ... */`.
        if text[i..].starts_with("--") {
            while i < bytes.len() && bytes[i] != b'\n' {
                i += 1;
            }
            continue;
        }
        if text[i..].starts_with("/*") {
            let end = text[i + 2..].find("*/").ok_or_else(|| SqlError::Syntax {
                line,
                col,
                message: "unterminated comment".into(),
            })?;
            for ch in text[i..i + 2 + end + 2].chars() {
                if ch == '\n' {
                    line += 1;
                }
            }
            i += 2 + end + 2;
            if let Some(nl) = text[..i].rfind('\n') {
                line_start = nl + 1;
            }
            continue;
        }
        let start = i;
        let start_line = line;
        let push = |out: &mut Vec<Token>, tok| {
            out.push(Token {
                tok,
                line: start_line,
                col,
                pos: start,
            })
        };
        if c == b'\'' {
            let mut s = String::new();
            i += 1;
            loop {
                match text[i..].chars().next() {
                    None => {
                        return Err(SqlError::Syntax {
                            line,
                            col,
                            message: "unterminated string literal".into(),
                        })
                    }
                    Some('\'') if text[i + 1..].starts_with('\'') => {
                        s.push('\'');
                        i += 2;
                    }
                    Some('\'') => {
                        i += 1;
                        break;
                    }
                    Some(ch) => {
                        if ch == '\n' {
                            line += 1;
                            line_start = i + 1;
                        }
                        s.push(ch);
                        i += ch.len_utf8();
                    }
                }
            }
            push(&mut out, Tok::Str(s));
            continue;
        }
        if c == b'`' || c == b'"' {
            let end = text[i + 1..]
                .find(c as char)
                .ok_or_else(|| SqlError::Syntax {
                    line,
                    col,
                    message: "unterminated quoted identifier".into(),
                })?;
            push(&mut out, Tok::Quoted(text[i + 1..i + 1 + end].to_string()));
            i += end + 2;
            continue;
        }
        if text[i..].starts_with("${") {
            let end = text[i..].find('}').ok_or_else(|| SqlError::Syntax {
                line,
                col,
                message: "unterminated variable reference".into(),
            })?;
            push(&mut out, Tok::Variable(text[i + 2..i + end].to_string()));
            i += end + 1;
            continue;
        }
        if c.is_ascii_digit() || (c == b'.' && bytes.get(i + 1).is_some_and(u8::is_ascii_digit)) {
            let mut decimal = false;
            while i < bytes.len() && bytes[i].is_ascii_digit() {
                i += 1;
            }
            if i < bytes.len() && bytes[i] == b'.' {
                decimal = true;
                i += 1;
                while i < bytes.len() && bytes[i].is_ascii_digit() {
                    i += 1;
                }
            }
            if i < bytes.len() && (bytes[i] == b'e' || bytes[i] == b'E') {
                let mut j = i + 1;
                if j < bytes.len() && (bytes[j] == b'+' || bytes[j] == b'-') {
                    j += 1;
                }
                if j < bytes.len() && bytes[j].is_ascii_digit() {
                    decimal = true;
                    i = j;
                    while i < bytes.len() && bytes[i].is_ascii_digit() {
                        i += 1;
                    }
                }
            }
            let lit = text[start..i].to_string();
            push(
                &mut out,
                if decimal {
                    Tok::Decimal(lit)
                } else {
                    Tok::Int(lit)
                },
            );
            continue;
        }
        if c.is_ascii_alphabetic() || c == b'_' || c == b'@' || c >= 0x80 {
            while i < bytes.len() {
                let ch = text[i..].chars().next().unwrap_or(' ');
                if ch.is_alphanumeric() || ch == '_' || ch == '@' || ch == '$' {
                    i += ch.len_utf8();
                } else {
                    break;
                }
            }
            // A non-ASCII character that is not a letter or digit starts no
            // word: fall through to the symbols, which refuse it.
            if i > start {
                push(&mut out, Tok::Word(text[start..i].to_string()));
                continue;
            }
        }
        match SYMBOLS.iter().find(|s| text[i..].starts_with(**s)) {
            Some(sym) => {
                i += sym.len();
                push(&mut out, Tok::Sym(sym));
            }
            None => {
                let ch = text[i..].chars().next().unwrap_or('?');
                return Err(SqlError::Syntax {
                    line,
                    col,
                    message: format!("extraneous input '{ch}'"),
                });
            }
        }
    }
    let col = text[line_start..].chars().count() + 1;
    out.push(Token {
        tok: Tok::Eof,
        line,
        col,
        pos: text.len(),
    });
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(s: &str) -> Vec<Tok> {
        tokenize(s).unwrap().into_iter().map(|t| t.tok).collect()
    }

    #[test]
    fn a_non_letter_outside_ascii_is_refused_not_looped_on() {
        assert!(tokenize("SELECT \u{a0}x").is_err());
        assert!(tokenize("SELECT €").is_err());
        assert_eq!(kinds("é"), vec![Tok::Word("é".into()), Tok::Eof]);
    }

    #[test]
    fn words_strings_numbers_symbols() {
        assert_eq!(
            kinds("SELECT a->b, 'it''s', 1.5e3, 42 FROM `Quoted`;"),
            vec![
                Tok::Word("SELECT".into()),
                Tok::Word("a".into()),
                Tok::Sym("->"),
                Tok::Word("b".into()),
                Tok::Sym(","),
                Tok::Str("it's".into()),
                Tok::Sym(","),
                Tok::Decimal("1.5e3".into()),
                Tok::Sym(","),
                Tok::Int("42".into()),
                Tok::Word("FROM".into()),
                Tok::Quoted("Quoted".into()),
                Tok::Sym(";"),
                Tok::Eof
            ]
        );
    }

    #[test]
    fn positions_are_line_and_column() {
        let t = tokenize("SELECT\n  x -- c\n /* a\nb */ y").unwrap();
        assert_eq!((t[1].line, t[1].col), (2, 3));
        assert_eq!((t[2].line, t[2].col), (4, 6));
    }

    #[test]
    fn unterminated_string_is_an_error() {
        assert!(matches!(
            tokenize("SELECT 'abc"),
            Err(SqlError::Syntax {
                line: 1,
                col: 8,
                ..
            })
        ));
    }
}
