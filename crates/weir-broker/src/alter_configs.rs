//! AlterConfigs (replace all overrides) and IncrementalAlterConfigs (set,
//! delete, append, subtract), for topics, brokers and groups.

use std::collections::BTreeMap;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{
    alter_configs_response, incremental_alter_configs_response, AlterConfigsRequest,
    AlterConfigsResponse, IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse,
};
use kafka_protocol::protocol::StrBytes;

use crate::config::{
    broker_config_is_dynamic, topic_def, validate_broker_config, validate_topic_config, ConfigType,
};
use crate::context::RequestContext;
use crate::describe_configs::{RESOURCE_BROKER, RESOURCE_GROUP, RESOURCE_TOPIC};
use crate::group_config::{group_def, validate_group_config};
use crate::node::Node;
use crate::security::Security;
use crate::topics::Topics;
use crate::BrokerError;

/// One requested change.
enum Op {
    Set(String),
    Delete,
    Append(String),
    Subtract(String),
}

/// The resource a change applies to.
enum Target {
    Topic(String),
    Broker { default: bool },
    Group(String),
}

fn target(node: &Node, resource_type: i8, name: &str) -> Result<Target, BrokerError> {
    match resource_type {
        RESOURCE_TOPIC => Ok(Target::Topic(name.to_string())),
        RESOURCE_BROKER if name.is_empty() => Ok(Target::Broker { default: true }),
        RESOURCE_BROKER if name == node.id.to_string() => Ok(Target::Broker { default: false }),
        RESOURCE_BROKER => Err(BrokerError::invalid_request(format!(
            "broker `{name}` is not this broker"
        ))),
        RESOURCE_GROUP if name.is_empty() => Err(BrokerError::invalid_request(
            "a group config resource needs a group id",
        )),
        RESOURCE_GROUP => Ok(Target::Group(name.to_string())),
        other => Err(BrokerError::invalid_request(format!(
            "resource type {other} is not supported"
        ))),
    }
}

fn current(topics: &Topics, target: &Target) -> Result<BTreeMap<String, String>, BrokerError> {
    match target {
        Target::Topic(name) => topics
            .topic(name)
            .map(|t| t.configs.clone())
            .ok_or_else(|| BrokerError::UnknownTopic {
                topic: name.to_string(),
            }),
        Target::Broker { default } => {
            let s = topics.settings();
            Ok(if *default {
                s.dynamic_default
            } else {
                s.dynamic_broker
            })
        }
        Target::Group(id) => Ok(topics.group_configs(id)),
    }
}

fn validate(
    topics: &Topics,
    target: &Target,
    key: &str,
    value: &str,
) -> Result<String, BrokerError> {
    match target {
        Target::Group(_) => validate_group_config(&topics.settings(), key, value),
        Target::Topic(_) => validate_topic_config(key, value),
        Target::Broker { .. } => {
            let v = validate_broker_config(key, value)?;
            if !broker_config_is_dynamic(key) {
                return Err(BrokerError::ReadOnlyConfig {
                    key: key.to_string(),
                });
            }
            Ok(v)
        }
    }
}

fn is_list(target: &Target, key: &str) -> bool {
    match target {
        Target::Topic(_) => topic_def(key).is_some_and(|d| d.kind == ConfigType::List),
        Target::Broker { .. } => key == "log.cleanup.policy",
        Target::Group(_) => false,
    }
}

/// Applies `ops` to a resource's current overrides and stores the result.
fn apply(
    topics: &Topics,
    node: &Node,
    resource_type: i8,
    name: &str,
    ops: Vec<(String, Op)>,
    replace: bool,
    validate_only: bool,
) -> Result<(), BrokerError> {
    let target = target(node, resource_type, name)?;
    let mut configs = if replace {
        BTreeMap::new()
    } else {
        current(topics, &target)?
    };
    if replace {
        // AlterConfigs still needs the resource to exist.
        current(topics, &target)?;
    }
    let mut seen = Vec::new();
    for (key, op) in ops {
        if seen.contains(&key) {
            return Err(BrokerError::invalid_request(format!(
                "Error due to duplicate config keys: {key}"
            )));
        }
        seen.push(key.clone());
        match op {
            Op::Set(v) => {
                let v = validate(topics, &target, &key, &v)?;
                configs.insert(key, v);
            }
            Op::Delete => {
                // Deleting an unknown key is an error; an unset one is not.
                let known = match &target {
                    Target::Topic(_) => topic_def(&key).is_some(),
                    Target::Broker { .. } => broker_config_is_dynamic(&key),
                    Target::Group(_) => group_def(&key).is_some(),
                };
                if !known {
                    return Err(BrokerError::InvalidConfig {
                        reason: format!("unknown config `{key}`"),
                        key,
                    });
                }
                configs.remove(&key);
            }
            Op::Append(_) | Op::Subtract(_) if !is_list(&target, &key) => {
                return Err(BrokerError::InvalidConfig {
                    reason: format!("Config value append/subtract is not allowed for config key {key}, which is not a list"),
                    key,
                });
            }
            Op::Append(v) => {
                let base = configs
                    .get(&key)
                    .cloned()
                    .unwrap_or_else(|| effective(topics, &target, &key));
                let joined = if base.is_empty() {
                    v
                } else {
                    format!("{base},{v}")
                };
                let v = validate(topics, &target, &key, &joined)?;
                configs.insert(key, v);
            }
            Op::Subtract(v) => {
                let base = configs
                    .get(&key)
                    .cloned()
                    .unwrap_or_else(|| effective(topics, &target, &key));
                let drop: Vec<&str> = v.split(',').map(str::trim).collect();
                let kept: Vec<&str> = base
                    .split(',')
                    .filter(|i| !drop.contains(&i.trim()))
                    .collect();
                let v = validate(topics, &target, &key, &kept.join(","))?;
                configs.insert(key, v);
            }
        }
    }
    if validate_only {
        return Ok(());
    }
    match target {
        Target::Topic(name) => topics.set_topic_configs(&name, configs),
        Target::Broker { default } => topics.set_broker_configs(default, configs),
        Target::Group(id) => topics.set_group_configs(&id, configs),
    }
}

fn effective(topics: &Topics, target: &Target, key: &str) -> String {
    match target {
        Target::Topic(name) => {
            let overrides = topics
                .topic(name)
                .map(|t| t.configs.clone())
                .unwrap_or_default();
            topic_def(key)
                .map(|d| topics.settings().resolve(d, &overrides).value)
                .unwrap_or_default()
        }
        Target::Group(id) => {
            crate::group_config::resolve_all(&topics.settings(), &topics.group_configs(id))
                .into_iter()
                .find(|(d, _, _)| d.name == key)
                .map(|(_, v, _)| v)
                .unwrap_or_default()
        }
        Target::Broker { .. } => topics
            .settings()
            .broker_view()
            .into_iter()
            .find(|c| c.name == key)
            .and_then(|c| c.value)
            .unwrap_or_default(),
    }
}

fn error_parts(r: Result<(), BrokerError>) -> (i16, Option<StrBytes>) {
    match r {
        Ok(()) => (0, None),
        Err(e) => e.response(),
    }
}

/// The refusal of a config change the session may not make.
fn denied(code: ResponseError) -> BrokerError {
    BrokerError::Unauthorized {
        code,
        message: "Authorization failed.",
    }
}

/// Answers an AlterConfigs request: each resource's overrides become
/// exactly the given set.
///
/// With authorization on, a topic needs ALTER_CONFIGS on it and a broker
/// ALTER_CONFIGS on the cluster.
pub fn handle(
    topics: &Topics,
    security: &Security,
    node: &Node,
    ctx: &RequestContext<'_>,
    req: AlterConfigsRequest,
) -> AlterConfigsResponse {
    let session = ctx.session;
    let validate_only = req.validate_only;
    let responses = req
        .resources
        .into_iter()
        .map(|r| {
            let ops = r
                .configs
                .into_iter()
                .map(|c| {
                    (
                        c.name.to_string(),
                        c.value.map_or(Op::Delete, |v| Op::Set(v.to_string())),
                    )
                })
                .collect();
            let (code, msg) = error_parts(
                match security.authorize_config_resource(
                    session,
                    weir_auth::acl::AclOperation::AlterConfigs,
                    r.resource_type,
                    &r.resource_name,
                ) {
                    Some(e) => Err(denied(e)),
                    None => apply(
                        topics,
                        node,
                        r.resource_type,
                        &r.resource_name,
                        ops,
                        true,
                        req.validate_only,
                    ),
                },
            );
            alter_configs_response::AlterConfigsResourceResponse::default()
                .with_error_code(code)
                .with_error_message(msg)
                .with_resource_type(r.resource_type)
                .with_resource_name(r.resource_name)
        })
        .collect();
    let resp = AlterConfigsResponse::default().with_responses(responses);
    if !validate_only {
        for r in &resp.responses {
            let resource =
                crate::security::audit::config_resource(r.resource_type, &r.resource_name);
            security.audit_admin(session, "AlterConfigs", resource, r.error_code);
        }
    }
    resp
}

/// Answers an IncrementalAlterConfigs request.
///
/// Authorized as [`handle`].
pub fn handle_incremental(
    topics: &Topics,
    security: &Security,
    node: &Node,
    ctx: &RequestContext<'_>,
    req: IncrementalAlterConfigsRequest,
) -> IncrementalAlterConfigsResponse {
    let session = ctx.session;
    let validate_only = req.validate_only;
    let responses = req
        .resources
        .into_iter()
        .map(|r| {
            let ops: Result<Vec<_>, BrokerError> = r
                .configs
                .into_iter()
                .map(|c| {
                    let value = c.value.map(|v| v.to_string());
                    let need = |v: Option<String>| {
                        v.ok_or_else(|| {
                            BrokerError::invalid_request(format!(
                                "Null value not supported for {}",
                                c.name.as_str()
                            ))
                        })
                    };
                    let op = match c.config_operation {
                        0 => Op::Set(need(value)?),
                        1 => Op::Delete,
                        2 => Op::Append(need(value)?),
                        3 => Op::Subtract(need(value)?),
                        other => {
                            return Err(BrokerError::invalid_request(format!(
                                "unknown config operation {other}"
                            )))
                        }
                    };
                    Ok((c.name.to_string(), op))
                })
                .collect();
            let refused = security.authorize_config_resource(
                session,
                weir_auth::acl::AclOperation::AlterConfigs,
                r.resource_type,
                &r.resource_name,
            );
            let result = match refused {
                Some(e) => Err(denied(e)),
                None => ops,
            }
            .and_then(|ops| {
                apply(
                    topics,
                    node,
                    r.resource_type,
                    &r.resource_name,
                    ops,
                    false,
                    req.validate_only,
                )
            });
            let (code, msg) = error_parts(result);
            incremental_alter_configs_response::AlterConfigsResourceResponse::default()
                .with_error_code(code)
                .with_error_message(msg)
                .with_resource_type(r.resource_type)
                .with_resource_name(r.resource_name)
        })
        .collect();
    let resp = IncrementalAlterConfigsResponse::default().with_responses(responses);
    if !validate_only {
        for r in &resp.responses {
            let resource =
                crate::security::audit::config_resource(r.resource_type, &r.resource_name);
            security.audit_admin(session, "IncrementalAlterConfigs", resource, r.error_code);
        }
    }
    resp
}
