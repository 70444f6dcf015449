//! SASL PLAIN (RFC 4616) against a credentials file.
//!
//! The file holds one `username=password` a line; blank lines and lines
//! starting with `#` are skipped. Passwords are compared in constant time
//! (over their SHA-256 digests, so the length does not leak either), and
//! every refusal gives the same message, whether the user is unknown or
//! the password wrong.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::SystemTime;

use crate::sasl::{Mechanism, SaslServer, SaslStep};
use crate::{AuthError, KafkaPrincipal};

/// The message every PLAIN refusal carries (Kafka's wording).
pub const PLAIN_FAILED: &str = "Invalid username or password";

/// A parsed PLAIN client message.
#[derive(Debug, PartialEq, Eq)]
pub struct PlainMessage<'a> {
    /// The authorization id (may be empty).
    pub authzid: &'a str,
    /// The user.
    pub authcid: &'a str,
    /// The password.
    pub password: &'a str,
}

/// Parses `authzid NUL authcid NUL passwd`.
pub fn parse_plain(msg: &[u8]) -> Result<PlainMessage<'_>, AuthError> {
    let malformed = |detail: &str| AuthError::Malformed {
        mechanism: "PLAIN",
        detail: detail.into(),
    };
    let text = std::str::from_utf8(msg).map_err(|_| malformed("not UTF-8"))?;
    let mut parts = text.split('\0');
    let (Some(authzid), Some(authcid), Some(password), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(malformed(
            "expected authzid, authcid and password separated by NUL",
        ));
    };
    if authcid.is_empty() {
        return Err(malformed("empty username"));
    }
    if password.is_empty() {
        return Err(malformed("empty password"));
    }
    Ok(PlainMessage {
        authzid,
        authcid,
        password,
    })
}

/// Usernames and passwords, parsed from the credentials file's text.
pub fn parse_credentials(text: &str) -> Result<HashMap<String, String>, AuthError> {
    let bad = |detail: String| AuthError::BadValue { detail };
    let mut users = HashMap::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((user, password)) = line.split_once('=') else {
            return Err(bad(format!("line {}: expected username=password", n + 1)));
        };
        let user = user.trim();
        if user.is_empty() {
            return Err(bad(format!("line {}: empty username", n + 1)));
        }
        users.insert(user.to_string(), password.to_string());
    }
    Ok(users)
}

fn digest(b: &[u8]) -> ring::digest::Digest {
    ring::digest::digest(&ring::digest::SHA256, b)
}

/// Constant-time equality of two secrets of any length.
pub fn secrets_equal(a: &[u8], b: &[u8]) -> bool {
    let (da, db) = (digest(a), digest(b));
    da.as_ref()
        .iter()
        .zip(db.as_ref())
        .fold(0u8, |acc, (x, y)| acc | (x ^ y))
        == 0
}

#[derive(Debug, Default)]
struct Loaded {
    users: HashMap<String, String>,
    modified: Option<SystemTime>,
}

/// The users of a credentials file, re-read when the file changes.
#[derive(Debug, Clone)]
pub struct PlainCredentials {
    path: PathBuf,
    loaded: Arc<RwLock<Loaded>>,
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

impl PlainCredentials {
    /// Reads `path`; fails if it cannot be read or parsed.
    pub fn open(path: impl Into<PathBuf>) -> Result<Self, AuthError> {
        let path = path.into();
        let c = Self {
            path,
            loaded: Arc::default(),
        };
        c.reload()?;
        Ok(c)
    }

    fn reload(&self) -> Result<(), AuthError> {
        let config = |detail: String| AuthError::Config {
            name: "sasl.plain.credentials.file".into(),
            detail,
        };
        let stamp = modified(&self.path);
        let text = std::fs::read_to_string(&self.path)
            .map_err(|e| config(format!("cannot read {}: {e}", self.path.display())))?;
        let users = parse_credentials(&text).map_err(|e| config(e.to_string()))?;
        let mut l = self.loaded.write().unwrap_or_else(|e| e.into_inner());
        *l = Loaded {
            users,
            modified: stamp,
        };
        Ok(())
    }

    /// Re-reads the file if its modification time changed. A file that
    /// became unreadable or invalid keeps the previous users (and logs
    /// nothing here: the caller decides).
    fn refresh(&self) -> Result<(), AuthError> {
        let now = modified(&self.path);
        let seen = self
            .loaded
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .modified;
        if now != seen {
            self.reload()?;
        }
        Ok(())
    }

    /// Whether `user` exists with `password`. Takes the same time for an
    /// unknown user as for a wrong password.
    pub fn verify(&self, user: &str, password: &str) -> bool {
        // An unreadable file keeps the last good users.
        let _ = self.refresh();
        let l = self.loaded.read().unwrap_or_else(|e| e.into_inner());
        match l.users.get(user) {
            Some(p) => secrets_equal(p.as_bytes(), password.as_bytes()),
            None => {
                let _ = secrets_equal(b"\0no such user", password.as_bytes());
                false
            }
        }
    }
}

/// The PLAIN mechanism.
#[derive(Debug, Clone)]
pub struct Plain {
    credentials: PlainCredentials,
}

impl Plain {
    /// PLAIN over the users of `credentials`.
    pub fn new(credentials: PlainCredentials) -> Self {
        Self { credentials }
    }
}

impl Mechanism for Plain {
    fn name(&self) -> &'static str {
        "PLAIN"
    }

    fn start(&self) -> Box<dyn SaslServer> {
        Box::new(PlainServer {
            credentials: self.credentials.clone(),
            done: false,
        })
    }
}

#[derive(Debug)]
struct PlainServer {
    credentials: PlainCredentials,
    done: bool,
}

impl SaslServer for PlainServer {
    fn step(&mut self, client_message: &[u8]) -> Result<SaslStep, AuthError> {
        if std::mem::replace(&mut self.done, true) {
            return Err(AuthError::Malformed {
                mechanism: "PLAIN",
                detail: "PLAIN takes a single message".into(),
            });
        }
        let fail = || AuthError::Authentication {
            reason: PLAIN_FAILED.into(),
        };
        let m = parse_plain(client_message).map_err(|_| fail())?;
        // Kafka: an authorization id other than the user is refused.
        if !m.authzid.is_empty() && m.authzid != m.authcid {
            return Err(AuthError::Authentication {
                reason: "Authentication failed: Client requested an authorization id that is different from username".into(),
            });
        }
        if !self.credentials.verify(m.authcid, m.password) {
            return Err(fail());
        }
        Ok(SaslStep::Done {
            principal: KafkaPrincipal::user(m.authcid),
            message: Vec::new(),
            expires_at_ms: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_messages_parse_and_malformed_ones_are_refused() {
        let m = parse_plain(b"\0alice\0secret").unwrap();
        assert_eq!((m.authzid, m.authcid, m.password), ("", "alice", "secret"));
        let m = parse_plain(b"alice\0alice\0p\0w").err();
        assert!(m.is_some(), "a fourth field is malformed");
        assert!(parse_plain(b"alice\0secret").is_err());
        assert!(parse_plain(b"\0\0secret").is_err());
        assert!(parse_plain(b"\0alice\0").is_err());
        assert!(parse_plain(&[0, 0xff, 0, b'x']).is_err());
        assert!(parse_plain(b"").is_err());
    }

    #[test]
    fn credentials_files_parse_with_comments_and_passwords_holding_equals() {
        let users = parse_credentials("# users\n\nalice=secret\n bob = a=b\n").unwrap();
        assert_eq!(users["alice"], "secret");
        assert_eq!(users["bob"], " a=b");
        assert!(parse_credentials("alice\n").is_err());
        assert!(parse_credentials("=x\n").is_err());
    }

    #[test]
    fn secrets_compare_by_content() {
        assert!(secrets_equal(b"abc", b"abc"));
        assert!(!secrets_equal(b"abc", b"abd"));
        assert!(!secrets_equal(b"abc", b"abcd"));
        assert!(!secrets_equal(b"", b"a"));
    }

    fn mechanism(text: &str) -> (tempfile::TempDir, Plain) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("users");
        std::fs::write(&path, text).unwrap();
        (dir, Plain::new(PlainCredentials::open(path).unwrap()))
    }

    #[test]
    fn plain_accepts_known_users_and_refuses_the_rest_alike() {
        let (_dir, plain) = mechanism("alice=secret\n");
        match plain.start().step(b"\0alice\0secret").unwrap() {
            SaslStep::Done { principal, .. } => assert_eq!(principal.to_string(), "User:alice"),
            other => panic!("unexpected {other:?}"),
        }
        match plain.start().step(b"alice\0alice\0secret").unwrap() {
            SaslStep::Done { principal, .. } => assert_eq!(principal.name, "alice"),
            other => panic!("unexpected {other:?}"),
        }
        let wrong = plain
            .start()
            .step(b"\0alice\0nope")
            .unwrap_err()
            .to_string();
        let unknown = plain
            .start()
            .step(b"\0mallory\0secret")
            .unwrap_err()
            .to_string();
        assert_eq!(
            wrong, unknown,
            "refusals must not tell which part was wrong"
        );
        assert!(!wrong.contains("secret"));
        assert!(plain.start().step(b"bob\0alice\0secret").is_err());
        assert!(plain.start().step(b"garbage").is_err());
    }

    #[test]
    fn the_credentials_file_is_reread_when_it_changes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("users");
        std::fs::write(&path, "alice=one\n").unwrap();
        let creds = PlainCredentials::open(&path).unwrap();
        assert!(creds.verify("alice", "one"));
        std::fs::write(&path, "alice=two\n").unwrap();
        // Make sure the modification time differs even on coarse clocks.
        let later = SystemTime::now() + std::time::Duration::from_secs(5);
        std::fs::File::options()
            .write(true)
            .open(&path)
            .unwrap()
            .set_modified(later)
            .unwrap();
        assert!(creds.verify("alice", "two"));
        assert!(!creds.verify("alice", "one"));
    }
}
