//! How a service reaches Kafka: the node's own Kafka listeners (or, run
//! standalone, an external cluster) and the client settings the operator
//! configured per service, as Kafka client properties.
//!
//! In a node, a service connects to the first PLAINTEXT listener. When
//! every listener requires TLS or SASL, the operator's settings for the
//! service name the protocol (`security.protocol`) and carry the
//! credentials (`sasl.mechanism`, `sasl.username`, `sasl.password`,
//! `ssl.ca.location`, ...); the service connects to the first listener of
//! that protocol.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use weir_auth::SecurityProtocol;

use crate::ServiceError;

/// A bound Kafka listener of the node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KafkaEndpoint {
    /// Its name (`PLAINTEXT`, `INTERNAL`).
    pub listener: String,
    /// Its security protocol.
    pub protocol: SecurityProtocol,
    /// The address it bound.
    pub address: SocketAddr,
}

#[derive(Debug, Clone)]
enum Cluster {
    /// The node's own listeners.
    Node(Vec<KafkaEndpoint>),
    /// `bootstrap.servers` of another cluster (a service run standalone).
    External(String),
}

/// Where services find Kafka, and each one's client settings.
#[derive(Debug, Clone)]
pub struct KafkaAccess {
    cluster: Cluster,
    /// Service name → Kafka client properties set by the operator.
    clients: BTreeMap<String, BTreeMap<String, String>>,
}

impl KafkaAccess {
    /// The node's own Kafka listeners.
    pub fn node(endpoints: Vec<KafkaEndpoint>) -> Self {
        Self {
            cluster: Cluster::Node(endpoints),
            clients: BTreeMap::new(),
        }
    }

    /// Another cluster, by its `bootstrap.servers`.
    pub fn external(bootstrap_servers: impl Into<String>) -> Self {
        Self {
            cluster: Cluster::External(bootstrap_servers.into()),
            clients: BTreeMap::new(),
        }
    }

    /// Sets the operator's client properties for each service by name.
    pub fn with_clients(mut self, clients: BTreeMap<String, BTreeMap<String, String>>) -> Self {
        self.clients = clients;
        self
    }

    /// The services the operator configured client settings for.
    pub fn configured_services(&self) -> impl Iterator<Item = &str> {
        self.clients.keys().map(String::as_str)
    }

    /// The client settings for `service`.
    pub fn for_service(&self, service: &str) -> Result<KafkaClientConfig, ServiceError> {
        let mut props = self.clients.get(service).cloned().unwrap_or_default();
        let bootstrap = match &self.cluster {
            Cluster::External(b) => b.clone(),
            Cluster::Node(endpoints) => {
                let bad = |key: &str, detail: String| ServiceError::Config {
                    key: format!("{service}.{key}"),
                    detail,
                };
                let wanted = match props.get("security.protocol") {
                    Some(p) => SecurityProtocol::parse(p).ok_or_else(|| {
                        bad(
                            "security.protocol",
                            format!("`{p}` is not PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL"),
                        )
                    })?,
                    None => SecurityProtocol::Plaintext,
                };
                let Some(e) = endpoints.iter().find(|e| e.protocol == wanted) else {
                    let have: Vec<&str> = endpoints.iter().map(|e| e.protocol.name()).collect();
                    let detail = if props.contains_key("security.protocol") {
                        format!(
                            "no Kafka listener speaks {} (the listeners speak {})",
                            wanted.name(),
                            have.join(", ")
                        )
                    } else {
                        format!(
                            "every Kafka listener requires TLS or SASL ({}): set the {service} client's \
                             security.protocol and credentials",
                            have.join(", ")
                        )
                    };
                    return Err(bad("security.protocol", detail));
                };
                props.insert("security.protocol".into(), wanted.name().into());
                dial(e.address).to_string()
            }
        };
        // The operator may point a service at another cluster.
        props.entry("bootstrap.servers".into()).or_insert(bootstrap);
        Ok(KafkaClientConfig { properties: props })
    }
}

/// The address to dial for a bound one: a wildcard bind is reached over
/// loopback.
fn dial(bound: SocketAddr) -> SocketAddr {
    match bound.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => {
            SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), bound.port())
        }
        IpAddr::V6(ip) if ip.is_unspecified() => {
            SocketAddr::new(IpAddr::V6(Ipv6Addr::LOCALHOST), bound.port())
        }
        _ => bound,
    }
}

/// Kafka client properties (`bootstrap.servers`, `security.protocol`,
/// `sasl.mechanism`, ...), as the Java client and librdkafka name them.
/// `Debug` hides secrets.
#[derive(Clone, PartialEq, Eq)]
pub struct KafkaClientConfig {
    properties: BTreeMap<String, String>,
}

fn secret(key: &str) -> bool {
    key.contains("password") || key.contains("jaas") || key.contains("secret")
}

impl std::fmt::Debug for KafkaClientConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map()
            .entries(self.properties.iter().map(|(k, v)| {
                let v = if secret(k) { "[hidden]" } else { v.as_str() };
                (k, v)
            }))
            .finish()
    }
}

impl KafkaClientConfig {
    /// `bootstrap.servers`.
    pub fn bootstrap_servers(&self) -> &str {
        self.get("bootstrap.servers").unwrap_or_default()
    }

    /// One property.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.properties.get(key).map(String::as_str)
    }

    /// Every property, for a client's config builder.
    pub fn properties(&self) -> &BTreeMap<String, String> {
        &self.properties
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn endpoint(protocol: SecurityProtocol, address: &str) -> KafkaEndpoint {
        KafkaEndpoint {
            listener: protocol.name().into(),
            protocol,
            address: address.parse().unwrap(),
        }
    }

    fn settings(pairs: &[(&str, &str)]) -> BTreeMap<String, BTreeMap<String, String>> {
        let props = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        BTreeMap::from([("connect".to_string(), props)])
    }

    #[test]
    fn a_plaintext_listener_needs_no_settings() {
        let access = KafkaAccess::node(vec![
            endpoint(SecurityProtocol::SaslSsl, "127.0.0.1:9093"),
            endpoint(SecurityProtocol::Plaintext, "0.0.0.0:9092"),
        ]);
        let c = access.for_service("connect").unwrap();
        assert_eq!(c.bootstrap_servers(), "127.0.0.1:9092");
        assert_eq!(c.get("security.protocol"), Some("PLAINTEXT"));
    }

    #[test]
    fn without_an_open_listener_the_operator_names_the_protocol() {
        let access = KafkaAccess::node(vec![
            endpoint(SecurityProtocol::SaslPlaintext, "127.0.0.1:9094"),
            endpoint(SecurityProtocol::SaslSsl, "[::]:9093"),
        ]);
        let err = access.for_service("connect").unwrap_err().to_string();
        assert!(err.contains("connect.security.protocol"), "{err}");
        let access = access.with_clients(settings(&[
            ("security.protocol", "sasl_ssl"),
            ("sasl.mechanism", "PLAIN"),
            ("sasl.password", "s3cret"),
        ]));
        let c = access.for_service("connect").unwrap();
        assert_eq!(c.bootstrap_servers(), "[::1]:9093");
        assert_eq!(c.get("security.protocol"), Some("SASL_SSL"));
        assert_eq!(c.get("sasl.mechanism"), Some("PLAIN"));
        assert!(!format!("{c:?}").contains("s3cret"));
        // Other services have no settings of their own.
        assert!(access.for_service("sql").is_err());
    }

    #[test]
    fn a_protocol_no_listener_speaks_is_refused() {
        let access = KafkaAccess::node(vec![endpoint(
            SecurityProtocol::Plaintext,
            "127.0.0.1:9092",
        )])
        .with_clients(settings(&[("security.protocol", "SSL")]));
        let err = access.for_service("connect").unwrap_err().to_string();
        assert!(err.contains("no Kafka listener speaks SSL"), "{err}");
        let access = access.with_clients(settings(&[("security.protocol", "TLS")]));
        assert!(access.for_service("connect").is_err());
    }

    #[test]
    fn an_external_cluster_is_used_as_given() {
        let access = KafkaAccess::external("kafka-1:9092,kafka-2:9092")
            .with_clients(settings(&[("security.protocol", "SASL_SSL")]));
        let c = access.for_service("connect").unwrap();
        assert_eq!(c.bootstrap_servers(), "kafka-1:9092,kafka-2:9092");
        assert_eq!(c.get("security.protocol"), Some("SASL_SSL"));
    }
}
