//! DescribeProducers: the producers a partition keeps idempotence and
//! transaction state for (what `kafka-transactions.sh describe-producers`
//! shows, e.g. to find a hanging transaction).

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_producers_response::{
    PartitionResponse, ProducerState, TopicResponse,
};
use kafka_protocol::messages::{DescribeProducersRequest, DescribeProducersResponse, ProducerId};
use kafka_protocol::protocol::StrBytes;

use crate::context::RequestContext;
use crate::security::Security;
use crate::topics::Topics;
use weir_auth::acl::{AclOperation, ResourceType};

/// Answers a DescribeProducers request. With authorization on, each topic
/// needs READ, as in Kafka.
pub fn handle(
    topics: &Topics,
    security: &Security,
    ctx: &RequestContext<'_>,
    req: DescribeProducersRequest,
) -> DescribeProducersResponse {
    let session = ctx.session;
    let topics = req
        .topics
        .into_iter()
        .map(|t| {
            let topic = topics.topic(&t.name);
            let denied =
                !security.authorize(session, AclOperation::Read, ResourceType::Topic, &t.name);
            let partitions = t
                .partition_indexes
                .into_iter()
                .map(|p| {
                    let resp = PartitionResponse::default().with_partition_index(p);
                    if denied {
                        return resp
                            .with_error_code(ResponseError::TopicAuthorizationFailed.code());
                    }
                    let Some(log) = topic.as_ref().and_then(|x| x.partition(p)) else {
                        return resp.with_error_code(ResponseError::UnknownTopicOrPartition.code());
                    };
                    let mut producers = match log.producers() {
                        Ok(p) => p,
                        // Cluster mode keeps them in PostgreSQL, which
                        // may be out of reach for a moment.
                        Err(e) => {
                            tracing::warn!(error = %e, "cannot read the partition's producers");
                            return resp
                                .with_error_code(ResponseError::KafkaStorageError.code())
                                .with_error_message(Some(StrBytes::from_string(e.to_string())));
                        }
                    };
                    producers.sort_by_key(|(id, _)| *id);
                    resp.with_active_producers(
                        producers
                            .into_iter()
                            .map(|(id, e)| {
                                ProducerState::default()
                                    .with_producer_id(ProducerId(id))
                                    .with_producer_epoch(i32::from(e.epoch))
                                    .with_last_sequence(e.last_seq())
                                    .with_last_timestamp(e.last_timestamp)
                                    .with_coordinator_epoch(e.coordinator_epoch)
                                    .with_current_txn_start_offset(e.txn_first_offset.unwrap_or(-1))
                            })
                            .collect(),
                    )
                })
                .collect();
            TopicResponse::default()
                .with_name(t.name)
                .with_partitions(partitions)
        })
        .collect();
    DescribeProducersResponse::default().with_topics(topics)
}
