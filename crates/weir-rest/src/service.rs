//! The REST proxy as a service of `weir serve` (`--rest-listen`): a
//! client of the node's own Kafka listener, served with the node's HTTP
//! TLS and authentication.

use std::collections::BTreeMap;
use std::sync::Arc;

use tokio::net::TcpListener;
use weir_service::{BoxFuture, Context, Running, Service, ServiceError};

use crate::{router, v2, RestConfig, RestProxy};

/// The service's name, which operators use in `--client-set
/// rest-proxy.KEY=VALUE` for its Kafka client and proxy settings.
pub const NAME: &str = "rest-proxy";

/// The REST proxy on a bound listener.
#[derive(Debug)]
pub struct RestService {
    listener: TcpListener,
}

impl RestService {
    /// The proxy, to serve on `listener`.
    pub fn new(listener: TcpListener) -> Self {
        Self { listener }
    }
}

/// The node's client properties in the standalone proxy's terms: proxy
/// settings and `producer.`/`consumer.` properties as they are, every
/// other property for all of its clients (`client.` prefixed).
pub fn as_settings(props: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    props
        .iter()
        .filter(|(k, _)| k.as_str() != "bootstrap.servers")
        .map(|(k, v)| {
            let own = crate::config::is_proxy_setting(k)
                || k.starts_with("producer.")
                || k.starts_with("consumer.");
            (
                if own {
                    k.clone()
                } else {
                    format!("client.{k}")
                },
                v.clone(),
            )
        })
        .collect()
}

impl Service for RestService {
    fn name(&self) -> &str {
        NAME
    }

    fn start(self: Box<Self>, ctx: Context) -> BoxFuture<'static, Result<Running, ServiceError>> {
        Box::pin(async move {
            let props = ctx.kafka_client()?.properties().clone();
            let bootstrap = props.get("bootstrap.servers").cloned().unwrap_or_default();
            let settings = as_settings(&props);
            let auth = ctx.http().auth.enabled();
            let mut config = match RestConfig::from_properties(&bootstrap, &settings, auth) {
                Ok(c) => Ok(c),
                // The node authenticates HTTP users, but the proxy's Kafka
                // client does not log in with passwords: it acts as itself.
                Err(_) if auth => {
                    tracing::warn!(
                        "HTTP users are authenticated, but the REST proxy's Kafka client does not use SASL PLAIN or SCRAM \
                         (--client-set {NAME}.security.protocol and .sasl.mechanism): Kafka sees the proxy, not its users"
                    );
                    RestConfig::from_properties(&bootstrap, &settings, false)
                }
                Err(e) => Err(e),
            }
            .map_err(|detail| ServiceError::Config {
                key: format!("{NAME}.{}", detail.split(':').next().unwrap_or_default()),
                detail,
            })?;
            config.https = ctx.http().scheme() == "https";
            let proxy = RestProxy::new(config);
            let expiry = tokio::spawn(v2::consumers::expire_loop(Arc::downgrade(&proxy)));
            let served = ctx.serve_http(self.listener, router(proxy.clone()));
            Ok(Running::new(async move {
                let result = served.await;
                expiry.abort();
                proxy.shutdown().await;
                result
            }))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_properties_become_proxy_settings() {
        let props: BTreeMap<String, String> = [
            ("bootstrap.servers", "127.0.0.1:9092"),
            ("security.protocol", "SASL_PLAINTEXT"),
            ("consumer.instance.timeout.ms", "1000"),
            ("producer.linger.ms", "2"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let s = as_settings(&props);
        assert_eq!(s["client.security.protocol"], "SASL_PLAINTEXT");
        assert_eq!(s["consumer.instance.timeout.ms"], "1000");
        assert_eq!(s["producer.linger.ms"], "2");
        assert!(!s.contains_key("client.bootstrap.servers"));
    }
}
