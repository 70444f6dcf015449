package weir.share;

import static weir.harness.Harness.obj;

import com.fasterxml.jackson.databind.JsonNode;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Collections;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Properties;
import java.util.Set;
import java.util.TreeMap;
import java.util.TreeSet;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.AlterConfigOp;
import org.apache.kafka.clients.admin.ConfigEntry;
import org.apache.kafka.clients.admin.GroupListing;
import org.apache.kafka.clients.admin.ListGroupsOptions;
import org.apache.kafka.clients.admin.ListShareGroupOffsetsSpec;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.admin.ShareGroupDescription;
import org.apache.kafka.clients.admin.SharePartitionOffsetInfo;
import org.apache.kafka.clients.consumer.AcknowledgeType;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.ConsumerRecords;
import org.apache.kafka.clients.consumer.KafkaShareConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.KafkaException;
import org.apache.kafka.common.TopicIdPartition;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.config.ConfigResource;
import org.apache.kafka.common.errors.TopicExistsException;
import org.apache.kafka.clients.admin.OffsetSpec;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.apache.kafka.common.serialization.StringSerializer;
import weir.harness.Harness;

/**
 * Share groups (KIP-932) through Kafka's own clients (kafka-clients 4.3):
 * KafkaShareConsumer and the admin client's share-group APIs, one scenario
 * per command (driven by tests/test_share_groups.py). Usage: ShareScenarios
 * BOOTSTRAP.
 */
public final class ShareScenarios {
    static String bootstrap;
    /** Consumers kept open across scenarios, by name. */
    static final Map<String, KafkaShareConsumer<String, String>> open = new ConcurrentHashMap<>();

    public static void main(String[] argv) throws Exception {
        bootstrap = argv[0];
        Map<String, Harness.Scenario> s = new HashMap<>();
        s.put("configure_group", ShareScenarios::configureGroup);
        s.put("produce", ShareScenarios::produce);
        s.put("split", ShareScenarios::split);
        s.put("ack_types", ShareScenarios::ackTypes);
        s.put("hold", ShareScenarios::hold);
        s.put("open", ShareScenarios::openConsumer);
        s.put("consume", ShareScenarios::consume);
        s.put("close", ShareScenarios::closeConsumer);
        s.put("describe_group", ShareScenarios::describeGroup);
        s.put("list_offsets", ShareScenarios::listOffsets);
        s.put("alter_offsets", ShareScenarios::alterOffsets);
        s.put("delete_offsets", ShareScenarios::deleteOffsets);
        s.put("delete_group", ShareScenarios::deleteGroup);
        s.put("list_share_groups", ShareScenarios::listShareGroups);
        s.put("produce_txn", ShareScenarios::produceTxn);
        s.put("produce_aged", ShareScenarios::produceAged);
        s.put("drain", ShareScenarios::drain);
        s.put("renew", ShareScenarios::renew);
        s.put("first_poll", ShareScenarios::firstPoll);
        s.put("describe_as_consumer_group", ShareScenarios::describeAsConsumerGroup);
        s.put("share_across", ShareScenarios::shareAcross);
        Harness.serve(s);
    }

    static Properties props(Map<String, String> extra) {
        Properties p = new Properties();
        p.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        p.putAll(extra);
        return p;
    }

    static Admin admin() {
        return Admin.create(props(Map.of(AdminClientConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, "30000")));
    }

    static Map<String, String> strings(JsonNode node) {
        Map<String, String> m = new LinkedHashMap<>();
        node.fields().forEachRemaining(e -> m.put(e.getKey(), e.getValue().asText()));
        return m;
    }

    /** A share consumer of `group`, with `extra` configs, subscribed to `topic`. */
    static KafkaShareConsumer<String, String> shareConsumer(String group, String topic, Map<String, String> extra) {
        Map<String, String> conf = new LinkedHashMap<>();
        conf.put(ConsumerConfig.GROUP_ID_CONFIG, group);
        conf.put(ConsumerConfig.CLIENT_ID_CONFIG, "weir-share-tests");
        conf.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
        conf.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
        conf.putAll(extra);
        KafkaShareConsumer<String, String> c = new KafkaShareConsumer<>(props(conf));
        c.subscribe(List.of(topic));
        return c;
    }

    static int deliveries(ConsumerRecord<String, String> r) {
        return r.deliveryCount().map(Short::intValue).orElse(-1);
    }

    /** Offsets whose acknowledgement the broker confirmed, by commitSync's result. */
    static boolean committed(Map<TopicIdPartition, Optional<KafkaException>> result) {
        return result.values().stream().allMatch(Optional::isEmpty);
    }

    /** Sets group configs (IncrementalAlterConfigs on a GROUP resource). args: group, configs. */
    static Object configureGroup(JsonNode args) throws Exception {
        ConfigResource r = new ConfigResource(ConfigResource.Type.GROUP, args.get("group").asText());
        List<AlterConfigOp> ops = new ArrayList<>();
        strings(args.get("configs")).forEach((k, v) ->
            ops.add(new AlterConfigOp(new ConfigEntry(k, v), AlterConfigOp.OpType.SET)));
        try (Admin a = admin()) {
            a.incrementalAlterConfigs(Map.of(r, ops)).all().get(30, TimeUnit.SECONDS);
            Map<String, String> now = new TreeMap<>();
            a.describeConfigs(List.of(r)).all().get(30, TimeUnit.SECONDS).get(r).entries()
                .forEach(e -> now.put(e.name(), e.value()));
            return now;
        }
    }

    /**
     * Creates the topic (one partition) if needed and produces `count`
     * records, each in a batch of its own, values "v0", "v1", ...
     * args: topic, count.
     */
    static Object produce(JsonNode args) throws Exception {
        String topic = args.get("topic").asText();
        int count = args.get("count").asInt();
        try (Admin a = admin()) {
            a.createTopics(List.of(new NewTopic(topic, 1, (short) 1))).all().get(30, TimeUnit.SECONDS);
        } catch (ExecutionException e) {
            if (!(e.getCause() instanceof TopicExistsException)) {
                throw e;
            }
        }
        Map<String, String> conf = Map.of(
            ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName(),
            ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName(),
            ProducerConfig.LINGER_MS_CONFIG, "0",
            ProducerConfig.ACKS_CONFIG, "all");
        try (KafkaProducer<String, String> p = new KafkaProducer<>(props(conf))) {
            for (int i = 0; i < count; i++) {
                p.send(new ProducerRecord<>(topic, 0, "k" + i, "v" + i)).get(60, TimeUnit.SECONDS);
            }
        }
        return count;
    }

    /**
     * `consumers` share consumers of one group on a one-partition topic,
     * each in its own thread, acknowledging explicitly. Each holds its
     * first records unacknowledged (so acquired, kept from the others)
     * until every consumer has received some, then all accept what they
     * get until `count` records are accepted in all. Returns each
     * consumer's offsets. args: topic, group, consumers, count.
     */
    static Object split(JsonNode args) throws Exception {
        String topic = args.get("topic").asText();
        String group = args.get("group").asText();
        int consumers = args.get("consumers").asInt();
        int count = args.get("count").asInt();
        Set<Long> accepted = ConcurrentHashMap.newKeySet();
        CountDownLatch everyoneHasSome = new CountDownLatch(consumers);
        List<List<Long>> got = new ArrayList<>();
        List<Throwable> errors = Collections.synchronizedList(new ArrayList<>());
        List<Thread> threads = new ArrayList<>();
        for (int i = 0; i < consumers; i++) {
            List<Long> mine = Collections.synchronizedList(new ArrayList<>());
            got.add(mine);
            Thread t = new Thread(() -> {
                Map<String, String> conf = Map.of(
                    "share.acknowledgement.mode", "explicit",
                    "share.acquire.mode", "record_limit",
                    ConsumerConfig.MAX_POLL_RECORDS_CONFIG, "5");
                try (KafkaShareConsumer<String, String> c = shareConsumer(group, topic, conf)) {
                    boolean first = true;
                    long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(120);
                    while (accepted.size() < count && System.nanoTime() < deadline) {
                        ConsumerRecords<String, String> records = c.poll(Duration.ofMillis(200));
                        for (ConsumerRecord<String, String> r : records) {
                            mine.add(r.offset());
                            c.acknowledge(r, AcknowledgeType.ACCEPT);
                        }
                        if (records.isEmpty()) {
                            continue;
                        }
                        if (first) {
                            first = false;
                            everyoneHasSome.countDown();
                            if (!everyoneHasSome.await(60, TimeUnit.SECONDS)) {
                                throw new IllegalStateException("not every consumer received records");
                            }
                        }
                        if (committed(c.commitSync(Duration.ofSeconds(30)))) {
                            for (ConsumerRecord<String, String> r : records) {
                                accepted.add(r.offset());
                            }
                        }
                    }
                } catch (Throwable e) {
                    errors.add(e);
                }
            });
            t.start();
            threads.add(t);
        }
        for (Thread t : threads) {
            t.join(TimeUnit.SECONDS.toMillis(180));
        }
        if (!errors.isEmpty()) {
            throw new IllegalStateException("a consumer failed", errors.get(0));
        }
        return obj("per_consumer", got, "accepted", new TreeSet<>(accepted));
    }

    /**
     * One share consumer of `group` per entry of `bootstraps`, each
     * bootstrapped on that broker and polling in its own thread, accepting
     * every record explicitly (commitSync), until `count` records are
     * confirmed in all. Returns each consumer's deliveries ([partition,
     * offset, delivery count]) and the confirmed records ("partition:offset").
     * args: topic, group, bootstraps, count.
     */
    static Object shareAcross(JsonNode args) throws Exception {
        String topic = args.get("topic").asText();
        String group = args.get("group").asText();
        int count = args.get("count").asInt();
        List<String> targets = new ArrayList<>();
        args.get("bootstraps").forEach(b -> targets.add(b.asText()));
        Set<String> confirmed = ConcurrentHashMap.newKeySet();
        List<String> confirmedTwice = Collections.synchronizedList(new ArrayList<>());
        List<List<Object>> delivered = new ArrayList<>();
        List<Throwable> errors = Collections.synchronizedList(new ArrayList<>());
        List<Thread> threads = new ArrayList<>();
        for (String target : targets) {
            List<Object> mine = Collections.synchronizedList(new ArrayList<>());
            delivered.add(mine);
            Thread t = new Thread(() -> {
                Map<String, String> conf = new LinkedHashMap<>();
                conf.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, target);
                conf.put(ConsumerConfig.GROUP_ID_CONFIG, group);
                conf.put(ConsumerConfig.CLIENT_ID_CONFIG, "weir-share-across");
                conf.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
                conf.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
                conf.put("share.acknowledgement.mode", "explicit");
                conf.put(ConsumerConfig.MAX_POLL_RECORDS_CONFIG, "20");
                Properties p = new Properties();
                p.putAll(conf);
                try (KafkaShareConsumer<String, String> c = new KafkaShareConsumer<>(p)) {
                    c.subscribe(List.of(topic));
                    long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(150);
                    while (confirmed.size() < count && System.nanoTime() < deadline) {
                        ConsumerRecords<String, String> records = c.poll(Duration.ofMillis(200));
                        for (ConsumerRecord<String, String> r : records) {
                            mine.add(List.of(r.partition(), r.offset(), deliveries(r)));
                            c.acknowledge(r, AcknowledgeType.ACCEPT);
                        }
                        if (!records.isEmpty() && committed(c.commitSync(Duration.ofSeconds(30)))) {
                            for (ConsumerRecord<String, String> r : records) {
                                String key = r.partition() + ":" + r.offset();
                                if (!confirmed.add(key)) {
                                    confirmedTwice.add(key);
                                }
                            }
                        }
                    }
                } catch (Throwable e) {
                    errors.add(e);
                }
            });
            t.start();
            threads.add(t);
        }
        for (Thread t : threads) {
            t.join(TimeUnit.SECONDS.toMillis(200));
        }
        if (!errors.isEmpty()) {
            throw new IllegalStateException("a consumer failed", errors.get(0));
        }
        return obj("delivered", delivered, "confirmed", new TreeSet<>(confirmed),
            "confirmed_twice", confirmedTwice);
    }

    /**
     * One consumer, explicit acknowledgement, over records "v0" (released
     * at its first delivery, accepted at its second), "v1" (rejected) and
     * "v2" (always released: archived at the delivery count limit); polls
     * until the share-partition start offset passes all three. Returns
     * each value's delivery counts and the final start offset.
     * args: topic, group, count (3).
     */
    static Object ackTypes(JsonNode args) throws Exception {
        String topic = args.get("topic").asText();
        String group = args.get("group").asText();
        int count = args.get("count").asInt();
        Map<String, List<Integer>> seen = new TreeMap<>();
        long start = -1;
        try (KafkaShareConsumer<String, String> c = shareConsumer(group, topic,
                 Map.of("share.acknowledgement.mode", "explicit"));
             Admin a = admin()) {
            long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(90);
            while (start < count && System.nanoTime() < deadline) {
                ConsumerRecords<String, String> records = c.poll(Duration.ofMillis(200));
                for (ConsumerRecord<String, String> r : records) {
                    int n = deliveries(r);
                    seen.computeIfAbsent(r.value(), k -> new ArrayList<>()).add(n);
                    AcknowledgeType t = switch (r.value()) {
                        case "v0" -> n == 1 ? AcknowledgeType.RELEASE : AcknowledgeType.ACCEPT;
                        case "v1" -> AcknowledgeType.REJECT;
                        default -> AcknowledgeType.RELEASE;
                    };
                    c.acknowledge(r, t);
                }
                if (!records.isEmpty()) {
                    c.commitSync(Duration.ofSeconds(30));
                }
                start = startOffset(a, group, topic);
            }
        }
        return obj("deliveries", seen, "start_offset", start);
    }

    static long startOffset(Admin a, String group, String topic) throws Exception {
        TopicPartition tp = new TopicPartition(topic, 0);
        Map<TopicPartition, SharePartitionOffsetInfo> m = a.listShareGroupOffsets(
                Map.of(group, new ListShareGroupOffsetsSpec().topicPartitions(List.of(tp))))
            .partitionsToOffsetInfo(group).get(30, TimeUnit.SECONDS);
        SharePartitionOffsetInfo info = m.get(tp);
        return info == null ? -1 : info.startOffset();
    }

    /**
     * Acquires up to `max` records and holds them, unacknowledged, in a
     * consumer left open (the test then kills this JVM).
     * args: topic, group, max.
     */
    static Object hold(JsonNode args) throws Exception {
        KafkaShareConsumer<String, String> c = shareConsumer(args.get("group").asText(),
            args.get("topic").asText(), Map.of(
                "share.acknowledgement.mode", "explicit",
                "share.acquire.mode", "record_limit",
                ConsumerConfig.MAX_POLL_RECORDS_CONFIG, args.get("max").asText()));
        open.put("held", c);
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(60);
        while (System.nanoTime() < deadline) {
            ConsumerRecords<String, String> records = c.poll(Duration.ofMillis(200));
            if (!records.isEmpty()) {
                List<Long> offsets = new ArrayList<>();
                records.forEach(r -> offsets.add(r.offset()));
                return offsets;
            }
        }
        throw new IllegalStateException("no records to hold");
    }

    /** Opens a share consumer kept across scenarios. args: name, topic, group, consumer. */
    static Object openConsumer(JsonNode args) {
        Map<String, String> conf = new LinkedHashMap<>(Map.of("share.acknowledgement.mode", "explicit"));
        conf.putAll(strings(args.path("consumer")));
        open.put(args.get("name").asText(),
            shareConsumer(args.get("group").asText(), args.get("topic").asText(), conf));
        return null;
    }

    /**
     * Polls an open consumer, accepting every record, until `accepted`
     * records have been confirmed (commitSync) in this call or `distinct`
     * offsets are confirmed in all (whichever is given). With
     * commit=false, polls once for records, acknowledges them locally and
     * returns without committing: they stay in flight. Returns every
     * delivery (offset and delivery count) and the confirmed offsets.
     * args: name, accepted | distinct, commit (default true).
     */
    static Object consume(JsonNode args) throws Exception {
        KafkaShareConsumer<String, String> c = open.get(args.get("name").asText());
        boolean commit = args.path("commit").asBoolean(true);
        int wantAccepted = args.path("accepted").asInt(Integer.MAX_VALUE);
        int wantDistinct = args.path("distinct").asInt(Integer.MAX_VALUE);
        List<Object> delivered = new ArrayList<>();
        Set<Long> confirmed = new TreeSet<>();
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(120);
        while (System.nanoTime() < deadline) {
            ConsumerRecords<String, String> records = c.poll(Duration.ofMillis(200));
            for (ConsumerRecord<String, String> r : records) {
                delivered.add(List.of(r.offset(), deliveries(r)));
                c.acknowledge(r, AcknowledgeType.ACCEPT);
            }
            if (records.isEmpty()) {
                continue;
            }
            if (!commit) {
                break;
            }
            if (committed(c.commitSync(Duration.ofSeconds(30)))) {
                records.forEach(r -> confirmed.add(r.offset()));
            }
            if (confirmed.size() >= wantAccepted || confirmed.size() >= wantDistinct) {
                break;
            }
        }
        return obj("delivered", delivered, "confirmed", confirmed);
    }

    /** Closes an open consumer (leaving the group). args: name. */
    static Object closeConsumer(JsonNode args) {
        KafkaShareConsumer<String, String> c = open.remove(args.get("name").asText());
        if (c != null) {
            c.close(Duration.ofSeconds(30));
        }
        return null;
    }

    /** describeShareGroups. args: group. */
    static Object describeGroup(JsonNode args) throws Exception {
        String group = args.get("group").asText();
        try (Admin a = admin()) {
            ShareGroupDescription d = a.describeShareGroups(List.of(group)).describedGroups()
                .get(group).get(30, TimeUnit.SECONDS);
            List<Object> members = new ArrayList<>();
            d.members().forEach(m -> {
                List<Object> parts = new ArrayList<>();
                m.assignment().topicPartitions().forEach(tp -> parts.add(tp.topic() + "-" + tp.partition()));
                members.add(obj("member_id", m.consumerId(), "client_id", m.clientId(),
                    "host", m.host(), "epoch", m.memberEpoch(), "assignment", parts));
            });
            return obj("state", d.groupState().toString(), "epoch", d.groupEpoch(),
                "assignment_epoch", d.targetAssignmentEpoch(),
                "coordinator", d.coordinator() == null ? -1 : d.coordinator().id(), "members", members);
        }
    }

    /** listShareGroupOffsets for every partition with state. args: group. */
    static Object listOffsets(JsonNode args) throws Exception {
        String group = args.get("group").asText();
        try (Admin a = admin()) {
            Map<TopicPartition, SharePartitionOffsetInfo> m = a.listShareGroupOffsets(
                    Map.of(group, new ListShareGroupOffsetsSpec()))
                .partitionsToOffsetInfo(group).get(30, TimeUnit.SECONDS);
            Map<String, Object> out = new TreeMap<>();
            m.forEach((tp, info) -> out.put(tp.topic() + "-" + tp.partition(), info == null ? null
                : obj("start_offset", info.startOffset(), "lag", info.lag().orElse(-1L))));
            return out;
        }
    }

    static String errorName(ExecutionException e) {
        return e.getCause().getClass().getSimpleName();
    }

    /** alterShareGroupOffsets of partition 0. args: group, topic, offset. */
    static Object alterOffsets(JsonNode args) throws Exception {
        try (Admin a = admin()) {
            a.alterShareGroupOffsets(args.get("group").asText(),
                Map.of(new TopicPartition(args.get("topic").asText(), 0), args.get("offset").asLong()))
                .all().get(30, TimeUnit.SECONDS);
            return "ok";
        } catch (ExecutionException e) {
            return errorName(e);
        }
    }

    /** deleteShareGroupOffsets for a topic. args: group, topic. */
    static Object deleteOffsets(JsonNode args) throws Exception {
        try (Admin a = admin()) {
            a.deleteShareGroupOffsets(args.get("group").asText(), Set.of(args.get("topic").asText()))
                .all().get(30, TimeUnit.SECONDS);
            return "ok";
        } catch (ExecutionException e) {
            return errorName(e);
        }
    }

    /** deleteShareGroups. args: group. */
    static Object deleteGroup(JsonNode args) throws Exception {
        try (Admin a = admin()) {
            a.deleteShareGroups(List.of(args.get("group").asText())).all().get(30, TimeUnit.SECONDS);
            return "ok";
        } catch (ExecutionException e) {
            return errorName(e);
        }
    }

    /** listGroups of type share: id to state. */
    static Object listShareGroups(JsonNode args) throws Exception {
        try (Admin a = admin()) {
            Map<String, Object> out = new TreeMap<>();
            for (GroupListing g : a.listGroups(ListGroupsOptions.forShareGroups()).all()
                     .get(30, TimeUnit.SECONDS)) {
                out.put(g.groupId(), obj("type", g.type().map(Object::toString).orElse(""),
                    "state", g.groupState().map(Object::toString).orElse("")));
            }
            return out;
        }
    }

    static void createTopic(String topic) throws Exception {
        try (Admin a = admin()) {
            a.createTopics(List.of(new NewTopic(topic, 1, (short) 1))).all().get(30, TimeUnit.SECONDS);
        } catch (ExecutionException e) {
            if (!(e.getCause() instanceof TopicExistsException)) {
                throw e;
            }
        }
    }

    static Map<String, String> producerConf() {
        Map<String, String> conf = new LinkedHashMap<>();
        conf.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
        conf.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
        conf.put(ProducerConfig.LINGER_MS_CONFIG, "0");
        conf.put(ProducerConfig.ACKS_CONFIG, "all");
        return conf;
    }

    /**
     * Transactions of "c0".."c2" (committed), "a0".."a1" (aborted) and
     * "c3".."c5" (committed). Returns the log end offset. args: topic.
     */
    static Object produceTxn(JsonNode args) throws Exception {
        String topic = args.get("topic").asText();
        createTopic(topic);
        Map<String, String> conf = producerConf();
        conf.put(ProducerConfig.TRANSACTIONAL_ID_CONFIG, "share-txn-" + topic);
        try (KafkaProducer<String, String> p = new KafkaProducer<>(props(conf))) {
            p.initTransactions();
            String[][] txns = {{"c0", "c1", "c2"}, {"a0", "a1"}, {"c3", "c4", "c5"}};
            for (String[] txn : txns) {
                p.beginTransaction();
                for (String v : txn) {
                    p.send(new ProducerRecord<>(topic, 0, v, v));
                }
                // Into the log before the abort (unsent records would be dropped).
                p.flush();
                if (txn[0].startsWith("a")) {
                    p.abortTransaction();
                } else {
                    p.commitTransaction();
                }
            }
        }
        return endOffset(topic);
    }

    static long endOffset(String topic) throws Exception {
        try (Admin a = admin()) {
            TopicPartition tp = new TopicPartition(topic, 0);
            return a.listOffsets(Map.of(tp, OffsetSpec.latest())).partitionResult(tp)
                .get(30, TimeUnit.SECONDS).offset();
        }
    }

    /**
     * `old` records timestamped `age_ms` ago ("old0", ...), then `new`
     * records timestamped now ("new0", ...). args: topic, old, new, age_ms.
     */
    static Object produceAged(JsonNode args) throws Exception {
        String topic = args.get("topic").asText();
        createTopic(topic);
        long then = System.currentTimeMillis() - args.get("age_ms").asLong();
        try (KafkaProducer<String, String> p = new KafkaProducer<>(props(producerConf()))) {
            for (int i = 0; i < args.get("old").asInt(); i++) {
                p.send(new ProducerRecord<>(topic, 0, then, "k", "old" + i)).get(60, TimeUnit.SECONDS);
            }
            for (int i = 0; i < args.get("new").asInt(); i++) {
                p.send(new ProducerRecord<>(topic, 0, System.currentTimeMillis(), "k", "new" + i))
                    .get(60, TimeUnit.SECONDS);
            }
        }
        return endOffset(topic);
    }

    /**
     * One consumer accepts everything it gets until the share-partition
     * start offset reaches `until` (every record delivered or skipped);
     * returns the values it got, in order, and the final start offset.
     * args: topic, group, until.
     */
    static Object drain(JsonNode args) throws Exception {
        String topic = args.get("topic").asText();
        String group = args.get("group").asText();
        long until = args.get("until").asLong();
        List<String> values = new ArrayList<>();
        long start = -1;
        try (KafkaShareConsumer<String, String> c = shareConsumer(group, topic,
                 Map.of("share.acknowledgement.mode", "explicit"));
             Admin a = admin()) {
            long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(90);
            while (start < until && System.nanoTime() < deadline) {
                ConsumerRecords<String, String> records = c.poll(Duration.ofMillis(200));
                for (ConsumerRecord<String, String> r : records) {
                    values.add(r.value());
                    c.acknowledge(r, AcknowledgeType.ACCEPT);
                }
                if (!records.isEmpty()) {
                    c.commitSync(Duration.ofSeconds(30));
                }
                start = startOffset(a, group, topic);
            }
        }
        return obj("values", values, "start_offset", start);
    }

    /**
     * KIP-1222: consumer "holder" acquires the records and renews their
     * locks (RENEW, confirmed by commitSync) every `every_ms` for
     * `hold_ms`, well past the group's lock duration, while consumer
     * "other" of the same group polls; then the holder accepts them.
     * Returns what "other" got, each renewal's and the final commit's
     * confirmation, the delivery counts the holder saw (renewed records
     * come back from its next poll) and the final
     * start offset. args: topic, group, hold_ms, every_ms.
     */
    static Object renew(JsonNode args) throws Exception {
        String topic = args.get("topic").asText();
        String group = args.get("group").asText();
        long holdMs = args.get("hold_ms").asLong();
        long everyMs = args.get("every_ms").asLong();
        Map<String, String> conf = Map.of("share.acknowledgement.mode", "explicit",
            "share.acquire.mode", "record_limit", ConsumerConfig.MAX_POLL_RECORDS_CONFIG, "10");
        List<Long> otherGot = Collections.synchronizedList(new ArrayList<>());
        List<Boolean> renewals = new ArrayList<>();
        List<Integer> counts = new ArrayList<>();
        boolean accepted;
        long start;
        try (KafkaShareConsumer<String, String> holder = shareConsumer(group, topic, conf);
             Admin a = admin()) {
            List<ConsumerRecord<String, String>> held = new ArrayList<>();
            long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(60);
            while (held.isEmpty() && System.nanoTime() < deadline) {
                holder.poll(Duration.ofMillis(200)).forEach(held::add);
            }
            if (held.isEmpty()) {
                throw new IllegalStateException("no records to hold");
            }
            held.forEach(r -> counts.add(deliveries(r)));
            Thread other = new Thread(() -> {
                try (KafkaShareConsumer<String, String> c = shareConsumer(group, topic,
                         Map.of("share.acknowledgement.mode", "explicit"))) {
                    long end = System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(holdMs);
                    while (System.nanoTime() < end) {
                        for (ConsumerRecord<String, String> r : c.poll(Duration.ofMillis(200))) {
                            otherGot.add(r.offset());
                            c.acknowledge(r, AcknowledgeType.RELEASE);
                        }
                    }
                }
            });
            other.start();
            long end = System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(holdMs);
            while (System.nanoTime() < end) {
                Thread.sleep(everyMs);
                if (held.isEmpty()) {
                    continue;  // a refused renewal: the records are gone
                }
                held.forEach(r -> holder.acknowledge(r, AcknowledgeType.RENEW));
                boolean renewed = committed(holder.commitSync(Duration.ofSeconds(30)));
                renewals.add(renewed);
                if (!renewed) {
                    // The holder gives the records up and stops polling:
                    // once their lock expires any member may acquire them,
                    // and the scenario is about the other one doing so.
                    held = new ArrayList<>();
                    continue;
                }
                // Renewed records come back from the next poll, to be
                // acknowledged again.
                List<ConsumerRecord<String, String>> again = new ArrayList<>();
                long wait = System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(2000);
                while (again.size() < held.size() && System.nanoTime() < wait) {
                    holder.poll(Duration.ofMillis(100)).forEach(again::add);
                }
                again.forEach(r -> counts.add(deliveries(r)));
                held = again;
            }
            other.join();
            held.forEach(r -> holder.acknowledge(r, AcknowledgeType.ACCEPT));
            accepted = committed(holder.commitSync(Duration.ofSeconds(30)));
            start = startOffset(a, group, topic);
        }
        return obj("other_got", otherGot, "renewals", renewals, "accepted", accepted,
            "delivery_counts", counts, "start_offset", start);
    }

    /**
     * A share consumer's first poll outcome within `secs`: the simple name
     * of the exception poll throws, or "records" once records arrive.
     * args: topic, group, secs.
     */
    static Object firstPoll(JsonNode args) {
        try (KafkaShareConsumer<String, String> c = shareConsumer(args.get("group").asText(),
                 args.get("topic").asText(), Map.of("share.acknowledgement.mode", "explicit"))) {
            long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(args.get("secs").asLong());
            while (System.nanoTime() < deadline) {
                ConsumerRecords<String, String> records;
                try {
                    records = c.poll(Duration.ofMillis(200));
                } catch (KafkaException e) {
                    return e.getClass().getSimpleName();
                }
                if (!records.isEmpty()) {
                    records.forEach(r -> c.acknowledge(r, AcknowledgeType.RELEASE));
                    return "records";
                }
            }
            return "nothing";
        }
    }

    /**
     * describeConsumerGroups of a share group's id (ConsumerGroupDescribe,
     * then DescribeGroups): the exception's simple name, or the state.
     * args: group.
     */
    static Object describeAsConsumerGroup(JsonNode args) throws Exception {
        String group = args.get("group").asText();
        try (Admin a = admin()) {
            return a.describeConsumerGroups(List.of(group)).describedGroups().get(group)
                .get(30, TimeUnit.SECONDS).groupState().toString();
        } catch (ExecutionException e) {
            return errorName(e);
        }
    }
}
