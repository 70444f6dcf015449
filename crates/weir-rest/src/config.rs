//! The proxy's settings from `KEY=VALUE` properties, with Confluent REST
//! Proxy's names: its own settings, then `client.*` (every Kafka client),
//! `producer.*` and `consumer.*` librdkafka properties.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::{KafkaSettings, RestConfig};

/// The proxy's own settings (not Kafka client properties).
const PROXY_SETTINGS: &[&str] = &[
    "http.authentication",
    "admin.timeout.ms",
    "consumer.instance.timeout.ms",
    "consumer.request.timeout.ms",
    "consumer.request.max.bytes",
    "producer.batch.maximum.entries",
    "produce.batch.maximum.entries",
];

/// Whether `key` is one of the proxy's own settings.
pub(crate) fn is_proxy_setting(key: &str) -> bool {
    PROXY_SETTINGS.contains(&key) || key.starts_with("schema.registry.")
}

fn number(key: &str, v: &str) -> Result<u64, String> {
    v.trim()
        .parse()
        .map_err(|_| format!("{key}: `{v}` is not a non-negative integer"))
}

impl RestConfig {
    /// Settings for a proxy of `bootstrap` from `props`. `http_auth` says
    /// whether the HTTP listener authenticates its users (also set by
    /// `http.authentication=basic` here); with a SASL client login
    /// (`client.sasl.mechanism`) the proxy then acts as them.
    pub fn from_properties(
        bootstrap: &str,
        props: &BTreeMap<String, String>,
        mut http_auth: bool,
    ) -> Result<Self, String> {
        let mut c = RestConfig::new(KafkaSettings::new(bootstrap));
        for (k, v) in props {
            match k.as_str() {
                "http.authentication" => match v.trim().to_ascii_lowercase().as_str() {
                    "" | "none" => {}
                    "basic" => http_auth = true,
                    other => {
                        return Err(format!(
                            "{k}: `{other}` is not supported by the REST proxy: use basic (its users log in to Kafka with their passwords)"
                        ))
                    }
                },
                "consumer.instance.timeout.ms" => {
                    c.consumer_instance_timeout = Duration::from_millis(number(k, v)?)
                }
                "consumer.request.timeout.ms" => {
                    c.consumer_request_timeout = Duration::from_millis(number(k, v)?)
                }
                "consumer.request.max.bytes" => c.consumer_request_max_bytes = number(k, v)?,
                "admin.timeout.ms" => {
                    c.kafka.request_timeout = Duration::from_millis(number(k, v)?)
                }
                "producer.batch.maximum.entries" | "produce.batch.maximum.entries" => {
                    c.produce_batch_max_entries = number(k, v)? as usize
                }
                _ if k.starts_with("schema.registry.") => {
                    c.registry.insert(k.clone(), v.clone());
                }
                _ => {
                    let (map, key) = if let Some(r) = k.strip_prefix("client.") {
                        (&mut c.kafka.client, r)
                    } else if let Some(r) = k.strip_prefix("producer.") {
                        (&mut c.kafka.producer, r)
                    } else if let Some(r) = k.strip_prefix("consumer.") {
                        (&mut c.kafka.consumer, r)
                    } else {
                        return Err(format!(
                            "{k}: unknown REST proxy setting (Kafka client properties take a client., producer. or consumer. prefix)"
                        ));
                    };
                    map.insert(key.to_string(), v.clone());
                }
            }
        }
        crate::formats::Schemas::from_properties(&c.registry)
            .map_err(|e| format!("schema.registry: {e}"))?;
        if http_auth {
            match c.kafka.sasl_mechanism() {
                Some("PLAIN" | "SCRAM-SHA-256" | "SCRAM-SHA-512") => c.propagate_principal = true,
                _ => {
                    return Err(
                        "HTTP authentication makes the proxy act as each user, which needs client.sasl.mechanism=PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512 (and client.security.protocol=SASL_PLAINTEXT or SASL_SSL)".into(),
                    )
                }
            }
        }
        Ok(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn props(kv: &[(&str, &str)]) -> BTreeMap<String, String> {
        kv.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn own_settings_then_prefixed_client_properties() {
        let c = RestConfig::from_properties(
            "b:9092",
            &props(&[
                ("consumer.instance.timeout.ms", "2000"),
                ("consumer.fetch.max.bytes", "1000"),
                ("client.security.protocol", "SASL_PLAINTEXT"),
                ("client.sasl.mechanism", "PLAIN"),
                ("producer.linger.ms", "1"),
            ]),
            true,
        )
        .unwrap();
        assert_eq!(c.consumer_instance_timeout, Duration::from_secs(2));
        assert_eq!(c.kafka.consumer["fetch.max.bytes"], "1000");
        assert_eq!(c.kafka.producer["linger.ms"], "1");
        assert!(c.propagate_principal);
    }

    #[test]
    fn bad_settings_name_the_key() {
        let e = RestConfig::from_properties("b", &props(&[("listeners", "x")]), false).unwrap_err();
        assert!(e.starts_with("listeners:"), "{e}");
        let e = RestConfig::from_properties(
            "b",
            &props(&[("consumer.request.timeout.ms", "-1")]),
            false,
        )
        .unwrap_err();
        assert!(e.starts_with("consumer.request.timeout.ms:"), "{e}");
        assert!(RestConfig::from_properties("b", &props(&[]), true).is_err());
    }
}
