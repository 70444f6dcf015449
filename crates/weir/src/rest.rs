//! `weir rest-proxy`: Confluent REST Proxy's API over any Kafka-compatible
//! cluster, as a node with just that service.

use std::collections::BTreeMap;

use anyhow::Context;
use clap::Args;
use weir_service::{KafkaAccess, Node};

use crate::cli::{key_value, Common};

/// `weir rest-proxy`.
#[derive(Debug, Args)]
pub struct RestProxyArgs {
    #[command(flatten)]
    common: Common,
    /// Where the REST API listens.
    #[arg(
        long,
        env = "WEIR_REST_LISTEN",
        default_value = "127.0.0.1:8082",
        value_name = "HOST:PORT"
    )]
    listen: String,
    /// A setting, as Confluent REST Proxy names it
    /// (`consumer.instance.timeout.ms=60000`), or a Kafka client property
    /// with a `client.`, `producer.` or `consumer.` prefix
    /// (`client.security.protocol=SASL_SSL`); repeatable.
    #[arg(long = "set", value_name = "KEY=VALUE", value_parser = key_value)]
    set: Vec<(String, String)>,
}

impl RestProxyArgs {
    /// The service's client properties, checked: a bad one is named.
    pub fn properties(&self) -> Result<BTreeMap<String, String>, String> {
        let set: BTreeMap<String, String> = self.set.iter().cloned().collect();
        weir_rest::RestConfig::from_properties(&self.common.bootstrap, &set, false)?;
        // The service takes client properties unprefixed.
        let mut props: BTreeMap<String, String> = set
            .into_iter()
            .map(|(k, v)| match k.strip_prefix("client.") {
                Some(k) => (k.to_string(), v),
                None => (k, v),
            })
            .collect();
        props.insert(
            "admin.timeout.ms".into(),
            self.common.timeout().as_millis().to_string(),
        );
        Ok(props)
    }
}

/// Runs the proxy until SIGTERM or SIGINT.
pub async fn run(args: RestProxyArgs, props: BTreeMap<String, String>) -> anyhow::Result<()> {
    let listener = weir_service::bind(&args.listen, "REST proxy").await?;
    let signal = crate::serve::shutdown_signal().context("cannot watch for SIGTERM and SIGINT")?;
    let mut node = Node::new(Default::default(), Default::default());
    let clients = BTreeMap::from([(weir_rest::service::NAME.to_string(), props)]);
    node.set_kafka(KafkaAccess::external(args.common.bootstrap).with_clients(clients));
    node.add(weir_rest::RestService::new(listener));
    node.run(signal).await?;
    Ok(())
}
