//! `weir serve`'s security set-up: which listeners to bind with which
//! protocol, the TLS material they share, and the SASL mechanisms the
//! broker offers.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{anyhow, bail};
use tracing::{info, warn};
use weir_auth::listener::{parse_listeners, parse_protocol_map};
use weir_auth::oauth::{Jwks, OAuthBearer, TokenRules};
use weir_auth::plain::{Plain, PlainCredentials};
use weir_auth::SecurityProtocol;
use weir_broker::Broker;
use weir_server::tls::{ClientAuth, TlsSettings, TlsSource};

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

/// The TLS settings from the broker configs.
pub fn tls_settings(settings: &Settings) -> anyhow::Result<TlsSettings> {
    let b = &settings.broker;
    let path = |k: &str| {
        let v = b.get(k);
        (!v.trim().is_empty()).then(|| PathBuf::from(v.trim()))
    };
    let certificate = path("ssl.certificate.location").ok_or_else(|| {
        anyhow!("config `ssl.certificate.location`: a TLS listener needs a PEM certificate")
    })?;
    let key = path("ssl.key.location").ok_or_else(|| {
        anyhow!("config `ssl.key.location`: a TLS listener needs a PEM private key")
    })?;
    let client_auth = ClientAuth::parse(&b.get("ssl.client.auth"))
        .ok_or_else(|| anyhow!("config `ssl.client.auth`: expected none, requested or required"))?;
    Ok(TlsSettings {
        certificate,
        key,
        truststore: path("ssl.truststore.location"),
        client_auth,
        mapping_rules: b.get("ssl.principal.mapping.rules"),
    })
}

/// The TLS material, when a Kafka or HTTP listener needs it.
pub fn tls_source(settings: &Settings) -> anyhow::Result<Option<Arc<TlsSource>>> {
    let plan = plan_listeners(settings)?;
    if plan.iter().any(|l| l.protocol.uses_tls()) || settings.broker.get_bool("http.ssl.enabled") {
        let tls = TlsSource::load(tls_settings(settings)?).map_err(|e| anyhow!("{e}"))?;
        return Ok(Some(Arc::new(tls)));
    }
    Ok(None)
}

/// The HTTP listeners' authentication (`http.authentication`).
pub fn http_auth(settings: &Settings) -> anyhow::Result<weir_http::security::HttpAuth> {
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
    Ok(weir_http::security::HttpAuth {
        basic: has("basic"),
        bearer,
        broker: Default::default(),
    })
}

/// Checks everything that can be checked before the log is opened.
pub fn check(settings: &Settings) -> anyhow::Result<()> {
    tls_source(settings)?;
    mechanisms(settings)?;
    http_auth(settings)?;
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

/// Attaches TLS to the listeners that need it and registers the SASL
/// mechanisms with the broker.
pub fn configure(
    broker: &Arc<Broker>,
    settings: &Settings,
    listeners: &mut [weir_server::Listener],
    tls: Option<Arc<TlsSource>>,
) -> anyhow::Result<()> {
    if listeners.iter().any(|l| l.protocol.uses_tls()) {
        let tls = tls.ok_or_else(|| anyhow!("TLS listener without TLS material"))?;
        for l in listeners.iter_mut().filter(|l| l.protocol.uses_tls()) {
            l.tls = Some(tls.clone());
        }
    }
    let (mechs, plain) = mechanisms(settings)?;
    broker.set_plain_credentials(plain);
    for m in mechs {
        broker.register_mechanism(m);
    }
    // The broker offers both SCRAM mechanisms from the start (their users
    // live in the log); an explicit list can leave them out.
    for scram in ["SCRAM-SHA-256", "SCRAM-SHA-512"] {
        if !enabled(settings, scram) {
            broker.unregister_mechanism(scram);
        }
    }
    let names = broker.sasl_mechanisms();
    if listeners.iter().any(|l| l.protocol.uses_sasl()) {
        if names.is_empty() {
            warn!("a SASL listener is configured but no SASL mechanism is enabled: no client can authenticate");
        } else {
            info!(mechanisms = %names.join(","), "SASL mechanisms enabled");
        }
    }
    Ok(())
}
