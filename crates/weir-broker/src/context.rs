//! What a handler receives besides its request body and the services it
//! uses: the request's context, and the shape of its answer. Handlers
//! take these and services, never the `Broker`, so they depend on nothing
//! that depends on them. Handlers whose answer waits (Fetch, ListOffsets,
//! DeleteRecords) take the version and an owned session instead, since
//! their future outlives the borrowed context.

use kafka_protocol::messages::ResponseKind;
use weir_auth::Session;
use weir_log::BoxFuture;

/// One request's context: its version, the client's id and the
/// authenticated session it came in on.
#[derive(Debug, Clone, Copy)]
pub struct RequestContext<'a> {
    /// The request's API version.
    pub version: i16,
    /// The header's `client_id` (empty when absent).
    pub client_id: &'a str,
    /// Who sent it, from where and on which listener.
    pub session: &'a Session,
}

/// The answer to a request.
// One Reply is built and consumed per request; boxing the ready variant
// would add an allocation for nothing.
#[allow(clippy::large_enum_variant)]
pub enum Reply {
    /// No response is sent (Produce with acks=0).
    None,
    /// No response is sent and the connection closes once the replies
    /// before this one are out: an acks=0 Produce that failed, which its
    /// client learns of only this way (Kafka's `closeConnection`).
    Close,
    /// The response is ready.
    Ready(ResponseKind),
    /// The response comes later (durability, long polling). The work that
    /// must happen in request order has already been done.
    Later(BoxFuture<'static, ResponseKind>),
}

impl std::fmt::Debug for Reply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Reply::None => f.write_str("Reply::None"),
            Reply::Close => f.write_str("Reply::Close"),
            Reply::Ready(r) => write!(f, "Reply::Ready({r:?})"),
            Reply::Later(_) => f.write_str("Reply::Later(..)"),
        }
    }
}
