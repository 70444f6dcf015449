//! `ssl.principal.mapping.rules`: Kafka's rules turning a client
//! certificate's subject DN (RFC 2253 form, `CN=alice,OU=eng,O=acme`)
//! into a principal name.
//!
//! The syntax is Kafka's: a comma-separated list of `DEFAULT` and
//! `RULE:pattern/replacement/[LU]`. The first rule whose pattern matches
//! the whole DN wins; `DEFAULT` yields the DN unchanged; `L`/`U` lower or
//! upper case the result. No rule matching refuses the client, as Kafka
//! does.

use regex::Regex;

use crate::AuthError;

#[derive(Debug, Clone)]
enum Rule {
    Default,
    Replace {
        pattern: Regex,
        replacement: String,
        case: Option<Case>,
    },
}

#[derive(Debug, Clone, Copy)]
enum Case {
    Lower,
    Upper,
}

/// Parsed mapping rules.
#[derive(Debug, Clone)]
pub struct PrincipalMapper {
    rules: Vec<Rule>,
}

fn config(detail: impl Into<String>) -> AuthError {
    AuthError::Config {
        name: "ssl.principal.mapping.rules".into(),
        detail: detail.into(),
    }
}

/// Reads up to the next unescaped `/`, returning the text (escapes kept)
/// and the rest after the slash.
fn until_slash(s: &str) -> Option<(&str, &str)> {
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'\\' => i += 2,
            b'/' => return Some((&s[..i], &s[i + 1..])),
            _ => i += 1,
        }
    }
    None
}

/// Java's `replaceAll` replacement syntax to the regex crate's: `$n`
/// becomes `${n}` and `\c` the literal `c`.
fn java_replacement(r: &str) -> String {
    let mut out = String::new();
    let mut chars = r.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                if let Some(n) = chars.next() {
                    if n == '$' {
                        out.push_str("$$");
                    } else {
                        out.push(n);
                    }
                }
            }
            '$' => {
                let mut digits = String::new();
                while let Some(d) = chars.peek().filter(|d| d.is_ascii_digit()) {
                    digits.push(*d);
                    chars.next();
                }
                if digits.is_empty() {
                    out.push_str("$$");
                } else {
                    out.push_str(&format!("${{{digits}}}"));
                }
            }
            other => out.push(other),
        }
    }
    out
}

impl PrincipalMapper {
    /// Parses the rules; an empty string means `DEFAULT`.
    pub fn parse(s: &str) -> Result<Self, AuthError> {
        let mut rules = Vec::new();
        let mut rest = s.trim();
        while !rest.is_empty() {
            if let Some(r) = rest.strip_prefix("DEFAULT") {
                rules.push(Rule::Default);
                rest = r;
            } else if let Some(r) = rest.strip_prefix("RULE:") {
                let (pattern, r) =
                    until_slash(r).ok_or_else(|| config("a RULE has no `/` after its pattern"))?;
                let (replacement, r) = until_slash(r)
                    .ok_or_else(|| config("a RULE has no `/` after its replacement"))?;
                let (case, r) = match r.as_bytes().first() {
                    Some(b'L') => (Some(Case::Lower), &r[1..]),
                    Some(b'U') => (Some(Case::Upper), &r[1..]),
                    _ => (None, r),
                };
                let pattern = Regex::new(&format!("^(?:{pattern})$"))
                    .map_err(|e| config(format!("bad pattern `{pattern}`: {e}")))?;
                rules.push(Rule::Replace {
                    pattern,
                    replacement: java_replacement(replacement),
                    case,
                });
                rest = r;
            } else {
                return Err(config(format!(
                    "`{rest}`: each rule must be DEFAULT or RULE:pattern/replacement/[LU]"
                )));
            }
            rest = rest.trim_start();
            match rest.strip_prefix(',') {
                Some(r) => rest = r.trim_start(),
                None if rest.is_empty() => {}
                None => return Err(config(format!("`{rest}`: expected `,` between rules"))),
            }
        }
        if rules.is_empty() {
            rules.push(Rule::Default);
        }
        Ok(Self { rules })
    }

    /// The principal name for `dn`, or `None` when no rule matches.
    pub fn map(&self, dn: &str) -> Option<String> {
        self.rules.iter().find_map(|rule| match rule {
            Rule::Default => Some(dn.to_string()),
            Rule::Replace {
                pattern,
                replacement,
                case,
            } => pattern.is_match(dn).then(|| {
                let out = pattern.replace_all(dn, replacement.as_str()).into_owned();
                match case {
                    Some(Case::Lower) => out.to_lowercase(),
                    Some(Case::Upper) => out.to_uppercase(),
                    None => out,
                }
            }),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_keeps_the_dn() {
        let m = PrincipalMapper::parse("").unwrap();
        assert_eq!(
            m.map("CN=alice,OU=eng,O=acme").unwrap(),
            "CN=alice,OU=eng,O=acme"
        );
        let m = PrincipalMapper::parse("DEFAULT").unwrap();
        assert_eq!(m.map("CN=a").unwrap(), "CN=a");
    }

    #[test]
    fn kafka_documentation_examples_map_as_kafka_maps_them() {
        // From Kafka's security documentation.
        let m = PrincipalMapper::parse(
            "RULE:^CN=(.*?),OU=ServiceUsers.*$/$1/,RULE:^CN=(.*?),OU=(.*?),O=(.*?),L=(.*?),ST=(.*?),C=(.*?)$/$1@$2/L,RULE:^.*[Cc][Nn]=([a-zA-Z0-9.]*).*$/$1/L,DEFAULT",
        )
        .unwrap();
        assert_eq!(
            m.map("CN=serviceuser,OU=ServiceUsers,O=Unknown,L=Unknown,ST=Unknown,C=Unknown")
                .unwrap(),
            "serviceuser"
        );
        assert_eq!(
            m.map("CN=adminUser,OU=Admin,O=Unknown,L=Unknown,ST=Unknown,C=Unknown")
                .unwrap(),
            "adminuser@admin"
        );
        assert_eq!(m.map("OU=x,CN=Bob.Smith,O=y").unwrap(), "bob.smith");
        assert_eq!(m.map("O=nocn").unwrap(), "O=nocn");
    }

    #[test]
    fn upper_case_escapes_and_no_match() {
        let m = PrincipalMapper::parse(" RULE:^CN=([^,]*),.*$/$1/U ").unwrap();
        assert_eq!(m.map("CN=alice,O=acme").unwrap(), "ALICE");
        assert_eq!(m.map("O=acme"), None, "no rule matches: refused");
        let m = PrincipalMapper::parse(r"RULE:^CN=(.*)\/x$/a\/$1/").unwrap();
        assert_eq!(m.map("CN=b/x").unwrap(), "a/b");
    }

    #[test]
    fn malformed_rules_are_refused() {
        for bad in [
            "RULE:abc",
            "RULE:a/b",
            "SOMETHING",
            "DEFAULT DEFAULT",
            "RULE:(/x/",
        ] {
            assert!(PrincipalMapper::parse(bad).is_err(), "{bad}");
        }
    }
}
