//! DescribeCluster: the cluster id, controller and brokers.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::{BrokerId, DescribeClusterRequest, DescribeClusterResponse};
use kafka_protocol::protocol::StrBytes;

use crate::broker::Broker;

/// `endpoint_type` asking for brokers (KIP-919).
const ENDPOINT_BROKERS: i8 = 1;

/// Answers a DescribeCluster request.
pub fn handle(broker: &Broker, req: DescribeClusterRequest) -> DescribeClusterResponse {
    let resp = DescribeClusterResponse::default()
        .with_endpoint_type(req.endpoint_type)
        .with_cluster_id(StrBytes::from_string(broker.cluster_id()))
        .with_cluster_authorized_operations(i32::MIN);
    if req.endpoint_type != ENDPOINT_BROKERS {
        return resp
            .with_error_code(ResponseError::UnsupportedEndpointType.code())
            .with_error_message(Some(StrBytes::from_static_str(
                "this node serves brokers, not controllers",
            )));
    }
    let (host, port) = broker.advertised();
    resp.with_controller_id(BrokerId(broker.node_id()))
        .with_brokers(vec![DescribeClusterBroker::default()
            .with_broker_id(BrokerId(broker.node_id()))
            .with_host(StrBytes::from_string(host.to_string()))
            .with_port(port)])
}
