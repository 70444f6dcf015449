//! The console as a service of `weir serve` (`--console-listen`): a
//! client of the node's own Kafka listener and registry, with the node's
//! metrics and HTTP security.

use tokio::net::TcpListener;
use weir_service::{BoxFuture, Context, Running, Service, ServiceError};

use crate::{router, Console, Metrics};

/// The service's name, for `--client-set console.KEY=VALUE`.
pub const NAME: &str = "console";

/// The console on a bound listener.
#[derive(Debug)]
pub struct ConsoleService {
    listener: TcpListener,
    metrics: bool,
}

impl ConsoleService {
    /// The console, to serve on `listener`, charting the node's own metrics.
    pub fn new(listener: TcpListener) -> Self {
        Self {
            listener,
            metrics: true,
        }
    }

    /// The console run standalone: metrics only from `metrics.url`.
    pub fn standalone(listener: TcpListener) -> Self {
        Self {
            listener,
            metrics: false,
        }
    }
}

impl Service for ConsoleService {
    fn name(&self) -> &str {
        NAME
    }

    fn start(self: Box<Self>, ctx: Context) -> BoxFuture<'static, Result<Running, ServiceError>> {
        Box::pin(async move {
            let mut props = ctx.kafka_client()?.properties().clone();
            let bootstrap = props.remove("bootstrap.servers").unwrap_or_default();
            let metrics = match props.remove("metrics.url") {
                Some(url) => Metrics::Url(url),
                None if self.metrics => {
                    let registry = ctx.metrics().clone();
                    Metrics::Local(std::sync::Arc::new(move || registry.render()))
                }
                None => Metrics::None,
            };
            let mut urls = std::collections::BTreeMap::new();
            for key in ["connect.url", "sql.url"] {
                if let Some(url) = props.remove(key) {
                    urls.insert(key.to_string(), url);
                }
            }
            let settings = weir_rest::service::as_settings(&props);
            let bad = |detail: String| ServiceError::Config {
                key: format!("{NAME}.{}", detail.split(':').next().unwrap_or_default()),
                detail,
            };
            let auth = ctx.http().auth.enabled();
            let rest = weir_rest::RestConfig::from_properties(&bootstrap, &settings, auth)
                .or_else(|e| {
                    if auth {
                        weir_rest::RestConfig::from_properties(&bootstrap, &settings, false)
                    } else {
                        Err(e)
                    }
                })
                .map_err(bad)?;
            let console = Console::new(rest, metrics, &urls).map_err(bad)?;
            let served = ctx.serve_http(self.listener, router(console.clone()));
            Ok(Running::new(async move {
                let result = served.await;
                console.proxy().shutdown().await;
                result
            }))
        })
    }
}
