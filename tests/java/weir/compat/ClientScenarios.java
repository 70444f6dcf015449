package weir.compat;

import static weir.harness.Harness.obj;

import com.fasterxml.jackson.databind.JsonNode;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.concurrent.TimeUnit;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.admin.TopicDescription;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.clients.producer.RecordMetadata;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.apache.kafka.common.serialization.StringSerializer;
import weir.harness.Harness;

/**
 * Kafka's Java client (kafka-clients 4.3) against a broker, one scenario
 * per command (driven by tests/test_java_client.py). Usage: ClientScenarios
 * BOOTSTRAP.
 */
public final class ClientScenarios {
    static String bootstrap;

    public static void main(String[] argv) throws Exception {
        bootstrap = argv[0];
        Map<String, Harness.Scenario> s = new HashMap<>();
        s.put("create_and_describe", ClientScenarios::createAndDescribe);
        s.put("roundtrip", ClientScenarios::roundtrip);
        Harness.serve(s);
    }

    /** Client properties: the bootstrap, then `kv` pairs, then `extra`. */
    static Properties props(Map<String, String> extra, String... kv) {
        Properties p = new Properties();
        p.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        p.put(AdminClientConfig.CLIENT_ID_CONFIG, "weir-java-tests");
        for (int i = 0; i + 1 < kv.length; i += 2) {
            p.put(kv[i], kv[i + 1]);
        }
        p.putAll(extra);
        return p;
    }

    static Admin admin() {
        return Admin.create(props(Map.of(), AdminClientConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, "30000"));
    }

    static KafkaProducer<String, String> producer(Map<String, String> extra) {
        return new KafkaProducer<>(props(extra,
            ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName(),
            ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName(),
            ProducerConfig.LINGER_MS_CONFIG, "5",
            ProducerConfig.DELIVERY_TIMEOUT_MS_CONFIG, "60000"));
    }

    static KafkaConsumer<String, String> consumer(Map<String, String> extra) {
        return new KafkaConsumer<>(props(extra,
            ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName(),
            ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName(),
            ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest",
            ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false"));
    }

    static Map<String, String> strings(JsonNode node) {
        Map<String, String> m = new LinkedHashMap<>();
        node.fields().forEachRemaining(e -> m.put(e.getKey(), e.getValue().asText()));
        return m;
    }

    static Object describe(TopicDescription d) {
        List<Object> parts = new ArrayList<>();
        d.partitions().forEach(p -> parts.add(obj("partition", p.partition(),
            "leader", p.leader() == null ? -1 : p.leader().id(), "replicas", p.replicas().size())));
        return obj("name", d.name(), "topic_id", d.topicId().toString(), "internal", d.isInternal(),
            "partitions", parts);
    }

    /** CreateTopics, then describeTopics by name; args: topic, partitions. */
    static Object createAndDescribe(JsonNode args) throws Exception {
        String topic = args.get("topic").asText();
        try (Admin a = admin()) {
            a.createTopics(List.of(new NewTopic(topic, args.get("partitions").asInt(), (short) 1)))
                .all().get(30, TimeUnit.SECONDS);
            TopicDescription d = a.describeTopics(List.of(topic)).allTopicNames()
                .get(30, TimeUnit.SECONDS).get(topic);
            return describe(d);
        }
    }

    /**
     * Produces `count` keyed records to partition 0 with the given producer
     * configs, then reads them back with an assigned consumer; returns what
     * was acknowledged and what was read. args: topic, count, producer,
     * consumer.
     */
    static Object roundtrip(JsonNode args) throws Exception {
        String topic = args.get("topic").asText();
        int count = args.get("count").asInt();
        List<Object> acked = new ArrayList<>();
        try (KafkaProducer<String, String> p = producer(strings(args.path("producer")))) {
            List<java.util.concurrent.Future<RecordMetadata>> fs = new ArrayList<>();
            for (int i = 0; i < count; i++) {
                fs.add(p.send(new ProducerRecord<>(topic, 0, "k" + i, "value-" + i + "-" + "x".repeat(i % 50))));
            }
            for (var f : fs) {
                acked.add(f.get(60, TimeUnit.SECONDS).offset());
            }
        }
        List<Object> read = new ArrayList<>();
        TopicPartition tp = new TopicPartition(topic, 0);
        try (KafkaConsumer<String, String> c = consumer(strings(args.path("consumer")))) {
            c.assign(List.of(tp));
            c.seekToBeginning(List.of(tp));
            long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(60);
            while (read.size() < count && System.nanoTime() < deadline) {
                for (ConsumerRecord<String, String> r : c.poll(Duration.ofMillis(200))) {
                    read.add(obj("offset", r.offset(), "key", r.key(), "value", r.value()));
                }
            }
        }
        return obj("acked", acked, "read", read);
    }
}
