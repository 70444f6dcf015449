//! ListOffsets: earliest, latest, by timestamp and max timestamp.

use kafka_protocol::error::ResponseError;
use std::sync::Arc;

use kafka_protocol::messages::list_offsets_request::ListOffsetsPartition;
use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::{ListOffsetsRequest, ListOffsetsResponse};

use crate::error::log_error_code;
use crate::security::Security;
use crate::topics::Topics;
use weir_log::{LogError, PartitionLog};

const LATEST: i64 = -1;
const EARLIEST: i64 = -2;
const MAX_TIMESTAMP: i64 = -3;
const EARLIEST_LOCAL: i64 = -4;
const LATEST_TIERED: i64 = -5;
const EARLIEST_PENDING_UPLOAD: i64 = -6;
const READ_COMMITTED: i8 = 1;

/// Answers a ListOffsets request.
///
/// With authorization on, each topic needs DESCRIBE.
pub async fn handle(
    topics: &Topics,
    security: &Security,
    version: i16,
    session: &weir_auth::Session,
    req: ListOffsetsRequest,
) -> ListOffsetsResponse {
    let mut out = Vec::with_capacity(req.topics.len());
    for t in req.topics {
        let topic = topics.topic(&t.name);
        let denied = !security.authorize(
            session,
            weir_auth::acl::AclOperation::Describe,
            weir_auth::acl::ResourceType::Topic,
            &t.name,
        );
        let mut partitions = Vec::with_capacity(t.partitions.len());
        for p in t.partitions {
            let log = match &topic {
                Some(t) => t.open_partition(p.partition_index).map(|l| l.cloned()),
                None => Ok(None),
            };
            let committed = req.isolation_level == READ_COMMITTED;
            partitions.push(partition(log, denied, &p, version, committed).await);
        }
        out.push(
            ListOffsetsTopicResponse::default()
                .with_name(t.name)
                .with_partitions(partitions),
        );
    }
    ListOffsetsResponse::default().with_topics(out)
}

/// One partition's answer; a lookup by timestamp waits on storage.
async fn partition(
    log: Result<Option<Arc<dyn PartitionLog>>, LogError>,
    denied: bool,
    p: &ListOffsetsPartition,
    version: i16,
    read_committed: bool,
) -> ListOffsetsPartitionResponse {
    let out = ListOffsetsPartitionResponse::default()
        .with_partition_index(p.partition_index)
        .with_timestamp(-1)
        .with_offset(-1);
    if denied {
        return out.with_error_code(ResponseError::TopicAuthorizationFailed.code());
    }
    let log = match log {
        Ok(Some(log)) => log,
        Ok(None) => return out.with_error_code(ResponseError::UnknownTopicOrPartition.code()),
        Err(_) => return out.with_error_code(ResponseError::KafkaStorageError.code()),
    };
    if let Some(e) = crate::check_leader_epoch(p.current_leader_epoch) {
        return out.with_error_code(e.code());
    }
    let epoch = |o: ListOffsetsPartitionResponse, e: i32| {
        if version >= 4 {
            o.with_leader_epoch(e)
        } else {
            o
        }
    };
    let offsets = log.offsets();
    let found = match p.timestamp {
        LATEST => {
            let o = if read_committed {
                offsets.last_stable
            } else {
                offsets.high_watermark
            };
            Ok(Some((-1, o, crate::LEADER_EPOCH)))
        }
        EARLIEST | EARLIEST_LOCAL => Ok(Some((-1, offsets.log_start, crate::LEADER_EPOCH))),
        // No tiered storage yet: nothing is tiered, and nothing waits for
        // upload (KIP-1023, v11).
        LATEST_TIERED => Ok(None),
        EARLIEST_PENDING_UPLOAD if version >= 11 => Ok(None),
        MAX_TIMESTAMP => log
            .max_timestamp()
            .await
            .map(|f| f.map(|f| (f.timestamp, f.offset, f.leader_epoch))),
        ts if ts >= 0 => log
            .offset_for_timestamp(ts)
            .await
            .map(|f| f.map(|f| (f.timestamp, f.offset, f.leader_epoch))),
        _ => return out.with_error_code(ResponseError::InvalidRequest.code()),
    };
    match found {
        Ok(Some((ts, offset, e))) => epoch(out.with_timestamp(ts).with_offset(offset), e),
        Ok(None) => out,
        Err(e) => out.with_error_code(log_error_code(&e)),
    }
}
