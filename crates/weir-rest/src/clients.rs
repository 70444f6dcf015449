//! The Kafka clients the proxy acts through, one set per identity.
//!
//! Without principal propagation every request uses the proxy's own
//! client settings. With it, the HTTP user's credentials become the
//! clients' SASL login (basic credentials as PLAIN or SCRAM username and
//! password, a bearer token as the OAUTHBEARER token), so the brokers
//! apply that user's ACLs and quotas. Client sets are cached per
//! identity, at most `max_identities` of them, the least recently used
//! closed first.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::{header, HeaderMap};
use base64::Engine as _;
use rdkafka::config::ClientConfig as RdConfig;
use rdkafka::producer::FutureProducer;
use weir_client::{Admin, ClientSecurity};

use crate::error::{RestError, Result};

/// How the proxy reaches Kafka.
#[derive(Debug, Clone)]
pub struct KafkaSettings {
    /// `bootstrap.servers`.
    pub bootstrap: String,
    /// librdkafka properties every client gets, by Kafka's names
    /// (`security.protocol`, `sasl.mechanism`, `ssl.ca.location`, ...).
    pub client: BTreeMap<String, String>,
    /// Extra properties for producers.
    pub producer: BTreeMap<String, String>,
    /// Extra properties for consumers.
    pub consumer: BTreeMap<String, String>,
    /// How long an admin request may take.
    pub request_timeout: Duration,
}

impl KafkaSettings {
    /// Plaintext access to `bootstrap` with default settings.
    pub fn new(bootstrap: impl Into<String>) -> Self {
        Self {
            bootstrap: bootstrap.into(),
            client: BTreeMap::new(),
            producer: BTreeMap::new(),
            consumer: BTreeMap::new(),
            request_timeout: Duration::from_secs(30),
        }
    }

    /// The SASL mechanism the clients log in with, if any.
    pub fn sasl_mechanism(&self) -> Option<&str> {
        self.client.get("sasl.mechanism").map(String::as_str)
    }
}

/// Who the proxy acts as for one request.
#[derive(Clone, PartialEq, Eq, Hash)]
pub enum Identity {
    /// The proxy's own client settings.
    Service,
    /// HTTP basic credentials, used as the SASL username and password.
    Password { user: String, password: String },
    /// A bearer token, used as the OAUTHBEARER token.
    Token(String),
}

impl std::fmt::Debug for Identity {
    // Never print a password or token.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Identity::Service => f.write_str("Service"),
            Identity::Password { user, .. } => write!(f, "Password({user})"),
            Identity::Token(_) => f.write_str("Token"),
        }
    }
}

impl Identity {
    /// The identity of a request: with propagation, its `Authorization`
    /// header (required); without, the service's.
    pub fn from_headers(headers: &HeaderMap, propagate: bool) -> Result<Self> {
        if !propagate {
            return Ok(Identity::Service);
        }
        let unauthenticated = |m: &str| RestError::Unauthenticated {
            message: format!("Authentication failed: {m}"),
        };
        let value = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| unauthenticated("no credentials"))?;
        let (scheme, rest) = value
            .split_once(' ')
            .ok_or_else(|| unauthenticated("malformed Authorization header"))?;
        if scheme.eq_ignore_ascii_case("basic") {
            let text = base64::engine::general_purpose::STANDARD
                .decode(rest.trim())
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .ok_or_else(|| unauthenticated("malformed basic credentials"))?;
            let (user, password) = text
                .split_once(':')
                .ok_or_else(|| unauthenticated("malformed basic credentials"))?;
            return Ok(Identity::Password {
                user: user.to_string(),
                password: password.to_string(),
            });
        }
        if scheme.eq_ignore_ascii_case("bearer") {
            return Ok(Identity::Token(rest.trim().to_string()));
        }
        Err(unauthenticated("unsupported authentication scheme"))
    }

    /// Client properties (librdkafka's names, which `weir-client` reads
    /// too) that log in as this identity.
    fn login_properties(&self, settings: &KafkaSettings) -> Result<Vec<(String, String)>> {
        match self {
            Identity::Service => Ok(Vec::new()),
            Identity::Password { user, password } => match settings.sasl_mechanism() {
                Some("PLAIN" | "SCRAM-SHA-256" | "SCRAM-SHA-512") => Ok(vec![
                    ("sasl.username".into(), user.clone()),
                    ("sasl.password".into(), password.clone()),
                ]),
                _ => Err(RestError::Unauthenticated {
                    message: "Authentication failed: basic credentials need the proxy's Kafka clients to log in with PLAIN or SCRAM".into(),
                }),
            },
            Identity::Token(_) => Err(RestError::Unauthenticated {
                message: "Authentication failed: bearer tokens are not propagated to Kafka".into(),
            }),
        }
    }
}

/// Idle admin sessions kept per identity.
const MAX_IDLE_ADMINS: usize = 8;
/// An idle admin session older than this is not reused (brokers close
/// idle connections after `connections.max.idle.ms`).
const ADMIN_MAX_IDLE: Duration = Duration::from_secs(60);
/// How long a topic's partition count is trusted by the produce path.
const TOPIC_CACHE_TTL: Duration = Duration::from_secs(10);

/// The clients of one identity.
pub struct ClientSet {
    identity: Identity,
    settings: Arc<KafkaSettings>,
    admins: Mutex<Vec<(Instant, Admin)>>,
    producer: tokio::sync::OnceCell<FutureProducer>,
    topics: Mutex<HashMap<String, (Instant, i32)>>,
}

impl std::fmt::Debug for ClientSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientSet")
            .field("identity", &self.identity)
            .finish_non_exhaustive()
    }
}

impl ClientSet {
    /// Runs `f` with an admin session (pooled), discarding the session if
    /// its connection failed.
    pub async fn admin<T>(
        &self,
        f: impl AsyncFnOnce(&mut Admin) -> weir_client::Result<T>,
    ) -> Result<T> {
        let pooled = {
            let mut idle = self.admins.lock().unwrap_or_else(|e| e.into_inner());
            let mut found = None;
            while let Some((since, a)) = idle.pop() {
                if since.elapsed() < ADMIN_MAX_IDLE {
                    found = Some(a);
                    break;
                }
            }
            found
        };
        let mut admin = match pooled {
            Some(a) => a,
            None => self.connect_admin().await?,
        };
        let result = f(&mut admin).await;
        let broken = matches!(
            result,
            Err(weir_client::ClientError::Io { .. }
                | weir_client::ClientError::Timeout { .. }
                | weir_client::ClientError::Protocol { .. })
        );
        if !broken {
            let mut idle = self.admins.lock().unwrap_or_else(|e| e.into_inner());
            if idle.len() < MAX_IDLE_ADMINS {
                idle.push((Instant::now(), admin));
            }
        }
        Ok(result?)
    }

    async fn connect_admin(&self) -> Result<Admin> {
        let mut props = self.settings.client.clone();
        props.extend(self.identity.login_properties(&self.settings)?);
        let security = ClientSecurity::from_properties(&props)
            .map_err(|e| RestError::Internal(format!("the proxy's Kafka client settings: {e}")))?;
        let config = weir_client::ClientConfig {
            timeout: self.settings.request_timeout,
            client_id: "weir-rest".into(),
            security,
        };
        Ok(Admin::connect_with(&self.settings.bootstrap, config).await?)
    }

    /// The settings the clients start from.
    pub fn settings(&self) -> &KafkaSettings {
        &self.settings
    }

    /// librdkafka settings for a client of this identity.
    pub fn rdkafka_config(&self, extra: &BTreeMap<String, String>) -> Result<RdConfig> {
        let mut c = RdConfig::new();
        c.set("bootstrap.servers", &self.settings.bootstrap);
        for (k, v) in &self.settings.client {
            c.set(k, v);
        }
        for (k, v) in extra {
            c.set(k, v);
        }
        for (k, v) in self.identity.login_properties(&self.settings)? {
            c.set(k, v);
        }
        Ok(c)
    }

    /// The identity's producer, created on first use.
    pub async fn producer(&self) -> Result<&FutureProducer> {
        self.producer
            .get_or_try_init(|| async {
                let mut c = self.rdkafka_config(&self.settings.producer)?;
                for (k, v) in crate::produce::PRODUCER_DEFAULTS {
                    if !self.settings.producer.contains_key(*k)
                        && !self.settings.client.contains_key(*k)
                    {
                        c.set(*k, *v);
                    }
                }
                c.create::<FutureProducer>().map_err(RestError::from)
            })
            .await
    }

    /// The partition count of `topic` as this identity's producer sees it
    /// (cached briefly), or the error Metadata gave. Asking through the
    /// producer lets a broker with `auto.create.topics.enable` create the
    /// topic, as a produce from any Kafka client would.
    pub async fn partition_count(&self, topic: &str) -> Result<i32> {
        if let Some((at, n)) = self
            .topics
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(topic)
        {
            if at.elapsed() < TOPIC_CACHE_TTL {
                return Ok(*n);
            }
        }
        let producer = self.producer().await?.clone();
        let name = topic.to_string();
        let timeout = self.settings.request_timeout;
        let n = tokio::task::spawn_blocking(move || -> Result<i32> {
            use rdkafka::producer::Producer;
            let md = producer.client().fetch_metadata(Some(&name), timeout)?;
            let t = md
                .topics()
                .iter()
                .find(|t| t.name() == name)
                .ok_or_else(RestError::unknown_topic_or_partition)?;
            if let Some(e) = t.error() {
                return Err(RestError::from_kafka_code(
                    e as i16,
                    &format!("topic `{name}`"),
                ));
            }
            if t.partitions().is_empty() {
                return Err(RestError::unknown_topic_or_partition());
            }
            Ok(t.partitions().len() as i32)
        })
        .await
        .map_err(|e| RestError::Internal(e.to_string()))??;
        self.topics
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(topic.to_string(), (Instant::now(), n));
        Ok(n)
    }
}

/// The client sets of every identity in use.
#[derive(Debug)]
pub struct Clients {
    settings: Arc<KafkaSettings>,
    max_identities: usize,
    sets: Mutex<HashMap<Identity, (Instant, Arc<ClientSet>)>>,
}

impl Clients {
    /// Clients for `settings`, caching at most `max_identities` sets.
    pub fn new(settings: KafkaSettings, max_identities: usize) -> Self {
        Self {
            settings: Arc::new(settings),
            max_identities: max_identities.max(1),
            sets: Mutex::new(HashMap::new()),
        }
    }

    /// The settings every client starts from.
    pub fn settings(&self) -> &KafkaSettings {
        &self.settings
    }

    /// The clients of `identity`.
    pub fn get(&self, identity: &Identity) -> Arc<ClientSet> {
        let mut sets = self.sets.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((used, set)) = sets.get_mut(identity) {
            *used = Instant::now();
            return set.clone();
        }
        if sets.len() >= self.max_identities {
            let oldest = sets
                .iter()
                .min_by_key(|(_, (used, _))| *used)
                .map(|(k, _)| k.clone());
            if let Some(k) = oldest {
                // Dropped off the runtime's workers: closing librdkafka
                // clients blocks.
                if let Some((_, set)) = sets.remove(&k) {
                    std::thread::spawn(move || drop(set));
                }
            }
        }
        let set = Arc::new(ClientSet {
            identity: identity.clone(),
            settings: self.settings.clone(),
            admins: Mutex::new(Vec::new()),
            producer: tokio::sync::OnceCell::new(),
            topics: Mutex::new(HashMap::new()),
        });
        sets.insert(identity.clone(), (Instant::now(), set.clone()));
        set
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(auth: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::AUTHORIZATION, auth.parse().unwrap());
        h
    }

    #[test]
    fn identities_come_from_the_authorization_header_only_when_propagating() {
        let h = headers("Basic YWxpY2U6c2VjcmV0"); // alice:secret
        assert_eq!(
            Identity::from_headers(&h, false).unwrap(),
            Identity::Service
        );
        assert_eq!(
            Identity::from_headers(&h, true).unwrap(),
            Identity::Password {
                user: "alice".into(),
                password: "secret".into()
            }
        );
        assert!(Identity::from_headers(&HeaderMap::new(), true).is_err());
        assert!(Identity::from_headers(&headers("Basic !!"), true).is_err());
        assert_eq!(
            Identity::from_headers(&headers("Bearer abc"), true).unwrap(),
            Identity::Token("abc".into())
        );
    }

    #[test]
    fn passwords_never_print() {
        let i = Identity::Password {
            user: "alice".into(),
            password: "secret".into(),
        };
        assert_eq!(format!("{i:?}"), "Password(alice)");
    }

    #[test]
    fn the_least_recently_used_set_goes_first() {
        let clients = Clients::new(KafkaSettings::new("127.0.0.1:1"), 2);
        let id = |u: &str| Identity::Password {
            user: u.into(),
            password: String::new(),
        };
        let a = clients.get(&id("a"));
        clients.get(&id("b"));
        assert!(Arc::ptr_eq(&a, &clients.get(&id("a"))));
        clients.get(&id("c")); // evicts b
        let sets = clients.sets.lock().unwrap();
        assert!(sets.contains_key(&id("a")) && sets.contains_key(&id("c")));
        assert!(!sets.contains_key(&id("b")));
    }
}
