//! An async client for Confluent Schema Registry's REST API (Weir's own
//! registry, Confluent's, or any compatible one), caching as Confluent's
//! `CachedSchemaRegistryClient` does: schemas by id, ids by subject and
//! schema, and numbered versions never change once seen, so each is asked
//! once; the latest version of a subject is cached for
//! `latest.cache.ttl.sec` (forever by default, as Confluent's).

use std::collections::{HashMap, HashSet};
use std::hash::Hash;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::Deserialize;
use serde_json::{json, Value};

use crate::schema::{RegisteredSchema, ResolvedReference, Schema};
use crate::FormatError;

/// How deep references may nest (bounds resolution of a hostile registry).
const MAX_REFERENCE_DEPTH: usize = 32;

/// How the client authenticates.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Auth {
    /// No credentials.
    #[default]
    None,
    /// HTTP basic authentication.
    Basic {
        /// User name.
        user: String,
        /// Password.
        password: String,
    },
    /// A static bearer token.
    Bearer(String),
}

/// Where the registry is and how to reach it.
#[derive(Debug, Clone)]
pub struct RegistryConfig {
    /// Base URLs, tried in order when one cannot be reached.
    pub urls: Vec<String>,
    /// Credentials.
    pub auth: Auth,
    /// Extra trusted CAs (PEM), for https with a private CA.
    pub ca_pem: Option<Vec<u8>>,
    /// Per-request timeout.
    pub timeout: Duration,
    /// Entries each cache holds before it is emptied and refilled.
    pub cache_capacity: usize,
    /// How long the latest version of a subject is reused (None: until
    /// this client registers under it).
    pub latest_ttl: Option<Duration>,
}

impl RegistryConfig {
    /// One URL, no credentials, defaults for the rest.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            urls: vec![url.into()],
            auth: Auth::None,
            ca_pem: None,
            timeout: Duration::from_secs(30),
            cache_capacity: 1000,
            latest_ttl: None,
        }
    }

    /// From properties with Confluent's names (the `schema.registry.`
    /// prefix is optional on all but the URL): `schema.registry.url`
    /// (comma-separated), `basic.auth.credentials.source` (`USER_INFO`,
    /// `URL`), `basic.auth.user.info` (`user:password`),
    /// `bearer.auth.credentials.source` (`STATIC_TOKEN`), `bearer.auth.token`,
    /// `ssl.ca.location` (a PEM file), `request.timeout.ms`,
    /// `max.schemas.per.subject` (cache capacity), `latest.cache.ttl.sec`.
    pub fn from_properties(props: &HashMap<String, String>) -> Result<Self, FormatError> {
        let get = |k: &str| {
            props
                .get(&format!("schema.registry.{k}"))
                .or_else(|| props.get(k))
                .map(String::as_str)
        };
        let url_key = "schema.registry.url";
        let raw_urls = get("url").ok_or_else(|| FormatError::config(url_key, "missing"))?;
        let mut urls = Vec::new();
        let mut url_user_info = None;
        for u in raw_urls.split(',').map(str::trim).filter(|u| !u.is_empty()) {
            let (clean, info) = strip_user_info(u);
            if info.is_some() {
                url_user_info = info;
            }
            urls.push(clean);
        }
        if urls.is_empty() {
            return Err(FormatError::config(url_key, "no URL"));
        }
        let mut c = Self::new(String::new());
        c.urls = urls;
        let user_info = match get("basic.auth.credentials.source") {
            None if get("basic.auth.user.info").is_some() => get("basic.auth.user.info"),
            None => None,
            Some(s) if s.eq_ignore_ascii_case("USER_INFO") => Some(
                get("basic.auth.user.info")
                    .ok_or_else(|| FormatError::config("basic.auth.user.info", "missing"))?,
            ),
            Some(s) if s.eq_ignore_ascii_case("URL") => url_user_info.as_deref(),
            Some(s) => {
                return Err(FormatError::config(
                    "basic.auth.credentials.source",
                    format!("{s} is not USER_INFO or URL"),
                ))
            }
        };
        if let Some(info) = user_info {
            let (user, password) = info.split_once(':').ok_or_else(|| {
                FormatError::config("basic.auth.user.info", "expected user:password")
            })?;
            c.auth = Auth::Basic {
                user: user.to_string(),
                password: password.to_string(),
            };
        }
        match get("bearer.auth.credentials.source") {
            None => {}
            Some(s) if s.eq_ignore_ascii_case("STATIC_TOKEN") => {
                let token = get("bearer.auth.token")
                    .ok_or_else(|| FormatError::config("bearer.auth.token", "missing"))?;
                c.auth = Auth::Bearer(token.to_string());
            }
            Some(s) => {
                return Err(FormatError::config(
                    "bearer.auth.credentials.source",
                    format!("{s} is not supported (only STATIC_TOKEN)"),
                ))
            }
        }
        if let Some(path) = get("ssl.ca.location") {
            c.ca_pem =
                Some(std::fs::read(path).map_err(|e| FormatError::config("ssl.ca.location", e))?);
        }
        let number = |k: &str| -> Result<Option<i64>, FormatError> {
            get(k)
                .map(|v| {
                    v.trim()
                        .parse::<i64>()
                        .map_err(|e| FormatError::config(k, e))
                })
                .transpose()
        };
        if let Some(ms) = number("request.timeout.ms")? {
            c.timeout = Duration::from_millis(u64::try_from(ms.max(1)).unwrap_or(1));
        }
        if let Some(n) = number("max.schemas.per.subject")? {
            c.cache_capacity = usize::try_from(n.max(1)).unwrap_or(1);
        }
        if let Some(s) = number("latest.cache.ttl.sec")? {
            c.latest_ttl = u64::try_from(s).ok().map(Duration::from_secs);
        }
        Ok(c)
    }
}

/// `https://user:pass@host` → (`https://host`, `user:pass`).
fn strip_user_info(url: &str) -> (String, Option<String>) {
    if let Some((scheme, rest)) = url.split_once("://") {
        let authority_end = rest.find('/').unwrap_or(rest.len());
        if let Some(at) = rest[..authority_end].rfind('@') {
            return (
                format!("{scheme}://{}", &rest[at + 1..]),
                Some(rest[..at].to_string()),
            );
        }
    }
    (url.to_string(), None)
}

/// The answer of a compatibility check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Compatibility {
    /// Whether the schema is compatible.
    pub is_compatible: bool,
    /// The registry's reasons when it is not.
    pub messages: Vec<String>,
}

/// A bounded map: emptied when full, as the cached values can always be
/// asked for again.
#[derive(Debug)]
struct Cache<K, V> {
    map: HashMap<K, V>,
    capacity: usize,
}

impl<K: Hash + Eq, V: Clone> Cache<K, V> {
    fn new(capacity: usize) -> Self {
        Self {
            map: HashMap::new(),
            capacity,
        }
    }

    fn get(&self, k: &K) -> Option<V> {
        self.map.get(k).cloned()
    }

    fn put(&mut self, k: K, v: V) {
        if self.map.len() >= self.capacity {
            self.map.clear();
        }
        self.map.insert(k, v);
    }
}

#[derive(Debug)]
struct Caches {
    by_id: Cache<i32, Schema>,
    ids: Cache<(String, Schema, bool), i32>,
    lookups: Cache<(String, Schema, bool), RegisteredSchema>,
    versions: Cache<(String, i32), RegisteredSchema>,
    latest: Cache<String, (RegisteredSchema, Instant)>,
}

/// A schema registry client. Cheap to share behind an `Arc`; every call
/// may run concurrently.
#[derive(Debug)]
pub struct SchemaRegistryClient {
    http: reqwest::Client,
    config: RegistryConfig,
    caches: Mutex<Caches>,
}

#[derive(Deserialize)]
struct VersionBody {
    subject: String,
    version: i32,
    id: i32,
    #[serde(flatten)]
    schema: Schema,
}

impl From<VersionBody> for RegisteredSchema {
    fn from(b: VersionBody) -> Self {
        Self {
            subject: b.subject,
            version: b.version,
            id: b.id,
            schema: b.schema,
        }
    }
}

/// An error with its causes (reqwest keeps the TLS or connection reason
/// in the source chain).
fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        out.push_str(": ");
        out.push_str(&c.to_string());
        cur = c.source();
    }
    out
}

/// Percent-encodes a path segment (subjects may hold any character).
fn segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

impl SchemaRegistryClient {
    /// A client for `config`; fails on an unusable CA bundle.
    pub fn new(config: RegistryConfig) -> Result<Self, FormatError> {
        let mut b = reqwest::Client::builder()
            .use_rustls_tls()
            .timeout(config.timeout);
        if let Some(pem) = &config.ca_pem {
            let certs = reqwest::Certificate::from_pem_bundle(pem)
                .map_err(|e| FormatError::config("ssl.ca.location", e))?;
            if certs.is_empty() {
                return Err(FormatError::config(
                    "ssl.ca.location",
                    "no certificate in the PEM file",
                ));
            }
            for c in certs {
                b = b.add_root_certificate(c);
            }
        }
        let http = b
            .build()
            .map_err(|e| FormatError::config("schema.registry.url", e))?;
        let n = config.cache_capacity.max(1);
        Ok(Self {
            http,
            caches: Mutex::new(Caches {
                by_id: Cache::new(n),
                ids: Cache::new(n),
                lookups: Cache::new(n),
                versions: Cache::new(n),
                latest: Cache::new(n),
            }),
            config,
        })
    }

    fn caches(&self) -> std::sync::MutexGuard<'_, Caches> {
        self.caches
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Sends one request, trying each URL in turn while they cannot be
    /// reached; the body of a 2xx answer, or the registry's error.
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value, FormatError> {
        let mut last = None;
        for base in &self.config.urls {
            let url = format!("{}{path}", base.trim_end_matches('/'));
            let mut req = self
                .http
                .request(method.clone(), &url)
                .header("Accept", "application/vnd.schemaregistry.v1+json");
            req = match &self.config.auth {
                Auth::None => req,
                Auth::Basic { user, password } => req.basic_auth(user, Some(password)),
                Auth::Bearer(t) => req.bearer_auth(t),
            };
            if let Some(b) = body {
                req = req
                    .header("Content-Type", "application/vnd.schemaregistry.v1+json")
                    .body(b.to_string());
            }
            let resp = match req.send().await {
                Ok(r) => r,
                Err(e) => {
                    last = Some(FormatError::Transport {
                        url,
                        reason: chain(&e),
                    });
                    continue;
                }
            };
            let status = resp.status();
            let text = resp.text().await.map_err(|e| FormatError::Transport {
                url: url.clone(),
                reason: chain(&e),
            })?;
            let parsed: Option<Value> = serde_json::from_str(&text).ok();
            if status.is_success() {
                return parsed.ok_or_else(|| FormatError::Transport {
                    url,
                    reason: format!("the answer is not JSON: {text:.200}"),
                });
            }
            let (code, message) = match &parsed {
                Some(v) => (
                    v.get("error_code")
                        .and_then(Value::as_i64)
                        .unwrap_or(i64::from(status.as_u16())),
                    v.get("message")
                        .and_then(Value::as_str)
                        .unwrap_or(&text)
                        .to_string(),
                ),
                None => (i64::from(status.as_u16()), text),
            };
            return Err(FormatError::Registry {
                status: status.as_u16(),
                code,
                message,
            });
        }
        Err(last.unwrap_or_else(|| FormatError::config("schema.registry.url", "no URL")))
    }

    fn decode<T: for<'de> Deserialize<'de>>(path: &str, v: Value) -> Result<T, FormatError> {
        serde_json::from_value(v).map_err(|e| FormatError::Transport {
            url: path.to_string(),
            reason: format!("unexpected answer: {e}"),
        })
    }

    /// The schema with this id (`GET /schemas/ids/{id}`).
    pub async fn schema_by_id(&self, id: i32) -> Result<Schema, FormatError> {
        if let Some(s) = self.caches().by_id.get(&id) {
            return Ok(s);
        }
        let path = format!("/schemas/ids/{id}");
        let v = match self.call(reqwest::Method::GET, &path, None).await {
            Err(FormatError::Registry { code: 40403, .. }) => {
                return Err(FormatError::UnknownSchemaId { id })
            }
            other => other?,
        };
        let s: Schema = Self::decode(&path, v)?;
        self.caches().by_id.put(id, s.clone());
        Ok(s)
    }

    /// A numbered version of a subject.
    pub async fn version(
        &self,
        subject: &str,
        version: i32,
    ) -> Result<RegisteredSchema, FormatError> {
        if version < 0 {
            return self.latest(subject).await;
        }
        let key = (subject.to_string(), version);
        if let Some(r) = self.caches().versions.get(&key) {
            return Ok(r);
        }
        let path = format!("/subjects/{}/versions/{version}", segment(subject));
        let v = self.call(reqwest::Method::GET, &path, None).await?;
        let r: RegisteredSchema = Self::decode::<VersionBody>(&path, v)?.into();
        let mut c = self.caches();
        c.versions.put(key, r.clone());
        c.by_id.put(r.id, r.schema.clone());
        Ok(r)
    }

    /// The latest version of a subject.
    pub async fn latest(&self, subject: &str) -> Result<RegisteredSchema, FormatError> {
        if let Some((r, at)) = self.caches().latest.get(&subject.to_string()) {
            if self.config.latest_ttl.is_none_or(|ttl| at.elapsed() < ttl) {
                return Ok(r);
            }
        }
        let path = format!("/subjects/{}/versions/latest", segment(subject));
        let v = self.call(reqwest::Method::GET, &path, None).await?;
        let r: RegisteredSchema = Self::decode::<VersionBody>(&path, v)?.into();
        let mut c = self.caches();
        c.latest
            .put(subject.to_string(), (r.clone(), Instant::now()));
        c.versions.put((subject.to_string(), r.version), r.clone());
        c.by_id.put(r.id, r.schema.clone());
        Ok(r)
    }

    /// Registers `schema` under `subject` (or finds it registered there);
    /// its id.
    pub async fn register(
        &self,
        subject: &str,
        schema: &Schema,
        normalize: bool,
    ) -> Result<i32, FormatError> {
        let key = (subject.to_string(), schema.clone(), normalize);
        if let Some(id) = self.caches().ids.get(&key) {
            return Ok(id);
        }
        let path = format!(
            "/subjects/{}/versions?normalize={normalize}",
            segment(subject)
        );
        let body = serde_json::to_value(schema).unwrap_or(Value::Null);
        let v = self.call(reqwest::Method::POST, &path, Some(&body)).await?;
        let id = v
            .get("id")
            .and_then(Value::as_i64)
            .and_then(|i| i32::try_from(i).ok())
            .ok_or_else(|| FormatError::Transport {
                url: path,
                reason: format!("no id in {v}"),
            })?;
        let mut c = self.caches();
        c.ids.put(key, id);
        c.by_id.put(id, schema.clone());
        // A new version may now be the latest.
        c.latest.map.remove(subject);
        Ok(id)
    }

    /// Finds `schema` among the versions of `subject`
    /// (`POST /subjects/{subject}`).
    pub async fn lookup(
        &self,
        subject: &str,
        schema: &Schema,
        normalize: bool,
    ) -> Result<RegisteredSchema, FormatError> {
        let key = (subject.to_string(), schema.clone(), normalize);
        if let Some(r) = self.caches().lookups.get(&key) {
            return Ok(r);
        }
        let path = format!("/subjects/{}?normalize={normalize}", segment(subject));
        let body = serde_json::to_value(schema).unwrap_or(Value::Null);
        let v = self.call(reqwest::Method::POST, &path, Some(&body)).await?;
        let r: RegisteredSchema = Self::decode::<VersionBody>(&path, v)?.into();
        let mut c = self.caches();
        c.lookups.put(key.clone(), r.clone());
        c.ids.put(key, r.id);
        Ok(r)
    }

    /// Whether `schema` is compatible with `version` of `subject` (None:
    /// with every version the subject's level asks for).
    pub async fn test_compatibility(
        &self,
        subject: &str,
        version: Option<i32>,
        schema: &Schema,
    ) -> Result<Compatibility, FormatError> {
        let versions = match version {
            Some(v) if v >= 0 => format!("/versions/{v}"),
            Some(_) => "/versions/latest".to_string(),
            None => "/versions".to_string(),
        };
        let path = format!(
            "/compatibility/subjects/{}{versions}?verbose=true",
            segment(subject)
        );
        let body = serde_json::to_value(schema).unwrap_or(Value::Null);
        let v = self.call(reqwest::Method::POST, &path, Some(&body)).await?;
        Ok(Compatibility {
            is_compatible: v
                .get("is_compatible")
                .and_then(Value::as_bool)
                .unwrap_or(false),
            messages: v
                .get("messages")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .map(|m| m.as_str().map_or_else(|| m.to_string(), str::to_string))
                        .collect()
                })
                .unwrap_or_default(),
        })
    }

    /// Every subject with a live version.
    pub async fn subjects(&self) -> Result<Vec<String>, FormatError> {
        let v = self.call(reqwest::Method::GET, "/subjects", None).await?;
        Self::decode("/subjects", v)
    }

    /// The live versions of a subject.
    pub async fn versions(&self, subject: &str) -> Result<Vec<i32>, FormatError> {
        let path = format!("/subjects/{}/versions", segment(subject));
        let v = self.call(reqwest::Method::GET, &path, None).await?;
        Self::decode(&path, v)
    }

    /// Sets a subject's compatibility level (None: the global level).
    pub async fn set_compatibility(
        &self,
        subject: Option<&str>,
        level: &str,
    ) -> Result<(), FormatError> {
        let path = match subject {
            Some(s) => format!("/config/{}", segment(s)),
            None => "/config".to_string(),
        };
        self.call(
            reqwest::Method::PUT,
            &path,
            Some(&json!({ "compatibility": level })),
        )
        .await
        .map(drop)
    }

    /// The schemas `schema` references, transitively, dependencies first,
    /// each once.
    pub async fn resolve_references(
        &self,
        schema: &Schema,
    ) -> Result<Vec<ResolvedReference>, FormatError> {
        let mut out = Vec::new();
        let mut seen = HashSet::new();
        // An explicit stack of (reference, depth, dependencies pushed).
        let mut stack: Vec<(crate::schema::Reference, usize, bool)> = schema
            .references
            .iter()
            .rev()
            .map(|r| (r.clone(), 0, false))
            .collect();
        while let Some((r, depth, expanded)) = stack.pop() {
            if depth > MAX_REFERENCE_DEPTH {
                return Err(FormatError::schema(
                    schema.schema_type.name(),
                    "references nest too deeply",
                ));
            }
            let reg = self.version(&r.subject, r.version).await?;
            if expanded {
                if seen.insert((reg.subject.clone(), reg.version)) {
                    out.push(ResolvedReference {
                        name: r.name,
                        schema_type: reg.schema.schema_type,
                        schema: reg.schema.schema,
                    });
                }
                continue;
            }
            if seen.contains(&(reg.subject.clone(), reg.version)) {
                continue;
            }
            stack.push((r, depth, true));
            for child in reg.schema.references.iter().rev() {
                stack.push((child.clone(), depth + 1, false));
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn properties_by_confluent_names() {
        let props: HashMap<String, String> = [
            ("schema.registry.url", "https://u:p@a:8081/, http://b:8081"),
            ("basic.auth.credentials.source", "URL"),
            ("latest.cache.ttl.sec", "5"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let c = RegistryConfig::from_properties(&props).unwrap();
        assert_eq!(c.urls, ["https://a:8081/", "http://b:8081"]);
        assert_eq!(
            c.auth,
            Auth::Basic {
                user: "u".into(),
                password: "p".into()
            }
        );
        assert_eq!(c.latest_ttl, Some(Duration::from_secs(5)));
        let mut p2 = props.clone();
        p2.insert("basic.auth.credentials.source".into(), "SASL".into());
        assert!(RegistryConfig::from_properties(&p2).is_err());
        let mut p3 = HashMap::new();
        p3.insert("schema.registry.url".to_string(), "http://x".to_string());
        p3.insert(
            "schema.registry.basic.auth.user.info".to_string(),
            "me:secret".to_string(),
        );
        assert_eq!(
            RegistryConfig::from_properties(&p3).unwrap().auth,
            Auth::Basic {
                user: "me".into(),
                password: "secret".into()
            }
        );
        assert!(RegistryConfig::from_properties(&HashMap::new()).is_err());
    }

    #[test]
    fn subjects_are_escaped() {
        assert_eq!(segment("a b/c-value"), "a%20b%2Fc-value");
    }
}
