package weir.connect;

import com.fasterxml.jackson.databind.JsonNode;
import java.util.HashMap;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import org.apache.kafka.common.utils.Time;
import org.apache.kafka.connect.connector.policy.AllConnectorClientConfigOverridePolicy;
import org.apache.kafka.connect.json.JsonConverter;
import org.apache.kafka.connect.runtime.Worker;
import org.apache.kafka.connect.runtime.isolation.Plugins;
import org.apache.kafka.connect.runtime.rest.entities.ConfigInfos;
import org.apache.kafka.connect.runtime.rest.entities.ConnectorOffsets;
import org.apache.kafka.connect.runtime.rest.entities.Message;
import org.apache.kafka.connect.runtime.rest.errors.BadRequestException;
import org.apache.kafka.connect.runtime.standalone.StandaloneConfig;
import org.apache.kafka.connect.runtime.standalone.StandaloneHerder;
import org.apache.kafka.connect.storage.FileOffsetBackingStore;
import org.apache.kafka.connect.util.FutureCallback;
import weir.harness.Harness;

/**
 * A Kafka Connect 4.3 standalone worker without its REST server (the wheel
 * lacks Jetty 12's jetty-security, which the server needs): the herder
 * that the REST resources call, driven one scenario a line. Results are
 * the REST layer's own entities (ConfigInfos, ConnectorInfo, ...),
 * serialised by Jackson as the REST layer serialises them.
 *
 * Args: bootstrap servers, an offsets file, then worker settings as
 * key=value.
 */
public final class HerderScenarios {
    private HerderScenarios() {}

    private static StandaloneHerder herder;

    public static void main(String[] args) throws Exception {
        Map<String, String> props = new HashMap<>();
        props.put("bootstrap.servers", args[0]);
        props.put("offset.storage.file.filename", args[1]);
        props.put("key.converter", "org.apache.kafka.connect.storage.StringConverter");
        props.put("value.converter", "org.apache.kafka.connect.storage.StringConverter");
        props.put("offset.flush.interval.ms", "1000");
        for (int i = 2; i < args.length; i++) {
            String[] kv = args[i].split("=", 2);
            props.put(kv[0], kv[1]);
        }
        Plugins plugins = new Plugins(props);
        plugins.compareAndSwapWithDelegatingLoader();
        StandaloneConfig config = new StandaloneConfig(props);
        JsonConverter offsets = new JsonConverter();
        offsets.configure(Map.of("schemas.enable", "false"), true);
        FileOffsetBackingStore store = new FileOffsetBackingStore(offsets);
        store.configure(config);
        AllConnectorClientConfigOverridePolicy policy = new AllConnectorClientConfigOverridePolicy();
        Worker worker = new Worker("127.0.0.1:0", Time.SYSTEM, plugins, config, store, policy);
        herder = new StandaloneHerder(worker, config.kafkaClusterId(), policy);
        herder.start();
        try {
            Harness.serve(Map.of(
                    "validate", a -> {
                        FutureCallback<ConfigInfos> cb = new FutureCallback<>();
                        herder.validateConnectorConfig(config(a.path("config")), cb);
                        return cb.get(60, TimeUnit.SECONDS);
                    },
                    "plugin_config", a -> herder.connectorPluginConfig(a.path("plugin").asText()),
                    "create", a -> {
                        FutureCallback<Object> cb = new FutureCallback<>();
                        herder.putConnectorConfig(a.path("name").asText(), config(a.path("config")), false,
                                (e, r) -> cb.onCompletion(e, r == null ? null : r.result()));
                        return cb.get(60, TimeUnit.SECONDS);
                    },
                    "info", a -> herder.connectorInfo(a.path("name").asText()),
                    "status", a -> herder.connectorStatus(a.path("name").asText()),
                    "stop", a -> {
                        FutureCallback<Void> cb = new FutureCallback<>();
                        herder.stopConnector(a.path("name").asText(), cb);
                        return await(cb);
                    },
                    "offsets", a -> {
                        FutureCallback<ConnectorOffsets> cb = new FutureCallback<>();
                        herder.connectorOffsets(a.path("name").asText(), cb);
                        return await(cb);
                    },
                    "alter_offsets", a -> {
                        // As the REST resource parses its body.
                        ConnectorOffsets body = Harness.JSON.treeToValue(a.path("body"), ConnectorOffsets.class);
                        if (body.offsets() == null || body.offsets().isEmpty()) {
                            throw new BadRequestException("Partitions / offsets need to be provided for an alter offsets request");
                        }
                        FutureCallback<Message> cb = new FutureCallback<>();
                        herder.alterConnectorOffsets(a.path("name").asText(), body.toMap(), cb);
                        return await(cb);
                    },
                    "reset_offsets", a -> {
                        FutureCallback<Message> cb = new FutureCallback<>();
                        herder.resetConnectorOffsets(a.path("name").asText(), cb);
                        return await(cb);
                    },
                    "delete", a -> {
                        FutureCallback<Object> cb = new FutureCallback<>();
                        herder.deleteConnectorConfig(a.path("name").asText(), (e, r) -> cb.onCompletion(e, null));
                        cb.get(60, TimeUnit.SECONDS);
                        return Harness.obj("deleted", a.path("name").asText());
                    }));
        } finally {
            herder.stop();
        }
    }

    /** The callback's result, or the exception the herder failed it with. */
    private static <T> T await(FutureCallback<T> cb) throws Exception {
        try {
            return cb.get(60, TimeUnit.SECONDS);
        } catch (ExecutionException e) {
            throw e.getCause() instanceof Exception x ? x : e;
        }
    }

    private static Map<String, String> config(JsonNode n) {
        Map<String, String> out = new LinkedHashMap<>();
        for (Iterator<Map.Entry<String, JsonNode>> it = n.fields(); it.hasNext(); ) {
            Map.Entry<String, JsonNode> e = it.next();
            out.put(e.getKey(), e.getValue().asText());
        }
        return out;
    }
}
