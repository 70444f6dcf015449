//! `weir serve`'s security set-up: which listeners to bind with which
//! protocol, the TLS material they share, the SASL mechanisms the broker
//! offers, and the HTTP services' authentication.

use std::sync::{Arc, OnceLock};

use anyhow::{anyhow, bail};
use tracing::{info, warn};
use weir_auth::listener::{parse_listeners, parse_protocol_map};
use weir_auth::oauth::{Jwks, OAuthBearer, TokenRules};
use weir_auth::plain::{Plain, PlainCredentials};
use weir_auth::ssl_mapping::PrincipalMapper;
use weir_auth::{KafkaPrincipal, SecurityProtocol, Session};
use weir_broker::security::AuditEvent;
use weir_broker::Broker;
use weir_http::security::{AuthAudit, BoxFuture, PasswordVerifier, Refusal};
use weir_http::{HttpAuth, HttpError, HttpSecurity};
use weir_tls::{TlsSettings, TlsSource};

use crate::config::Settings;

/// One listener to bind.
#[derive(Debug, Clone)]
pub struct PlannedListener {
    pub name: String,
    pub protocol: SecurityProtocol,
    /// `host:port` to bind.
    pub bind: String,
    /// From `advertised.listeners`; `None` advertises the bound address.
    pub advertised: Option<(String, i32)>,
    /// The `--listen` listener (which `--advertised-listener` applies to).
    pub from_listen: bool,
}

/// The address a listener bound, as clients should dial it.
pub fn bound_address(bound: std::net::SocketAddr) -> (String, i32) {
    let host = if bound.ip().is_unspecified() {
        "localhost".to_string()
    } else {
        bound.ip().to_string()
    };
    (host, i32::from(bound.port()))
}

/// The listeners from `listeners` (or the single PLAINTEXT `--listen`),
/// with `advertised.listeners` applied. Errors name the config key.
pub fn plan_listeners(settings: &Settings) -> anyhow::Result<Vec<PlannedListener>> {
    let b = &settings.broker;
    let spec = b.get("listeners");
    if spec.trim().is_empty() {
        return Ok(vec![PlannedListener {
            name: "PLAINTEXT".into(),
            protocol: SecurityProtocol::Plaintext,
            bind: settings.listen.clone(),
            advertised: None,
            from_listen: true,
        }]);
    }
    let map = parse_protocol_map(&b.get("listener.security.protocol.map"))
        .map_err(|e| anyhow!("config `listener.security.protocol.map`: {e}"))?;
    let endpoints = parse_listeners(&spec, &map).map_err(|e| anyhow!("config `listeners`: {e}"))?;
    let adv_spec = b.get("advertised.listeners");
    let advertised = if adv_spec.trim().is_empty() {
        Vec::new()
    } else {
        parse_listeners(&adv_spec, &map)
            .map_err(|e| anyhow!("config `advertised.listeners`: {e}"))?
    };
    for a in &advertised {
        if !endpoints.iter().any(|e| e.name == a.name) {
            bail!(
                "config `advertised.listeners`: `{}` is not a name in `listeners`",
                a.name
            );
        }
        if a.host.is_empty() || a.port == 0 {
            bail!(
                "config `advertised.listeners`: `{}` needs a host and a non-zero port",
                a.name
            );
        }
    }
    Ok(endpoints
        .into_iter()
        .map(|e| {
            let host = if e.host.is_empty() {
                "0.0.0.0".to_string()
            } else if e.host.contains(':') {
                format!("[{}]", e.host)
            } else {
                e.host.clone()
            };
            PlannedListener {
                bind: format!("{host}:{}", e.port),
                advertised: advertised
                    .iter()
                    .find(|a| a.name == e.name)
                    .map(|a| (a.host.clone(), i32::from(a.port))),
                name: e.name,
                protocol: e.protocol,
                from_listen: false,
            }
        })
        .collect())
}

/// The TLS material, when a Kafka or HTTP listener needs it.
pub fn tls_source(settings: &Settings) -> anyhow::Result<Option<Arc<TlsSource>>> {
    let plan = plan_listeners(settings)?;
    if plan.iter().any(|l| l.protocol.uses_tls()) || settings.broker.get_bool("http.ssl.enabled") {
        let tls =
            TlsSettings::from_config(|k| Some(settings.broker.get(k))).and_then(TlsSource::load)?;
        return Ok(Some(Arc::new(tls)));
    }
    Ok(None)
}

/// `ssl.principal.mapping.rules`, for TLS listeners' client certificates.
pub fn principal_mapper(settings: &Settings) -> anyhow::Result<Arc<PrincipalMapper>> {
    let rules = settings.broker.get("ssl.principal.mapping.rules");
    Ok(Arc::new(
        PrincipalMapper::parse(&rules).map_err(|e| anyhow!("{e}"))?,
    ))
}

/// The open broker, once the log service has opened it; shared by the
/// services that sit on it and by HTTP authentication.
pub type BrokerSlot = Arc<OnceLock<Arc<Broker>>>;

/// HTTP basic authentication against the broker's users: the PLAIN
/// credentials file and the SCRAM users.
#[derive(Debug)]
struct BrokerUsers(BrokerSlot);

impl PasswordVerifier for BrokerUsers {
    fn verify<'a>(
        &'a self,
        user: &'a str,
        password: &'a str,
    ) -> BoxFuture<'a, Result<bool, HttpError>> {
        Box::pin(async move {
            let broker = self.0.get().ok_or(HttpError::Unavailable {
                what: "the broker is not open yet",
            })?;
            Ok(broker.security().verify_password(user, password))
        })
    }
}

/// Refused HTTP authentications go to the broker's audit trail.
#[derive(Debug)]
struct BrokerAudit(BrokerSlot);

impl AuthAudit for BrokerAudit {
    fn refused(&self, refusal: &Refusal<'_>) {
        let Some(broker) = self.0.get() else { return };
        let session = Session {
            principal: KafkaPrincipal::anonymous(),
            client_host: refusal.client.map(|a| a.ip()),
            listener: "HTTP".into(),
            protocol: SecurityProtocol::Plaintext,
        };
        let mut e = AuditEvent::new("authentication", &session, "failure");
        e.operation = "HTTP".into();
        e.resource = refusal.path.to_string();
        e.detail = refusal.reason.to_string();
        broker.security().audit(e);
    }
}

/// The HTTP services' security: `http.ssl.enabled` (with the Kafka
/// listeners' certificate) and `http.authentication` (basic against the
/// broker's users in `broker`, bearer like OAUTHBEARER).
pub fn http_security(
    settings: &Settings,
    tls: Option<Arc<TlsSource>>,
    broker: &BrokerSlot,
) -> anyhow::Result<HttpSecurity> {
    let methods = settings.broker.get("http.authentication");
    let has = |m: &str| methods.split(',').any(|x| x.trim() == m);
    let bearer = if has("bearer") {
        let url = settings.broker.get("sasl.oauthbearer.jwks.endpoint.url");
        if url.trim().is_empty() {
            bail!(
                "config `http.authentication`: bearer needs `sasl.oauthbearer.jwks.endpoint.url`"
            );
        }
        let jwks = Jwks::open(url.trim()).map_err(|e| anyhow!("{e}"))?;
        Some((jwks, token_rules(settings)))
    } else {
        None
    };
    let basic: Option<Arc<dyn PasswordVerifier>> =
        has("basic").then(|| Arc::new(BrokerUsers(broker.clone())) as _);
    Ok(HttpSecurity {
        tls: tls.filter(|_| settings.broker.get_bool("http.ssl.enabled")),
        auth: Arc::new(HttpAuth {
            basic,
            bearer,
            audit: Some(Arc::new(BrokerAudit(broker.clone()))),
        }),
    })
}

/// Checks everything that can be checked before the log is opened.
pub fn check(settings: &Settings) -> anyhow::Result<()> {
    let tls = tls_source(settings)?;
    if tls.is_some() {
        principal_mapper(settings)?;
    }
    mechanisms(settings)?;
    http_security(settings, tls, &BrokerSlot::default())?;
    Ok(())
}

/// Whether `name` is enabled by `sasl.enabled.mechanisms` (empty enables
/// every mechanism that is configured).
fn enabled(settings: &Settings, name: &str) -> bool {
    let v = settings.broker.get("sasl.enabled.mechanisms");
    v.trim().is_empty() || v.split(',').any(|m| m.trim().eq_ignore_ascii_case(name))
}

/// What OAUTHBEARER tokens (and HTTP bearer tokens) must satisfy.
pub fn token_rules(settings: &Settings) -> TokenRules {
    let b = &settings.broker;
    let issuer = b.get("sasl.oauthbearer.expected.issuer");
    TokenRules {
        issuer: (!issuer.trim().is_empty()).then(|| issuer.trim().to_string()),
        audience: b
            .get("sasl.oauthbearer.expected.audience")
            .split(',')
            .map(str::trim)
            .filter(|a| !a.is_empty())
            .map(str::to_string)
            .collect(),
        subject_claim: b.get("sasl.oauthbearer.sub.claim.name").trim().to_string(),
    }
}

type Mechanisms = Vec<Arc<dyn weir_auth::sasl::Mechanism>>;

/// The mechanisms this module configures, and the PLAIN users.
fn mechanisms(settings: &Settings) -> anyhow::Result<(Mechanisms, Option<PlainCredentials>)> {
    let b = &settings.broker;
    let mut out: Mechanisms = Vec::new();
    let file = b.get("sasl.plain.credentials.file");
    let explicit = !b.get("sasl.enabled.mechanisms").trim().is_empty();
    let mut plain_users = None;
    if !file.trim().is_empty() {
        let creds = PlainCredentials::open(file.trim()).map_err(|e| anyhow!("{e}"))?;
        if enabled(settings, "PLAIN") {
            out.push(Arc::new(Plain::new(creds.clone())));
        }
        plain_users = Some(creds);
    } else if explicit && enabled(settings, "PLAIN") {
        bail!("config `sasl.enabled.mechanisms`: PLAIN needs `sasl.plain.credentials.file`");
    }
    let jwks = b.get("sasl.oauthbearer.jwks.endpoint.url");
    if !jwks.trim().is_empty() {
        let jwks = Jwks::open(jwks.trim()).map_err(|e| anyhow!("{e}"))?;
        if enabled(settings, "OAUTHBEARER") {
            out.push(Arc::new(OAuthBearer::new(jwks, token_rules(settings))));
        }
    } else if explicit && enabled(settings, "OAUTHBEARER") {
        bail!("config `sasl.enabled.mechanisms`: OAUTHBEARER needs `sasl.oauthbearer.jwks.endpoint.url`");
    }
    Ok((out, plain_users))
}

/// Registers the SASL mechanisms with the broker; `sasl_listeners` says
/// whether any listener will use them.
pub fn configure(broker: &Broker, settings: &Settings, sasl_listeners: bool) -> anyhow::Result<()> {
    let (mechs, plain) = mechanisms(settings)?;
    broker.security().set_plain_credentials(plain);
    for m in mechs {
        broker.security().register_mechanism(m);
    }
    // The broker offers both SCRAM mechanisms from the start (their users
    // live in the log); an explicit list can leave them out.
    for scram in ["SCRAM-SHA-256", "SCRAM-SHA-512"] {
        if !enabled(settings, scram) {
            broker.security().unregister_mechanism(scram);
        }
    }
    let names = broker.security().sasl_mechanisms();
    if sasl_listeners {
        if names.is_empty() {
            warn!("a SASL listener is configured but no SASL mechanism is enabled: no client can authenticate");
        } else {
            info!(mechanisms = %names.join(","), "SASL mechanisms enabled");
        }
    }
    Ok(())
}
