//! The registry's error type: each variant is one of Confluent Schema
//! Registry's error codes, so clients that branch on `error_code` behave
//! as they do against Confluent's.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

/// A failed registry request or start-up.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// 40401.
    #[error("Subject '{0}' not found.")]
    SubjectNotFound(String),
    /// 40402.
    #[error("Version {0} not found.")]
    VersionNotFound(String),
    /// 40403.
    #[error("{0}")]
    SchemaNotFound(String),
    /// 40404.
    #[error("Subject '{0}' was soft deleted.Set permanent=true to delete permanently")]
    SubjectSoftDeleted(String),
    /// 40405.
    #[error("Subject '{0}' was not deleted first before being permanently deleted")]
    SubjectNotSoftDeleted(String),
    /// 40406.
    #[error("Subject '{0}' Version {1} was soft deleted.Set permanent=true to delete permanently")]
    VersionSoftDeleted(String, i32),
    /// 40407.
    #[error("Subject '{0}' Version {1} was not deleted first before being permanently deleted")]
    VersionNotSoftDeleted(String, i32),
    /// 40408.
    #[error("Subject '{0}' does not have subject-level compatibility configured")]
    SubjectConfigNotFound(String),
    /// 40409.
    #[error("Subject '{0}' does not have subject-level mode configured")]
    SubjectModeNotFound(String),
    /// 409.
    #[error("{0}")]
    Incompatible(String),
    /// 42201.
    #[error("Invalid schema {0}")]
    InvalidSchema(String),
    /// 42202.
    #[error("The specified version '{0}' is not a valid version id. Allowed values are between [1, 2^31-1] and the string \"latest\"")]
    InvalidVersion(String),
    /// 42203.
    #[error("Invalid compatibility level. Valid values are none, backward, forward, full, backward_transitive, forward_transitive, and full_transitive")]
    InvalidCompatibility,
    /// 42204.
    #[error("Invalid mode. Valid values are READWRITE, READONLY, IMPORT")]
    InvalidMode,
    /// 42205.
    #[error("{0}")]
    NotPermitted(String),
    /// 42206.
    #[error("One or more references exist to the schema {{subject={0},version={1}}}")]
    ReferenceExists(String, i32),
    /// 422: a request body that is not what the endpoint takes.
    #[error("{0}")]
    BadRequest(String),
    /// 404 without a registry code: no such endpoint.
    #[error("HTTP 404 Not Found")]
    NoSuchEndpoint,
    /// 405.
    #[error("HTTP 405 Method Not Allowed")]
    MethodNotAllowed,
    /// 415.
    #[error("HTTP 415 Unsupported Media Type")]
    UnsupportedMediaType,
    /// 50001: the log refused or failed a write.
    #[error("Error while storing the schema: {0}")]
    Store(String),
}

impl RegistryError {
    /// The HTTP status and Confluent `error_code`.
    pub fn codes(&self) -> (StatusCode, u32) {
        use RegistryError::*;
        match self {
            SubjectNotFound(_) => (StatusCode::NOT_FOUND, 40401),
            VersionNotFound(_) => (StatusCode::NOT_FOUND, 40402),
            SchemaNotFound(_) => (StatusCode::NOT_FOUND, 40403),
            SubjectSoftDeleted(_) => (StatusCode::NOT_FOUND, 40404),
            SubjectNotSoftDeleted(_) => (StatusCode::NOT_FOUND, 40405),
            VersionSoftDeleted(..) => (StatusCode::NOT_FOUND, 40406),
            VersionNotSoftDeleted(..) => (StatusCode::NOT_FOUND, 40407),
            SubjectConfigNotFound(_) => (StatusCode::NOT_FOUND, 40408),
            SubjectModeNotFound(_) => (StatusCode::NOT_FOUND, 40409),
            Incompatible(_) => (StatusCode::CONFLICT, 409),
            InvalidSchema(_) => (StatusCode::UNPROCESSABLE_ENTITY, 42201),
            InvalidVersion(_) => (StatusCode::UNPROCESSABLE_ENTITY, 42202),
            InvalidCompatibility => (StatusCode::UNPROCESSABLE_ENTITY, 42203),
            InvalidMode => (StatusCode::UNPROCESSABLE_ENTITY, 42204),
            NotPermitted(_) => (StatusCode::UNPROCESSABLE_ENTITY, 42205),
            ReferenceExists(..) => (StatusCode::UNPROCESSABLE_ENTITY, 42206),
            BadRequest(_) => (StatusCode::UNPROCESSABLE_ENTITY, 422),
            NoSuchEndpoint => (StatusCode::NOT_FOUND, 404),
            MethodNotAllowed => (StatusCode::METHOD_NOT_ALLOWED, 405),
            UnsupportedMediaType => (StatusCode::UNSUPPORTED_MEDIA_TYPE, 415),
            Store(_) => (StatusCode::INTERNAL_SERVER_ERROR, 50001),
        }
    }
}

impl IntoResponse for RegistryError {
    fn into_response(self) -> Response {
        let (status, code) = self.codes();
        let body = serde_json::json!({"error_code": code, "message": self.to_string()});
        crate::api::json_response(status, &body)
    }
}
