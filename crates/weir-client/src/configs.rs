//! Configs of topics and brokers: DescribeConfigs and
//! IncrementalAlterConfigs.

use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::incremental_alter_configs_request::{
    AlterConfigsResource, AlterableConfig,
};
use kafka_protocol::messages::{DescribeConfigsRequest, IncrementalAlterConfigsRequest};
use kafka_protocol::protocol::StrBytes;

use crate::error::check;
use crate::{Admin, Result};

/// What a config belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigResource {
    /// A topic's configs.
    Topic(String),
    /// One broker's configs (answered by that broker).
    Broker(i32),
    /// The cluster-wide dynamic broker defaults (broker resource `""`).
    BrokerDefault,
}

impl ConfigResource {
    fn wire(&self) -> (i8, String) {
        match self {
            ConfigResource::Topic(t) => (2, t.clone()),
            ConfigResource::Broker(id) => (4, id.to_string()),
            ConfigResource::BrokerDefault => (4, String::new()),
        }
    }

    fn describe(&self) -> String {
        match self {
            ConfigResource::Topic(t) => format!("topic `{t}`"),
            ConfigResource::Broker(id) => format!("broker {id}"),
            ConfigResource::BrokerDefault => "the cluster's broker defaults".into(),
        }
    }
}

/// One config as DescribeConfigs reports it.
#[derive(Debug, Clone)]
pub struct ConfigEntry {
    pub name: String,
    /// `None` for sensitive values and unset ones.
    pub value: Option<String>,
    /// Kafka's `ConfigSource` name, e.g. `DYNAMIC_TOPIC_CONFIG`.
    pub source: &'static str,
    pub read_only: bool,
    pub sensitive: bool,
    /// The value in effect comes from the default, not an override.
    pub is_default: bool,
    /// The layers the value resolves through, most specific first.
    pub synonyms: Vec<ConfigSynonym>,
    pub documentation: Option<String>,
}

/// One layer of a config's resolution.
#[derive(Debug, Clone)]
pub struct ConfigSynonym {
    pub name: String,
    pub value: Option<String>,
    pub source: &'static str,
}

/// Kafka's name of a `ConfigSource` code.
pub fn config_source_name(s: i8) -> &'static str {
    match s {
        1 => "DYNAMIC_TOPIC_CONFIG",
        2 => "DYNAMIC_BROKER_CONFIG",
        3 => "DYNAMIC_DEFAULT_BROKER_CONFIG",
        4 => "STATIC_BROKER_CONFIG",
        5 => "DEFAULT_CONFIG",
        6 => "DYNAMIC_BROKER_LOGGER_CONFIG",
        7 => "CLIENT_METRICS_CONFIG",
        8 => "GROUP_CONFIG",
        _ => "UNKNOWN",
    }
}

/// A change to one config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AlterConfigOp {
    /// Set the value.
    Set(String),
    /// Remove the override, falling back to the next layer.
    Delete,
}

impl Admin {
    /// Every config of `resource`, sorted by name.
    pub async fn describe_configs(
        &mut self,
        resource: &ConfigResource,
    ) -> Result<Vec<ConfigEntry>> {
        let (rtype, rname) = resource.wire();
        let req = DescribeConfigsRequest::default()
            .with_resources(vec![DescribeConfigsResource::default()
                .with_resource_type(rtype)
                .with_resource_name(StrBytes::from_string(rname))
                .with_configuration_keys(None)])
            .with_include_synonyms(true)
            .with_include_documentation(true);
        let (resp, _) = match resource {
            ConfigResource::Broker(id) => self.send_to(*id, req, 4).await?,
            _ => self.send(req, 4).await?,
        };
        let mut out = Vec::new();
        for r in resp.results {
            check(
                r.error_code,
                &format!("cannot describe configs of {}", resource.describe()),
                r.error_message.as_deref(),
            )?;
            for c in r.configs {
                let source = config_source_name(c.config_source);
                out.push(ConfigEntry {
                    name: c.name.to_string(),
                    value: if c.is_sensitive {
                        None
                    } else {
                        c.value.map(|v| v.to_string())
                    },
                    source,
                    read_only: c.read_only,
                    sensitive: c.is_sensitive,
                    is_default: c.config_source == 5,
                    synonyms: c
                        .synonyms
                        .into_iter()
                        .map(|s| ConfigSynonym {
                            name: s.name.to_string(),
                            value: if c.is_sensitive {
                                None
                            } else {
                                s.value.map(|v| v.to_string())
                            },
                            source: config_source_name(s.source),
                        })
                        .collect(),
                    documentation: c.documentation.map(|d| d.to_string()),
                });
            }
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// Applies `ops` to `resource` in one IncrementalAlterConfigs request
    /// (all or nothing), or with `validate_only` checks that it could.
    pub async fn alter_configs(
        &mut self,
        resource: &ConfigResource,
        ops: &[(String, AlterConfigOp)],
        validate_only: bool,
    ) -> Result<()> {
        let (rtype, rname) = resource.wire();
        let configs = ops
            .iter()
            .map(|(name, op)| {
                let c = AlterableConfig::default().with_name(StrBytes::from_string(name.clone()));
                match op {
                    AlterConfigOp::Set(v) => c
                        .with_config_operation(0)
                        .with_value(Some(StrBytes::from_string(v.clone()))),
                    AlterConfigOp::Delete => c.with_config_operation(1),
                }
            })
            .collect();
        let req = IncrementalAlterConfigsRequest::default()
            .with_resources(vec![AlterConfigsResource::default()
                .with_resource_type(rtype)
                .with_resource_name(StrBytes::from_string(rname))
                .with_configs(configs)])
            .with_validate_only(validate_only);
        let (resp, _) = match resource {
            ConfigResource::Broker(id) => self.send_to(*id, req, 1).await?,
            _ => self.send(req, 1).await?,
        };
        for r in &resp.responses {
            check(
                r.error_code,
                &format!("cannot alter configs of {}", resource.describe()),
                r.error_message.as_deref(),
            )?;
        }
        Ok(())
    }
}
