//! DeleteRecords: move a partition's log start offset forward.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::delete_records_response::{
    DeleteRecordsPartitionResult, DeleteRecordsTopicResult,
};
use kafka_protocol::messages::{DeleteRecordsRequest, DeleteRecordsResponse};

use weir_auth::Session;

use crate::error::log_error_code;
use crate::security::Security;
use crate::topics::Topics;

/// Answers a DeleteRecords request. Offset `-1` means the high watermark.
///
/// With authorization on, each topic needs DELETE.
pub async fn handle(
    topics: &Topics,
    security: &Security,
    session: &Session,
    req: DeleteRecordsRequest,
) -> DeleteRecordsResponse {
    let mut results = Vec::with_capacity(req.topics.len());
    for t in req.topics {
        let topic = topics.topic(&t.name);
        let denied = !security.authorize(
            session,
            weir_auth::acl::AclOperation::Delete,
            weir_auth::acl::ResourceType::Topic,
            &t.name,
        );
        let mut partitions = Vec::with_capacity(t.partitions.len());
        for p in t.partitions {
            let out = DeleteRecordsPartitionResult::default()
                .with_partition_index(p.partition_index)
                .with_low_watermark(-1);
            let log = topic
                .as_ref()
                .map(|t| t.open_partition(p.partition_index).map(|l| l.cloned()));
            partitions.push(match log {
                _ if denied => out.with_error_code(ResponseError::TopicAuthorizationFailed.code()),
                Some(Err(_)) => out.with_error_code(ResponseError::KafkaStorageError.code()),
                None | Some(Ok(None)) => {
                    out.with_error_code(ResponseError::UnknownTopicOrPartition.code())
                }
                Some(Ok(Some(log))) => {
                    let hw = log.offsets().high_watermark;
                    let target = if p.offset == -1 { hw } else { p.offset };
                    if target < 0 || target > hw {
                        out.with_error_code(ResponseError::OffsetOutOfRange.code())
                    } else {
                        match log.delete_records(target).await {
                            Ok(low) => out.with_low_watermark(low),
                            Err(e) => out.with_error_code(log_error_code(&e)),
                        }
                    }
                }
            });
        }
        results.push(
            DeleteRecordsTopicResult::default()
                .with_name(t.name)
                .with_partitions(partitions),
        );
    }
    let resp = DeleteRecordsResponse::default().with_topics(results);
    for t in &resp.topics {
        for p in &t.partitions {
            let resource = format!("topic:{}-{}", t.name.as_str(), p.partition_index);
            security.audit_admin(session, "DeleteRecords", resource, p.error_code);
        }
    }
    resp
}
