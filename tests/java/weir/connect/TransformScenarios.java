package weir.connect;

import com.fasterxml.jackson.databind.JsonNode;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.apache.kafka.common.record.TimestampType;
import org.apache.kafka.connect.connector.ConnectRecord;
import org.apache.kafka.connect.data.SchemaAndValue;
import org.apache.kafka.connect.header.ConnectHeaders;
import org.apache.kafka.connect.header.Header;
import org.apache.kafka.connect.json.JsonConverter;
import org.apache.kafka.connect.sink.SinkRecord;
import org.apache.kafka.connect.transforms.Transformation;
import org.apache.kafka.connect.transforms.predicates.Predicate;
import weir.harness.Harness;

/**
 * Kafka Connect 4.3's own transforms, predicates and JsonConverter applied
 * to records given as JSON, for the differential tests in
 * tests/test_connect_differential.py. The records and the answer have the
 * shape `weir connect transform` reads and prints: key, value and header
 * values as the JsonConverter reads and writes them.
 */
public final class TransformScenarios {
    private TransformScenarios() {}

    public static void main(String[] args) throws Exception {
        Harness.serve(Map.of("apply", TransformScenarios::apply));
    }

    private record Stage(Transformation<SinkRecord> transform, Predicate<SinkRecord> predicate, boolean negate) {}

    private static List<String> list(String v) {
        List<String> out = new ArrayList<>();
        if (v == null) {
            return out;
        }
        for (String s : v.split(",")) {
            if (!s.trim().isEmpty()) {
                out.add(s.trim());
            }
        }
        return out;
    }

    private static Map<String, String> prefixed(Map<String, String> config, String prefix) {
        Map<String, String> out = new HashMap<>();
        config.forEach((k, v) -> {
            if (k.startsWith(prefix)) {
                out.put(k.substring(prefix.length()), v);
            }
        });
        return out;
    }

    @SuppressWarnings("unchecked")
    private static <T> T instance(String cls) throws Exception {
        return (T) Class.forName(cls).getDeclaredConstructor().newInstance();
    }

    /** The chain as Kafka's ConnectorConfig builds it from `transforms` and `predicates`. */
    private static List<Stage> chain(Map<String, String> config) throws Exception {
        Map<String, Predicate<SinkRecord>> predicates = new HashMap<>();
        for (String alias : list(config.get("predicates"))) {
            Map<String, String> p = prefixed(config, "predicates." + alias + ".");
            Predicate<SinkRecord> pred = instance(p.get("type"));
            pred.configure(p);
            predicates.put(alias, pred);
        }
        List<Stage> stages = new ArrayList<>();
        for (String alias : list(config.get("transforms"))) {
            Map<String, String> p = prefixed(config, "transforms." + alias + ".");
            Transformation<SinkRecord> t = instance(p.get("type"));
            t.configure(p);
            Predicate<SinkRecord> pred = p.containsKey("predicate") ? predicates.get(p.get("predicate")) : null;
            stages.add(new Stage(t, pred, "true".equals(p.get("negate"))));
        }
        return stages;
    }

    private static byte[] bytes(JsonNode n) throws Exception {
        return n == null || n.isNull() || n.isMissingNode() ? null : Harness.JSON.writeValueAsBytes(n);
    }

    private static String text(byte[] b) {
        return b == null ? null : new String(b, StandardCharsets.UTF_8);
    }

    static Object apply(JsonNode args) throws Exception {
        Map<String, String> config = new LinkedHashMap<>();
        for (Iterator<Map.Entry<String, JsonNode>> it = args.path("config").fields(); it.hasNext(); ) {
            Map.Entry<String, JsonNode> e = it.next();
            config.put(e.getKey(), e.getValue().asText());
        }
        JsonConverter conv = new JsonConverter();
        conv.configure(Map.of("schemas.enable", String.valueOf(args.path("schemas_enable").asBoolean(true))), false);
        List<Stage> stages = chain(config);
        List<Object> out = new ArrayList<>();
        long index = 0;
        for (JsonNode r : args.path("records")) {
            long offset = r.has("offset") ? r.get("offset").asLong() : index;
            index++;
            try {
                String topic = r.path("topic").asText("topic");
                SchemaAndValue key = conv.toConnectData(topic, bytes(r.get("key")));
                SchemaAndValue value = conv.toConnectData(topic, bytes(r.get("value")));
                ConnectHeaders headers = new ConnectHeaders();
                for (JsonNode h : r.path("headers")) {
                    headers.add(h.get("key").asText(), conv.toConnectData(topic, bytes(h.get("value"))));
                }
                Long ts = r.has("timestamp") && !r.get("timestamp").isNull() ? r.get("timestamp").asLong() : null;
                SinkRecord rec = new SinkRecord(topic, r.path("partition").asInt(0), key.schema(), key.value(),
                        value.schema(), value.value(), offset, ts,
                        ts == null ? TimestampType.NO_TIMESTAMP_TYPE : TimestampType.CREATE_TIME, headers);
                for (Stage s : stages) {
                    if (s.predicate() != null && s.predicate().test(rec) == s.negate()) {
                        continue;
                    }
                    rec = s.transform().apply(rec);
                    if (rec == null) {
                        break;
                    }
                }
                if (rec == null) {
                    out.add(Harness.obj("dropped", true));
                    continue;
                }
                out.add(describe(conv, rec));
            } catch (Exception e) {
                out.add(Harness.obj("error", e.getClass().getName() + ": " + e.getMessage()));
            }
        }
        return out;
    }

    private static Map<String, Object> describe(JsonConverter conv, ConnectRecord<?> rec) {
        List<Object> headers = new ArrayList<>();
        for (Header h : rec.headers()) {
            headers.add(Harness.obj("key", h.key(),
                    "value", text(conv.fromConnectData(rec.topic(), h.schema(), h.value()))));
        }
        return Harness.obj(
                "topic", rec.topic(),
                "partition", rec.kafkaPartition(),
                "timestamp", rec.timestamp(),
                "key", text(conv.fromConnectData(rec.topic(), rec.keySchema(), rec.key())),
                "value", text(conv.fromConnectData(rec.topic(), rec.valueSchema(), rec.value())),
                "headers", headers);
    }
}
