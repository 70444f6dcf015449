//! DescribeConfigs for topics, brokers and groups, with synonyms and sources.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult, DescribeConfigsSynonym,
};
use kafka_protocol::messages::{DescribeConfigsRequest, DescribeConfigsResponse};
use kafka_protocol::protocol::StrBytes;

use crate::config::ConfigSource;
use crate::context::RequestContext;
use crate::node::Node;
use crate::security::Security;
use crate::topics::Topics;

/// `resource_type` of a topic.
pub const RESOURCE_TOPIC: i8 = 2;
/// `resource_type` of a broker.
pub const RESOURCE_BROKER: i8 = 4;
/// `resource_type` of a group.
pub const RESOURCE_GROUP: i8 = 32;

/// Answers a DescribeConfigs request. With authorization on, a topic
/// needs DESCRIBE_CONFIGS on it and a broker DESCRIBE_CONFIGS on the
/// cluster.
pub fn handle(
    topics: &Topics,
    security: &Security,
    node: &Node,
    ctx: &RequestContext<'_>,
    req: DescribeConfigsRequest,
) -> DescribeConfigsResponse {
    let session = ctx.session;
    let settings = topics.settings();
    let results = req
        .resources
        .into_iter()
        .map(|r| {
            let out = DescribeConfigsResult::default()
                .with_resource_type(r.resource_type)
                .with_resource_name(r.resource_name.clone());
            let fail = |e: ResponseError, msg: String| {
                out.clone()
                    .with_error_code(e.code())
                    .with_error_message(Some(StrBytes::from_string(msg)))
            };
            let wanted = |name: &str| {
                r.configuration_keys
                    .as_ref()
                    .is_none_or(|keys| keys.iter().any(|k| k.as_str() == name))
            };
            let doc = |d: &'static str| {
                req.include_documentation
                    .then(|| StrBytes::from_static_str(d))
            };
            if let Some(e) = security.authorize_config_resource(
                session,
                weir_auth::acl::AclOperation::DescribeConfigs,
                r.resource_type,
                &r.resource_name,
            ) {
                return out.with_error_code(e.code());
            }
            let configs: Vec<DescribeConfigsResourceResult> = match r.resource_type {
                RESOURCE_TOPIC => {
                    let Some(topic) = topics.topic(&r.resource_name) else {
                        return fail(
                            ResponseError::UnknownTopicOrPartition,
                            format!("Topic '{}' does not exist.", r.resource_name.as_str()),
                        );
                    };
                    settings
                        .resolve_all(&topic.configs)
                        .into_iter()
                        .filter(|c| wanted(c.def.name))
                        .map(|c| {
                            let synonyms = if req.include_synonyms {
                                c.synonyms
                                    .iter()
                                    .map(|(n, v, s)| {
                                        DescribeConfigsSynonym::default()
                                            .with_name(StrBytes::from_string(n.clone()))
                                            .with_value(Some(StrBytes::from_string(v.clone())))
                                            .with_source(*s as i8)
                                    })
                                    .collect()
                            } else {
                                Vec::new()
                            };
                            DescribeConfigsResourceResult::default()
                                .with_name(StrBytes::from_static_str(c.def.name))
                                .with_value(Some(StrBytes::from_string(c.value)))
                                .with_config_source(c.source as i8)
                                .with_synonyms(synonyms)
                                .with_config_type(c.def.kind as i8)
                                .with_documentation(doc(c.def.doc))
                        })
                        .collect()
                }
                RESOURCE_BROKER => {
                    let name = r.resource_name.as_str();
                    let default_only = name.is_empty();
                    if !default_only && name != node.id.to_string() {
                        return fail(
                            ResponseError::InvalidRequest,
                            format!("broker `{name}` is not this broker ({})", node.id),
                        );
                    }
                    settings
                        .broker_view()
                        .into_iter()
                        .filter(|c| wanted(&c.name))
                        .filter(|c| !default_only || c.source == ConfigSource::DynamicDefaultBroker)
                        .map(|c| {
                            let (n, v, source) = (c.name, c.value, c.source);
                            let synonyms = if req.include_synonyms {
                                vec![DescribeConfigsSynonym::default()
                                    .with_name(StrBytes::from_string(n.clone()))
                                    .with_value(v.clone().map(StrBytes::from_string))
                                    .with_source(source as i8)]
                            } else {
                                Vec::new()
                            };
                            DescribeConfigsResourceResult::default()
                                .with_name(StrBytes::from_string(n))
                                .with_value(v.map(StrBytes::from_string))
                                .with_read_only(c.read_only)
                                .with_config_source(source as i8)
                                .with_synonyms(synonyms)
                                .with_config_type(c.kind as i8)
                                .with_documentation(doc(c.doc))
                        })
                        .collect()
                }
                RESOURCE_GROUP => {
                    let overrides = topics.group_configs(&r.resource_name);
                    crate::group_config::resolve_all(&settings, &overrides)
                        .into_iter()
                        .filter(|(d, _, _)| wanted(d.name))
                        .map(|(d, value, source)| {
                            let synonyms = if req.include_synonyms {
                                vec![DescribeConfigsSynonym::default()
                                    .with_name(StrBytes::from_static_str(d.name))
                                    .with_value(Some(StrBytes::from_string(value.clone())))
                                    .with_source(source)]
                            } else {
                                Vec::new()
                            };
                            DescribeConfigsResourceResult::default()
                                .with_name(StrBytes::from_static_str(d.name))
                                .with_value(Some(StrBytes::from_string(value)))
                                .with_config_source(source)
                                .with_synonyms(synonyms)
                                .with_config_type(d.kind as i8)
                                .with_documentation(doc(d.doc))
                        })
                        .collect()
                }
                other => {
                    return fail(
                        ResponseError::InvalidRequest,
                        format!("resource type {other} is not supported"),
                    )
                }
            };
            out.with_configs(configs)
        })
        .collect();
    DescribeConfigsResponse::default().with_results(results)
}
