//! The crate's one error type, by who is at fault.

/// Everything that can go wrong in weir-sql.
#[derive(Debug, thiserror::Error)]
pub enum SqlError {
    /// The statement does not parse (the user's text).
    #[error("line {line}:{col}: Syntax Error\n{message}")]
    Syntax {
        line: usize,
        col: usize,
        message: String,
    },
    /// The statement parses but is not valid: unknown sources or columns,
    /// type errors, unsupported combinations (the user's statement).
    #[error("{message}")]
    Invalid { message: String },
    /// A function name with no implementation.
    #[error("Can't find any functions with the name '{name}'")]
    UnknownFunction { name: String },
    /// A record that does not deserialize with its source's format (the
    /// data's fault; skipped and counted by queries).
    #[error("{format}: {message}")]
    Serde {
        format: &'static str,
        message: String,
    },
    /// The Kafka cluster refused or failed an operation.
    #[error("Kafka {operation}: {message}")]
    Kafka { operation: String, message: String },
    /// The cluster's authorizer refused the server's principal an
    /// operation (answered 403, ksqlDB's 40301).
    #[error("{message}")]
    Authorization { message: String },
    /// A bug in Weir.
    #[error("internal error: {message}")]
    Internal { message: String },
}

impl SqlError {
    /// An `Invalid` error from any message.
    pub fn invalid(message: impl Into<String>) -> Self {
        SqlError::Invalid {
            message: message.into(),
        }
    }

    /// A `Serde` error for `format`.
    pub fn serde(format: &'static str, message: impl std::fmt::Display) -> Self {
        SqlError::Serde {
            format,
            message: message.to_string(),
        }
    }

    /// A `Kafka` error for `operation`.
    pub fn kafka(operation: impl Into<String>, message: impl std::fmt::Display) -> Self {
        SqlError::Kafka {
            operation: operation.into(),
            message: message.to_string(),
        }
    }

    /// Whether the user's statement (rather than the cluster or Weir) is
    /// at fault: answered 400 with ksqlDB's statement_error.
    pub fn is_user_error(&self) -> bool {
        matches!(
            self,
            SqlError::Syntax { .. } | SqlError::Invalid { .. } | SqlError::UnknownFunction { .. }
        )
    }
}

/// The crate's result type.
pub type Result<T, E = SqlError> = std::result::Result<T, E>;
