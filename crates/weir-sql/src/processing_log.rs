//! ksqlDB's processing log: a record that does not deserialize is written,
//! besides being skipped and counted, as a JSON event to the processing-log
//! topic (`<service id>ksql_processing_log`), which the
//! `KSQL_PROCESSING_LOG` stream reads. The events have the shape of
//! ksqlDB's (its log4j Kafka appender's JSON layout around its
//! `ProcessingLogRecord` struct), so queries written against ksqlDB's
//! stream work unchanged.

use base64::Engine as _;
use serde_json::{json, Value as J};

/// ksqlDB's default name of the processing-log stream.
pub const DEFAULT_STREAM: &str = "KSQL_PROCESSING_LOG";

/// Where a query writes its processing-log events.
#[derive(Debug, Clone)]
pub struct ProcessingLog {
    pub topic: String,
    /// `ksql.logging.processing.rows.include`: the undeserializable bytes
    /// go into the event (base64), as they may hold sensitive data.
    pub include_rows: bool,
}

impl ProcessingLog {
    /// The event for a record of `topic` whose key or value (`target`)
    /// did not deserialize, logged by query `query_id` at `time` (ms).
    pub fn deserialization_error(
        &self,
        query_id: &str,
        topic: &str,
        target: &str,
        bytes: Option<&[u8]>,
        error: &str,
        time: i64,
    ) -> Vec<u8> {
        let record = match (self.include_rows, bytes) {
            (true, Some(b)) => J::String(base64::engine::general_purpose::STANDARD.encode(b)),
            _ => J::Null,
        };
        json!({
            "level": "ERROR",
            "logger": format!("processing.{query_id}.KsqlTopic.Source.deserializer"),
            "time": time,
            "message": {
                "type": 0,
                "deserializationError": {
                    "target": target,
                    "errorMessage": format!("Failed to deserialize {target} from topic: {topic}. {error}"),
                    "recordB64": record,
                    "cause": [error],
                    "topic": topic,
                },
                "recordProcessingError": null,
                "productionError": null,
                "serializationError": null,
                "kafkaStreamsThreadError": null,
            },
        })
        .to_string()
        .into_bytes()
    }
}

/// The CREATE STREAM of the processing-log stream over `topic`, with
/// ksqlDB's columns (ksqlDB names the topic field in lower case).
pub fn create_stream_statement(stream: &str, topic: &str) -> String {
    format!(
        "CREATE STREAM {stream} (LOGGER STRING, LEVEL STRING, `TIME` BIGINT, MESSAGE STRUCT<\
         TYPE INT, \
         DESERIALIZATIONERROR STRUCT<TARGET STRING, ERRORMESSAGE STRING, RECORDB64 STRING, CAUSE ARRAY<STRING>, `topic` STRING>, \
         RECORDPROCESSINGERROR STRUCT<ERRORMESSAGE STRING, RECORD STRING, CAUSE ARRAY<STRING>>, \
         PRODUCTIONERROR STRUCT<ERRORMESSAGE STRING>, \
         SERIALIZATIONERROR STRUCT<TARGET STRING, ERRORMESSAGE STRING, RECORD STRING, CAUSE ARRAY<STRING>, `topic` STRING>, \
         KAFKASTREAMSTHREADERROR STRUCT<ERRORMESSAGE STRING, THREADNAME STRING, CAUSE ARRAY<STRING>>>) \
         WITH (KAFKA_TOPIC='{topic}', VALUE_FORMAT='JSON');"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_shape() {
        let log = ProcessingLog {
            topic: "default_ksql_processing_log".into(),
            include_rows: true,
        };
        let e = log.deserialization_error("CSAS_X_0", "t", "value", Some(b"{x"), "JSON: bad", 7);
        let v: J = serde_json::from_slice(&e).unwrap();
        assert_eq!(
            v["logger"],
            "processing.CSAS_X_0.KsqlTopic.Source.deserializer"
        );
        assert_eq!(v["time"], 7);
        let d = &v["message"]["deserializationError"];
        assert_eq!(d["recordB64"], "e3g=");
        assert_eq!(d["cause"], json!(["JSON: bad"]));
        assert_eq!(v["message"]["type"], 0);
        let quiet = ProcessingLog {
            include_rows: false,
            ..log
        };
        let e = quiet.deserialization_error("q", "t", "key", Some(b"x"), "m", 1);
        let v: J = serde_json::from_slice(&e).unwrap();
        assert!(v["message"]["deserializationError"]["recordB64"].is_null());
    }

    #[test]
    fn stream_statement_parses() {
        let text = create_stream_statement(DEFAULT_STREAM, "default_ksql_processing_log");
        crate::parser::parse_one(&text, &Default::default()).unwrap();
    }
}
