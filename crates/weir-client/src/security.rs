//! How a client secures its connections: Kafka's `security.protocol`, TLS
//! (rustls on ring) and a SASL login, configured by Kafka's client property
//! names so a worker or tool can take the settings its users already have.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use weir_tls::client::{client_config, ServerCheck};

pub use weir_auth::SecurityProtocol as Protocol;

use crate::error::ClientError;
use crate::Result;

/// A SASL mechanism and the client's credentials for it.
#[derive(Clone, PartialEq, Eq)]
pub enum SaslLogin {
    /// PLAIN (RFC 4616).
    Plain { username: String, password: String },
    /// SCRAM-SHA-256 or SCRAM-SHA-512 (RFC 5802, 7677).
    Scram {
        sha512: bool,
        username: String,
        password: String,
    },
    /// OAUTHBEARER (RFC 7628) with a JWT read from a file at each login,
    /// so a token renewed on disk is picked up by the next connection.
    OAuthBearer { token_file: PathBuf },
}

impl std::fmt::Debug for SaslLogin {
    // Never print a password.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Plain { username, .. } => write!(f, "PLAIN({username})"),
            Self::Scram {
                sha512, username, ..
            } => write!(
                f,
                "SCRAM-SHA-{}({username})",
                if *sha512 { 512 } else { 256 }
            ),
            Self::OAuthBearer { token_file } => write!(f, "OAUTHBEARER({})", token_file.display()),
        }
    }
}

impl SaslLogin {
    /// The mechanism's name as SaslHandshake spells it.
    pub fn mechanism(&self) -> &'static str {
        match self {
            Self::Plain { .. } => "PLAIN",
            Self::Scram { sha512: false, .. } => "SCRAM-SHA-256",
            Self::Scram { sha512: true, .. } => "SCRAM-SHA-512",
            Self::OAuthBearer { .. } => "OAUTHBEARER",
        }
    }
}

/// TLS settings: the CAs to trust, an optional client certificate, and
/// whether the broker's name is checked against its certificate.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsSettings {
    /// PEM CA bundle; `None` trusts the system's bundle.
    pub ca_file: Option<PathBuf>,
    /// PEM client certificate chain and key, for brokers that require one.
    pub client_cert: Option<(PathBuf, PathBuf)>,
    /// Kafka's `ssl.endpoint.identification.algorithm`: `https` (the
    /// default) checks the host name; empty checks only the chain.
    pub verify_hostname: bool,
}

/// Everything a connection needs to reach a secured listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientSecurity {
    /// `security.protocol` (PLAINTEXT without one).
    pub protocol: Protocol,
    /// TLS settings, used when the protocol has TLS.
    pub tls: TlsSettings,
    /// The SASL login, required when the protocol has SASL.
    pub sasl: Option<SaslLogin>,
}

/// Where the system's CA bundle usually is (Debian, Fedora, Alpine).
const SYSTEM_CA_BUNDLES: &[&str] = &[
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/cert.pem",
];

impl Default for ClientSecurity {
    fn default() -> Self {
        Self {
            protocol: Protocol::Plaintext,
            tls: TlsSettings::default(),
            sasl: None,
        }
    }
}

fn config_error(key: &str, reason: impl Into<String>) -> ClientError {
    ClientError::Config {
        key: key.to_string(),
        reason: reason.into(),
    }
}

impl ClientSecurity {
    /// Reads Kafka's client settings: `security.protocol`,
    /// `sasl.mechanism`, `sasl.jaas.config` (the username and password of
    /// `PlainLoginModule` or `ScramLoginModule`), `sasl.username` and
    /// `sasl.password` as librdkafka spells them,
    /// `sasl.oauthbearer.token.endpoint.url` (a `file://` JWT),
    /// `ssl.truststore.location` or `ssl.ca.location` (PEM),
    /// `ssl.keystore.location` or `ssl.certificate.location` with
    /// `ssl.key.location` (PEM), and `ssl.endpoint.identification.algorithm`.
    /// Other keys are ignored.
    pub fn from_properties(props: &BTreeMap<String, String>) -> Result<Self> {
        let get = |k: &str| props.get(k).map(|v| v.trim()).filter(|v| !v.is_empty());
        let protocol = match get("security.protocol") {
            None => Protocol::Plaintext,
            Some(p) => Protocol::parse(p).ok_or_else(|| {
                config_error(
                    "security.protocol",
                    format!("`{p}` is not PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL"),
                )
            })?,
        };
        let ca_file = get("ssl.truststore.location")
            .or_else(|| get("ssl.ca.location"))
            .map(PathBuf::from);
        let cert = get("ssl.keystore.location").or_else(|| get("ssl.certificate.location"));
        let client_cert = match (cert, get("ssl.key.location")) {
            (Some(c), Some(k)) => Some((PathBuf::from(c), PathBuf::from(k))),
            (None, None) => None,
            (Some(_), None) => {
                return Err(config_error(
                    "ssl.key.location",
                    "a client certificate needs its PEM key",
                ))
            }
            (None, Some(_)) => {
                return Err(config_error(
                    "ssl.keystore.location",
                    "a client key needs its PEM certificate",
                ))
            }
        };
        let verify_hostname = props
            .get("ssl.endpoint.identification.algorithm")
            .map(|v| v.trim().eq_ignore_ascii_case("https"))
            .unwrap_or(true);
        let tls = TlsSettings {
            ca_file,
            client_cert,
            verify_hostname,
        };
        let sasl = if protocol.uses_sasl() {
            Some(sasl_login(props)?)
        } else {
            None
        };
        Ok(Self {
            protocol,
            tls,
            sasl,
        })
    }

    /// The same settings in librdkafka's property names, for the clients
    /// built on it next to this one.
    pub fn librdkafka_properties(&self) -> Vec<(String, String)> {
        let mut out = vec![(
            "security.protocol".to_string(),
            self.protocol.name().to_ascii_lowercase(),
        )];
        let path = |p: &Path| p.display().to_string();
        if self.protocol.uses_tls() {
            if let Some(ca) = &self.tls.ca_file {
                out.push(("ssl.ca.location".into(), path(ca)));
            }
            if let Some((c, k)) = &self.tls.client_cert {
                out.push(("ssl.certificate.location".into(), path(c)));
                out.push(("ssl.key.location".into(), path(k)));
            }
            let verify = if self.tls.verify_hostname {
                "https"
            } else {
                "none"
            };
            out.push((
                "ssl.endpoint.identification.algorithm".into(),
                verify.into(),
            ));
        }
        match &self.sasl {
            Some(SaslLogin::Plain { username, password })
            | Some(SaslLogin::Scram {
                username, password, ..
            }) => {
                out.push(("sasl.username".into(), username.clone()));
                out.push(("sasl.password".into(), password.clone()));
            }
            Some(SaslLogin::OAuthBearer { .. }) | None => {}
        }
        if let Some(s) = &self.sasl {
            out.push(("sasl.mechanism".into(), s.mechanism().into()));
        }
        out
    }

    /// The rustls client configuration for this security's TLS settings.
    pub fn tls_config(&self) -> Result<Arc<rustls::ClientConfig>> {
        let ca: Option<PathBuf> = self.tls.ca_file.clone().or_else(|| {
            SYSTEM_CA_BUNDLES
                .iter()
                .map(PathBuf::from)
                .find(|p| p.exists())
        });
        let ca = ca.ok_or_else(|| {
            config_error(
                "ssl.truststore.location",
                "no CA bundle given and none found on the system",
            )
        })?;
        let roots = read_certs("ssl.truststore.location", &ca)?;
        let identity = match &self.tls.client_cert {
            Some((cert, key)) => {
                let chain = read_certs("ssl.keystore.location", cert)?;
                let key = PrivateKeyDer::from_pem_file(key).map_err(|e| {
                    config_error("ssl.key.location", format!("{}: {e}", key.display()))
                })?;
                Some((chain, key))
            }
            None => None,
        };
        // Kafka's `ssl.endpoint.identification.algorithm=` (empty) checks
        // the chain but not the name.
        let check = if self.tls.verify_hostname {
            ServerCheck::Full
        } else {
            ServerCheck::Chain
        };
        let config = client_config(check, roots, identity)
            .map_err(|e| config_error("ssl.truststore.location", e.to_string()))?;
        Ok(Arc::new(config))
    }
}

fn read_certs(key: &str, path: &Path) -> Result<Vec<CertificateDer<'static>>> {
    let certs: Vec<_> = CertificateDer::pem_file_iter(path)
        .and_then(|it| it.collect::<std::result::Result<Vec<_>, _>>())
        .map_err(|e| config_error(key, format!("{}: {e}", path.display())))?;
    if certs.is_empty() {
        return Err(config_error(
            key,
            format!("{} holds no PEM certificate", path.display()),
        ));
    }
    Ok(certs)
}

/// The SASL login from `sasl.mechanism` and the credentials' settings.
fn sasl_login(props: &BTreeMap<String, String>) -> Result<SaslLogin> {
    let get = |k: &str| props.get(k).map(|v| v.trim()).filter(|v| !v.is_empty());
    // Kafka's default mechanism is GSSAPI, which Weir does not speak; PLAIN
    // is what a SASL listener without Kerberos usually means.
    let mechanism = get("sasl.mechanism")
        .or_else(|| get("sasl.mechanisms"))
        .unwrap_or("PLAIN")
        .to_ascii_uppercase();
    if mechanism == "OAUTHBEARER" {
        let url = get("sasl.oauthbearer.token.endpoint.url").ok_or_else(|| {
            config_error(
                "sasl.oauthbearer.token.endpoint.url",
                "OAUTHBEARER needs a file:// URL of a file holding the JWT",
            )
        })?;
        let path = url.strip_prefix("file://").ok_or_else(|| {
            config_error(
                "sasl.oauthbearer.token.endpoint.url",
                format!("`{url}` is not a file:// URL"),
            )
        })?;
        return Ok(SaslLogin::OAuthBearer {
            token_file: PathBuf::from(path),
        });
    }
    let jaas = get("sasl.jaas.config")
        .map(jaas_options)
        .unwrap_or_default();
    let username = get("sasl.username")
        .map(str::to_string)
        .or_else(|| jaas.get("username").cloned());
    let password = get("sasl.password")
        .map(str::to_string)
        .or_else(|| jaas.get("password").cloned());
    let (Some(username), Some(password)) = (username, password) else {
        return Err(config_error(
            "sasl.jaas.config",
            format!("{mechanism} needs a username and a password"),
        ));
    };
    match mechanism.as_str() {
        "PLAIN" => Ok(SaslLogin::Plain { username, password }),
        "SCRAM-SHA-256" | "SCRAM-SHA-512" => Ok(SaslLogin::Scram {
            sha512: mechanism.ends_with("512"),
            username,
            password,
        }),
        other => Err(config_error(
            "sasl.mechanism",
            format!("`{other}` is not PLAIN, SCRAM-SHA-256, SCRAM-SHA-512 or OAUTHBEARER"),
        )),
    }
}

/// The `key="value"` options of a JAAS line such as
/// `org.apache.kafka.common.security.plain.PlainLoginModule required
/// username="alice" password="secret";`.
pub fn jaas_options(jaas: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut rest = jaas;
    while let Some(eq) = rest.find('=') {
        let key = rest[..eq]
            .rsplit(|c: char| c.is_whitespace())
            .next()
            .unwrap_or("")
            .to_string();
        let after = rest[eq + 1..].trim_start();
        let (value, tail) = if let Some(quoted) = after.strip_prefix('"') {
            // A quoted value runs to the next unescaped quote.
            let mut value = String::new();
            let mut chars = quoted.char_indices();
            let mut end = quoted.len();
            while let Some((i, c)) = chars.next() {
                match c {
                    '\\' => {
                        if let Some((_, n)) = chars.next() {
                            value.push(n);
                        }
                    }
                    '"' => {
                        end = i + 1;
                        break;
                    }
                    c => value.push(c),
                }
            }
            (value, &quoted[end.min(quoted.len())..])
        } else {
            let end = after
                .find(|c: char| c.is_whitespace() || c == ';')
                .unwrap_or(after.len());
            (after[..end].to_string(), &after[end..])
        };
        if !key.is_empty() {
            out.insert(key, value);
        }
        rest = tail;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn props(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn jaas_lines_give_their_options() {
        let o = jaas_options(
            r#"org.apache.kafka.common.security.scram.ScramLoginModule required username="alice" password="s3c\"ret";"#,
        );
        assert_eq!(o["username"], "alice");
        assert_eq!(o["password"], "s3c\"ret");
        let o = jaas_options("PlainLoginModule required username=bob password=pw;");
        assert_eq!(o["username"], "bob");
        assert_eq!(o["password"], "pw");
    }

    #[test]
    fn kafka_properties_configure_sasl() {
        let s = ClientSecurity::from_properties(&props(&[
            ("security.protocol", "SASL_PLAINTEXT"),
            ("sasl.mechanism", "SCRAM-SHA-512"),
            (
                "sasl.jaas.config",
                r#"org.apache.kafka.common.security.scram.ScramLoginModule required username="u" password="p";"#,
            ),
        ]))
        .unwrap();
        assert_eq!(s.protocol, Protocol::SaslPlaintext);
        assert_eq!(
            s.sasl,
            Some(SaslLogin::Scram {
                sha512: true,
                username: "u".into(),
                password: "p".into()
            })
        );
        let rd = s.librdkafka_properties();
        assert!(rd.contains(&("sasl.mechanism".into(), "SCRAM-SHA-512".into())));
        assert!(rd.contains(&("security.protocol".into(), "sasl_plaintext".into())));
        assert!(!format!("{s:?}").contains("\"p\""));
    }

    #[test]
    fn bad_settings_name_their_key() {
        let e =
            ClientSecurity::from_properties(&props(&[("security.protocol", "TLS")])).unwrap_err();
        assert!(e.to_string().contains("security.protocol"), "{e}");
        let e = ClientSecurity::from_properties(&props(&[("security.protocol", "SASL_SSL")]))
            .unwrap_err();
        assert!(e.to_string().contains("sasl.jaas.config"), "{e}");
        let e = ClientSecurity::from_properties(&props(&[
            ("security.protocol", "SASL_SSL"),
            ("sasl.mechanism", "GSSAPI"),
            ("sasl.username", "u"),
            ("sasl.password", "p"),
        ]))
        .unwrap_err();
        assert!(e.to_string().contains("GSSAPI"), "{e}");
    }
}
