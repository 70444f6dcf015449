//! `weir rest-proxy` and `weir console`: the REST proxy and the web
//! console over any Kafka-compatible cluster, each as a node with just
//! that service.

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
    let service = weir_rest::RestService::new(listener);
    run_alone(
        &args.common.bootstrap,
        weir_rest::service::NAME,
        props,
        service,
    )
    .await
}

/// `weir console`: the same flags, another listen address.
#[derive(Debug, Args)]
pub struct ConsoleArgs {
    #[command(flatten)]
    common: Common,
    /// Where the console listens.
    #[arg(
        long,
        env = "WEIR_CONSOLE_LISTEN",
        default_value = "127.0.0.1:9021",
        value_name = "HOST:PORT"
    )]
    listen: String,
    /// A setting: `metrics.url` (a broker's Prometheus `/metrics`, for the
    /// overview's charts), `schema.registry.url` and the other
    /// `schema.registry.*` settings, or a Kafka client property with a
    /// `client.` prefix; repeatable.
    #[arg(long = "set", value_name = "KEY=VALUE", value_parser = key_value)]
    set: Vec<(String, String)>,
}

impl ConsoleArgs {
    /// The service's client properties, checked: a bad one is named.
    pub fn properties(&self) -> Result<BTreeMap<String, String>, String> {
        let mut set = self.set.clone();
        let metrics = set
            .iter()
            .position(|(k, _)| k == "metrics.url")
            .map(|i| set.remove(i));
        let mut props = RestProxyArgs {
            common: self.common.clone(),
            listen: String::new(),
            set,
        }
        .properties()?;
        props.extend(metrics);
        Ok(props)
    }
}

/// Runs the console until SIGTERM or SIGINT.
pub async fn run_console(args: ConsoleArgs, props: BTreeMap<String, String>) -> anyhow::Result<()> {
    let listener = weir_service::bind(&args.listen, "console").await?;
    let service = weir_console::ConsoleService::standalone(listener);
    run_alone(
        &args.common.bootstrap,
        weir_console::service::NAME,
        props,
        service,
    )
    .await
}

/// Runs `service` in a node of its own against `bootstrap`.
async fn run_alone(
    bootstrap: &str,
    name: &str,
    props: BTreeMap<String, String>,
    service: impl weir_service::Service,
) -> anyhow::Result<()> {
    let signal = crate::serve::shutdown_signal().context("cannot watch for SIGTERM and SIGINT")?;
    let mut node = Node::new(Default::default(), Default::default());
    let clients = BTreeMap::from([(name.to_string(), props)]);
    node.set_kafka(KafkaAccess::external(bootstrap).with_clients(clients));
    node.add(service);
    node.run(signal).await?;
    Ok(())
}
