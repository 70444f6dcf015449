//! The cluster engine's errors when it starts; once running, its calls
//! answer with the storage contract's `LogError`.

/// What can go wrong setting up or running the cluster engine.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// The `--object-store` URL is not one this build understands.
    #[error("object store URL {url}: {reason}")]
    StoreUrl {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The object store refused or failed a call.
    #[error("object store: {0}")]
    Store(#[from] object_store::Error),
    /// PostgreSQL refused or failed a call.
    #[error("PostgreSQL: {}", describe_pg(.0))]
    Postgres(#[from] tokio_postgres::Error),
    /// The `--cluster` URL's TLS settings (`sslmode`, `sslrootcert`,
    /// `sslcert`, `sslkey`) cannot be used.
    #[error("PostgreSQL TLS: {0}")]
    PgTls(String),
    /// An intake object does not parse.
    #[error("intake object: {0}")]
    Format(String),
    /// The engine's own runtime could not start, or stopped.
    #[error("cluster engine runtime: {0}")]
    Runtime(String),
}

/// A PostgreSQL error with the server's own message, which the client's
/// `Display` leaves out ("db error").
pub(crate) fn describe_pg(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!(
            "{e}: {} {}: {}",
            db.severity(),
            db.code().code(),
            db.message()
        ),
        None => match std::error::Error::source(e) {
            Some(cause) => format!("{e}: {cause}"),
            None => e.to_string(),
        },
    }
}

impl From<ClusterError> for weir_storage::LogError {
    fn from(e: ClusterError) -> Self {
        match e {
            ClusterError::Format(reason) => weir_storage::LogError::CorruptState {
                path: "intake object".into(),
                reason,
            },
            // Database and store failures are the environment's: Kafka's
            // KAFKA_STORAGE_ERROR, which producers retry.
            other => weir_storage::LogError::Io {
                path: "cluster storage".into(),
                source: std::io::Error::other(other.to_string()),
            },
        }
    }
}
