//! The crate's error type, by who is at fault: the bytes given to
//! decode, the value or schema given to encode, the registry's answer,
//! the transport, or the configuration.

/// A failed framing, schema, serialization or registry operation.
#[derive(Debug, thiserror::Error)]
pub enum FormatError {
    /// The frame does not start with Confluent's magic byte 0.
    #[error("unknown magic byte {found}: a Confluent-framed record starts with 0")]
    UnknownMagicByte {
        /// The first byte found.
        found: u8,
    },
    /// The frame is shorter than its header.
    #[error("frame of {len} bytes is too short: the header needs {needed}")]
    ShortFrame {
        /// The frame's length.
        len: usize,
        /// The bytes its header needs.
        needed: usize,
    },
    /// The Protobuf message-index array is malformed.
    #[error("invalid message indexes: {reason}")]
    InvalidMessageIndexes {
        /// What is wrong with it.
        reason: String,
    },
    /// The registry knows no schema with this id.
    #[error("schema id {id} is not registered")]
    UnknownSchemaId {
        /// The id read from the frame or asked for.
        id: i32,
    },
    /// A schema does not parse or compile.
    #[error("invalid {schema_type} schema: {reason}")]
    InvalidSchema {
        /// AVRO, PROTOBUF or JSON.
        schema_type: &'static str,
        /// The parser's message.
        reason: String,
    },
    /// The schema's type is not the one this serializer handles.
    #[error("schema id {id} is a {found} schema, not {expected}")]
    WrongSchemaType {
        /// The schema's id.
        id: i32,
        /// The type the caller handles.
        expected: &'static str,
        /// The registered type.
        found: &'static str,
    },
    /// A value to encode does not fit its schema.
    #[error("the value does not match the schema: {reason}")]
    InvalidValue {
        /// Why.
        reason: String,
    },
    /// Bytes to decode are not valid under their schema.
    #[error("the payload does not decode with schema id {id}: {reason}")]
    InvalidPayload {
        /// The writer schema's id (0 when decoding without a frame).
        id: i32,
        /// Why.
        reason: String,
    },
    /// The subject name strategy cannot name a subject for this schema.
    #[error("no subject name: {reason}")]
    NoSubject {
        /// Why.
        reason: String,
    },
    /// The registry answered with an error.
    #[error("schema registry error {code} (HTTP {status}): {message}")]
    Registry {
        /// HTTP status.
        status: u16,
        /// Confluent's `error_code`.
        code: i64,
        /// Its `message`.
        message: String,
    },
    /// The registry could not be reached or answered something unreadable.
    #[error("schema registry request to {url} failed: {reason}")]
    Transport {
        /// The URL asked.
        url: String,
        /// What went wrong.
        reason: String,
    },
    /// `latest.compatibility.strict`: the subject's latest schema cannot
    /// read data written with the given schema (Confluent's message).
    #[error("Incompatible schema {latest} of type {schema_type} for schema {given}. Set latest.compatibility.strict=false to disable this check: {}", .reasons.join("; "))]
    IncompatibleLatest {
        /// The latest version's schema text.
        latest: String,
        /// Its type.
        schema_type: &'static str,
        /// The schema given to the serializer.
        given: String,
        /// The compatibility check's reasons.
        reasons: Vec<String>,
    },
    /// A configuration value is missing or invalid.
    #[error("invalid configuration `{key}`: {reason}")]
    Config {
        /// The configuration key, by Confluent's name.
        key: String,
        /// Why.
        reason: String,
    },
}

impl FormatError {
    pub(crate) fn schema(schema_type: &'static str, reason: impl ToString) -> Self {
        Self::InvalidSchema {
            schema_type,
            reason: reason.to_string(),
        }
    }

    pub(crate) fn value(reason: impl ToString) -> Self {
        Self::InvalidValue {
            reason: reason.to_string(),
        }
    }

    pub(crate) fn config(key: &str, reason: impl ToString) -> Self {
        Self::Config {
            key: key.to_string(),
            reason: reason.to_string(),
        }
    }

    /// The registry's `error_code`, when the registry answered one.
    pub fn registry_code(&self) -> Option<i64> {
        match self {
            Self::Registry { code, .. } => Some(*code),
            Self::UnknownSchemaId { .. } => Some(40403),
            _ => None,
        }
    }
}
