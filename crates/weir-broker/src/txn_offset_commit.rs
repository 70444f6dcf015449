//! TxnOffsetCommit: offsets committed as part of a transaction. They are
//! written to `__consumer_offsets` as transactional records and take effect
//! only when the transaction's COMMIT marker reaches that partition. From
//! v5 (transaction version 2) the request also does what AddOffsetsToTxn
//! did: it adds the group's partition to the transaction.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::txn_offset_commit_response::{
    TxnOffsetCommitResponsePartition, TxnOffsetCommitResponseTopic,
};
use kafka_protocol::messages::{ResponseKind, TxnOffsetCommitRequest, TxnOffsetCommitResponse};

use crate::context::{Reply, RequestContext};
use crate::group_store::{Committed, OFFSETS_TOPIC};
use crate::groups::Groups;
use crate::internal_log::TxnProducer;
use crate::node::Node;
use crate::security::Security;
use crate::transactions::Transactions;
use weir_auth::acl::{AclOperation, ResourceType};

/// Answers a TxnOffsetCommit request. With authorization on, needs WRITE
/// on the transactional id, READ on the group, and READ on each topic
/// (TOPIC_AUTHORIZATION_FAILED for the partitions of a denied one, whose
/// offsets are not committed).
pub fn handle(
    groups: &Groups,
    txns: &Transactions,
    security: &Security,
    node: &Node,
    ctx: &RequestContext<'_>,
    r: TxnOffsetCommitRequest,
) -> Reply {
    let (version, session) = (ctx.version, ctx.session);
    let respond = |codes: &dyn Fn(&str, i32) -> i16| {
        let topics = r
            .topics
            .iter()
            .map(|t| {
                TxnOffsetCommitResponseTopic::default()
                    .with_name(t.name.clone())
                    .with_partitions(
                        t.partitions
                            .iter()
                            .map(|p| {
                                TxnOffsetCommitResponsePartition::default()
                                    .with_partition_index(p.partition_index)
                                    .with_error_code(codes(&t.name, p.partition_index))
                            })
                            .collect(),
                    )
            })
            .collect();
        TxnOffsetCommitResponse::default().with_topics(topics)
    };
    if !security.authorize(
        session,
        AclOperation::Write,
        ResourceType::TransactionalId,
        &r.transactional_id,
    ) {
        let code = ResponseError::TransactionalIdAuthorizationFailed.code();
        return Reply::Ready(ResponseKind::TxnOffsetCommit(respond(&|_, _| code)));
    }
    if !security.authorize(
        session,
        AclOperation::Read,
        ResourceType::Group,
        &r.group_id,
    ) {
        let code = ResponseError::GroupAuthorizationFailed.code();
        return Reply::Ready(ResponseKind::TxnOffsetCommit(respond(&|_, _| code)));
    }
    let denied: std::collections::HashSet<String> = r
        .topics
        .iter()
        .filter(|t| !security.authorize(session, AclOperation::Read, ResourceType::Topic, &t.name))
        .map(|t| t.name.to_string())
        .collect();
    if r.group_id.is_empty() {
        let code = ResponseError::InvalidGroupId.code();
        return Reply::Ready(ResponseKind::TxnOffsetCommit(respond(&|_, _| code)));
    }
    if !groups.owns(&r.group_id) {
        let code = ResponseError::NotCoordinator.code();
        return Reply::Ready(ResponseKind::TxnOffsetCommit(respond(&|_, _| code)));
    }
    // The group's partition must have been added (AddOffsetsToTxn, or from
    // v5 this request) by this producer, in an open transaction.
    let group_partition = groups.offsets_partition(&r.group_id);
    let added = if version >= 5 {
        txns.add_implicitly(
            &r.transactional_id,
            (r.producer_id.0, r.producer_epoch),
            &[(OFFSETS_TOPIC.to_string(), group_partition)],
        )
        .ok()
    } else {
        None
    };
    if let Err(e) = txns.verify(
        &r.transactional_id,
        (r.producer_id.0, r.producer_epoch),
        OFFSETS_TOPIC,
        group_partition,
        true,
    ) {
        // Clients before v4 do not know TRANSACTION_ABORTABLE (KIP-890).
        let e = match e {
            ResponseError::TransactionAbortable if version < 4 => ResponseError::InvalidTxnState,
            e => e,
        };
        let code = e.code();
        return Reply::Ready(ResponseKind::TxnOffsetCommit(respond(&|_, _| code)));
    }
    let now = node.now_ms();
    let entries = r
        .topics
        .iter()
        .filter(|t| !denied.contains(t.name.as_str()))
        .flat_map(|t| {
            t.partitions.iter().map(move |p| {
                (
                    t.name.to_string(),
                    p.partition_index,
                    Committed {
                        offset: p.committed_offset,
                        leader_epoch: if version >= 2 {
                            p.committed_leader_epoch
                        } else {
                            -1
                        },
                        metadata: p
                            .committed_metadata
                            .as_ref()
                            .map(|m| m.to_string())
                            .unwrap_or_default(),
                        commit_timestamp: now,
                    },
                )
            })
        })
        .collect();
    let (generation, member) = if version >= 3 {
        (r.generation_id, r.member_id.to_string())
    } else {
        (-1, String::new())
    };
    let (outcome, wait) = groups.commit(
        &r.group_id,
        generation,
        &member,
        r.group_instance_id.as_deref(),
        entries,
        Some(TxnProducer {
            producer_id: r.producer_id.0,
            epoch: r.producer_epoch,
        }),
    );
    let code_of = move |t: &str, p: i32| {
        if denied.contains(t) {
            return ResponseError::TopicAuthorizationFailed.code();
        }
        outcome
            .iter()
            .find(|(ot, op, _)| ot == t && *op == p)
            .map_or(0, |(_, _, c)| *c)
    };
    if wait.is_none() && added.is_none() {
        return Reply::Ready(ResponseKind::TxnOffsetCommit(respond(&code_of)));
    }
    let failed = |t: &str, p: i32| match code_of(t, p) {
        0 => ResponseError::CoordinatorNotAvailable.code(),
        c => c,
    };
    let ok = respond(&code_of);
    let bad = respond(&failed);
    Reply::Later(Box::pin(async move {
        // The transaction's record of the group's partition, then the
        // offsets, durable before the answer.
        let added = match added {
            Some(added) => added.await.is_ok(),
            None => true,
        };
        let committed = match wait {
            Some(wait) => wait.await.is_ok(),
            None => true,
        };
        ResponseKind::TxnOffsetCommit(if added && committed { ok } else { bad })
    }))
}
