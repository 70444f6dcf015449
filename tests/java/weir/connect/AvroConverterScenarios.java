package weir.connect;

import com.fasterxml.jackson.databind.JsonNode;
import io.confluent.connect.avro.AvroConverter;
import io.confluent.connect.avro.AvroData;
import io.confluent.connect.avro.AvroDataConfig;
import java.nio.charset.StandardCharsets;
import java.util.HashMap;
import java.util.HexFormat;
import java.util.Map;
import org.apache.kafka.connect.data.SchemaAndValue;
import org.apache.kafka.connect.json.JsonConverter;
import weir.harness.Harness;

/**
 * Confluent's AvroConverter (and the AvroData mapping under it) on Connect
 * data given as JsonConverter envelopes, for the differential tests in
 * tests/test_connect_converters.py:
 *
 * - schema: the Avro schema text AvroData makes of an envelope's schema;
 * - write: the bytes AvroConverter writes for an envelope (registering
 *   through the given registry), and the value's toString;
 * - read: what AvroConverter reads from bytes, as a JsonConverter envelope.
 */
public final class AvroConverterScenarios {
    private AvroConverterScenarios() {}

    public static void main(String[] args) throws Exception {
        Harness.serve(Map.of(
                "schema", AvroConverterScenarios::schema,
                "write", AvroConverterScenarios::write,
                "read", AvroConverterScenarios::read));
    }

    private static JsonConverter json() {
        JsonConverter c = new JsonConverter();
        c.configure(Map.of("schemas.enable", "true", "converter.type", "value"));
        return c;
    }

    private static AvroConverter avro(JsonNode args) {
        Map<String, Object> cfg = new HashMap<>();
        cfg.put("schema.registry.url", args.path("url").asText());
        args.path("config").fields().forEachRemaining(e -> cfg.put(e.getKey(), e.getValue().asText()));
        AvroConverter c = new AvroConverter();
        c.configure(cfg, false);
        return c;
    }

    private static SchemaAndValue envelope(JsonNode args) {
        return json().toConnectData("t", args.path("envelope").asText().getBytes(StandardCharsets.UTF_8));
    }

    static Object schema(JsonNode args) {
        SchemaAndValue d = envelope(args);
        AvroData data = new AvroData(new AvroDataConfig(Map.of()));
        return Harness.obj("avro", data.fromConnectSchema(d.schema()).toString());
    }

    static Object write(JsonNode args) {
        SchemaAndValue d = envelope(args);
        byte[] bytes = avro(args).fromConnectData(args.path("topic").asText(), d.schema(), d.value());
        return Harness.obj("hex", HexFormat.of().formatHex(bytes), "string", String.valueOf(d.value()));
    }

    static Object read(JsonNode args) {
        byte[] bytes = HexFormat.of().parseHex(args.path("hex").asText());
        SchemaAndValue d = avro(args).toConnectData(args.path("topic").asText(), bytes);
        byte[] env = json().fromConnectData("t", d.schema(), d.value());
        return Harness.obj("envelope", new String(env, StandardCharsets.UTF_8),
                "string", String.valueOf(d.value()));
    }
}
