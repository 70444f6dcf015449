//! DescribeCluster: the cluster id, controller and brokers.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::{BrokerId, DescribeClusterRequest, DescribeClusterResponse};
use kafka_protocol::protocol::StrBytes;

use crate::context::RequestContext;
use crate::node::Node;
use crate::security::Security;
use crate::topics::Topics;
use weir_auth::acl::{AclOperation, ResourceType};

/// `endpoint_type` asking for brokers (KIP-919).
const ENDPOINT_BROKERS: i8 = 1;

/// Answers a DescribeCluster request.
///
/// As in Kafka, nothing is refused: the cluster's authorized operations
/// are reported (when asked for) only with DESCRIBE on the cluster, else 0.
pub fn handle(
    topics: &Topics,
    security: &Security,
    node: &Node,
    ctx: &RequestContext<'_>,
    req: DescribeClusterRequest,
) -> DescribeClusterResponse {
    let session = ctx.session;
    let ops = if !req.include_cluster_authorized_operations {
        i32::MIN
    } else if security.authorize(
        session,
        AclOperation::Describe,
        ResourceType::Cluster,
        weir_auth::acl::CLUSTER_NAME,
    ) {
        security.authorized_operations(session, ResourceType::Cluster, weir_auth::acl::CLUSTER_NAME)
    } else {
        0
    };
    let resp = DescribeClusterResponse::default()
        .with_endpoint_type(req.endpoint_type)
        .with_cluster_id(StrBytes::from_string(topics.cluster_id()))
        .with_cluster_authorized_operations(ops);
    if req.endpoint_type != ENDPOINT_BROKERS {
        return resp
            .with_error_code(ResponseError::UnsupportedEndpointType.code())
            .with_error_message(Some(StrBytes::from_static_str(
                "this node serves brokers, not controllers",
            )));
    }
    // In cluster mode, every live broker.
    let brokers = node
        .brokers()
        .into_iter()
        .map(|b| {
            DescribeClusterBroker::default()
                .with_broker_id(BrokerId(b.node_id))
                .with_host(StrBytes::from_string(b.host))
                .with_port(b.port)
        })
        .collect();
    resp.with_controller_id(BrokerId(node.id))
        .with_brokers(brokers)
}
