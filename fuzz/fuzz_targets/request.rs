//! Arbitrary bytes as a request frame: decode, then dispatch to a broker on
//! a temporary directory. Nothing may panic.

#![no_main]

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::messages::RequestKind;
use libfuzzer_sys::fuzz_target;
use weir_broker::codec::{decode_request, Decoded};
use weir_broker::{Broker, BrokerConfig, BrokerSettings, Reply};

struct Harness {
    broker: Arc<Broker>,
    runtime: tokio::runtime::Runtime,
    _dir: tempfile::TempDir,
}

fn harness() -> &'static Harness {
    static H: OnceLock<Harness> = OnceLock::new();
    H.get_or_init(|| {
        let dir = tempfile::tempdir().expect("temp dir");
        let engine = weir_log::LocalEngine::open(weir_log::EngineConfig {
            data_dir: dir.path().to_path_buf(),
            ..weir_log::EngineConfig::default()
        })
        .expect("engine");
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        let broker = runtime
            .block_on(Broker::open(
                BrokerConfig {
                    node_id: 0,
                    data_dir: dir.path().to_path_buf(),
                    advertised_host: "127.0.0.1".into(),
                    advertised_port: 9092,
                    settings: BrokerSettings::default(),
                    clock: weir_log::Clock::system(),
                },
                engine,
            ))
            .expect("broker");
        Harness { broker, runtime, _dir: dir }
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(Decoded::Request { header, mut body }) = decode_request(Bytes::copy_from_slice(data)) else {
        return;
    };
    // Keep the fuzzer from filling the disk: admin requests only validate,
    // and Metadata does not auto-create.
    match &mut body {
        RequestKind::CreateTopics(r) => r.validate_only = true,
        RequestKind::CreatePartitions(r) => r.validate_only = true,
        RequestKind::Metadata(r) => r.allow_auto_topic_creation = false,
        RequestKind::DeleteTopics(_) | RequestKind::AlterConfigs(_) | RequestKind::IncrementalAlterConfigs(_) => return,
        _ => {}
    }
    let h = harness();
    if let Reply::Later(fut) = h.broker.handle(&header, body) {
        let _ = h.runtime.block_on(async { tokio::time::timeout(Duration::from_millis(5), fut).await });
    }
});
