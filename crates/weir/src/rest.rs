//! `weir rest-proxy`: Confluent REST Proxy's API over any Kafka-compatible
//! cluster, as a process of its own.

use std::collections::BTreeMap;

use anyhow::Context;
use clap::Args;
use tokio::net::TcpListener;
use tracing::info;

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
    /// The proxy's settings, or the bad one named.
    pub fn config(&self) -> Result<weir_rest::RestConfig, String> {
        let props: BTreeMap<String, String> = self.set.iter().cloned().collect();
        let mut c = weir_rest::RestConfig::from_properties(&self.common.bootstrap, &props, false)?;
        c.kafka.request_timeout = self.common.timeout();
        Ok(c)
    }
}

/// Runs the proxy with `config` until SIGTERM or SIGINT.
pub async fn run(args: RestProxyArgs, config: weir_rest::RestConfig) -> anyhow::Result<()> {
    let listener = TcpListener::bind(&args.listen)
        .await
        .with_context(|| format!("cannot listen on {} (REST proxy)", args.listen))?;
    info!(address = %listener.local_addr()?, bootstrap = %args.common.bootstrap, "REST proxy listening");
    let shutdown = crate::shutdown_signal().context("cannot watch for SIGTERM and SIGINT")?;
    weir_rest::run(listener, config, shutdown).await?;
    info!("REST proxy stopped");
    Ok(())
}
