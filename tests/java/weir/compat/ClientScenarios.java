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
import org.apache.kafka.clients.admin.FeatureMetadata;
import org.apache.kafka.clients.admin.LogDirDescription;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.admin.OffsetSpec;
import org.apache.kafka.clients.admin.ListConsumerGroupOffsetsSpec;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.common.TopicCollection;
import org.apache.kafka.common.Uuid;
import org.apache.kafka.common.errors.UnknownTopicIdException;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.ConcurrentHashMap;
import java.util.Set;
import java.util.TreeMap;
import java.util.TreeSet;
import org.apache.kafka.clients.admin.TopicDescription;
import org.apache.kafka.clients.admin.AlterConfigOp;
import org.apache.kafka.clients.admin.Config;
import org.apache.kafka.clients.admin.ConfigEntry;
import org.apache.kafka.clients.admin.ConsumerGroupDescription;
import org.apache.kafka.clients.admin.MemberDescription;
import org.apache.kafka.clients.admin.NewPartitions;
import org.apache.kafka.clients.admin.RecordsToDelete;
import org.apache.kafka.clients.admin.TransactionDescription;
import org.apache.kafka.common.config.ConfigResource;
import org.apache.kafka.common.quota.ClientQuotaAlteration;
import org.apache.kafka.common.quota.ClientQuotaEntity;
import org.apache.kafka.common.quota.ClientQuotaFilter;
import org.apache.kafka.common.quota.ClientQuotaFilterComponent;
import org.apache.kafka.clients.consumer.ConsumerRecords;
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
        s.put("produce", ClientScenarios::produce);
        s.put("roundtrip", ClientScenarios::roundtrip);
        s.put("describe_by_id", ClientScenarios::describeById);
        s.put("group_members", ClientScenarios::groupMembers);
        s.put("cluster_views", ClientScenarios::clusterViews);
        s.put("log_dirs", ClientScenarios::logDirs);
        s.put("transactions", ClientScenarios::transactions);
        s.put("zombie", ClientScenarios::zombie);
        s.put("static_members", ClientScenarios::staticMembers);
        s.put("admin_tour", ClientScenarios::adminTour);
        s.put("describe_producers", ClientScenarios::describeProducers);
        s.put("keyed_partitions", ClientScenarios::keyedPartitions);
        s.put("alter_client_quotas", ClientScenarios::alterClientQuotas);
        s.put("describe_client_quotas", ClientScenarios::describeClientQuotas);
        s.put("throttles", ClientScenarios::throttles);
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
     * Produces `count` keyed records, record i to partition i % partitions
     * (default 1), with the given producer configs; returns each record's
     * acknowledged offset. args: topic, count, partitions, producer.
     */
    static Object produce(JsonNode args) throws Exception {
        String topic = args.get("topic").asText();
        int count = args.get("count").asInt();
        int partitions = args.path("partitions").asInt(1);
        List<Object> acked = new ArrayList<>();
        try (KafkaProducer<String, String> p = producer(strings(args.path("producer")))) {
            List<java.util.concurrent.Future<RecordMetadata>> fs = new ArrayList<>();
            for (int i = 0; i < count; i++) {
                fs.add(p.send(new ProducerRecord<>(topic, i % partitions, "k" + i,
                    "value-" + i + "-" + "x".repeat(i % 50))));
            }
            for (var f : fs) {
                acked.add(f.get(60, TimeUnit.SECONDS).offset());
            }
        }
        return acked;
    }

    /**
     * Where the Java client's default partitioner puts each key (UTF-8, as
     * StringSerializer writes it): one record per key, no partition given;
     * returns key to partition. args: topic, keys.
     */
    static Object keyedPartitions(JsonNode args) throws Exception {
        String topic = args.get("topic").asText();
        Map<String, java.util.concurrent.Future<RecordMetadata>> fs = new TreeMap<>();
        try (KafkaProducer<String, String> p = producer(Map.of())) {
            for (JsonNode k : args.get("keys")) {
                fs.put(k.asText(), p.send(new ProducerRecord<>(topic, k.asText(), "")));
            }
            Map<String, Object> out = new TreeMap<>();
            for (var e : fs.entrySet()) {
                out.put(e.getKey(), e.getValue().get(60, TimeUnit.SECONDS).partition());
            }
            return out;
        }
    }

    /**
     * Admin.describeProducers for partitions 0..partitions-1 of a topic;
     * returns, by partition, each active producer's id, epoch, last
     * sequence and whether it is in a transaction. args: topic, partitions.
     */
    static Object describeProducers(JsonNode args) throws Exception {
        String topic = args.get("topic").asText();
        List<TopicPartition> tps = new ArrayList<>();
        for (int i = 0; i < args.get("partitions").asInt(); i++) {
            tps.add(new TopicPartition(topic, i));
        }
        Map<String, Object> out = new TreeMap<>();
        try (Admin a = admin()) {
            a.describeProducers(tps).all().get(30, TimeUnit.SECONDS).forEach((tp, state) -> {
                List<Object> ps = new ArrayList<>();
                state.activeProducers().forEach(ps_ -> ps.add(obj("producer_id", ps_.producerId(),
                    "epoch", ps_.producerEpoch(), "last_sequence", ps_.lastSequence(),
                    "last_timestamp", ps_.lastTimestamp(),
                    "in_transaction", ps_.currentTransactionStartOffset().isPresent())));
                out.put(Integer.toString(tp.partition()), ps);
            });
        }
        return out;
    }

    /**
     * Produces `count` records to partition 0 (see produce), then reads them
     * back with an assigned consumer; returns what was acknowledged and what
     * was read. args: topic, count, producer, consumer.
     */
    static Object roundtrip(JsonNode args) throws Exception {
        String topic = args.get("topic").asText();
        int count = args.get("count").asInt();
        Object acked = produce(args);
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

    /**
     * describeTopics by topic id (Metadata v12+ with a null or empty name),
     * then an id nobody has. args: topic.
     */
    static Object describeById(JsonNode args) throws Exception {
        String topic = args.get("topic").asText();
        try (Admin a = admin()) {
            Uuid id = a.describeTopics(List.of(topic)).allTopicNames().get(30, TimeUnit.SECONDS)
                .get(topic).topicId();
            TopicDescription byId = a.describeTopics(TopicCollection.ofTopicIds(List.of(id)))
                .allTopicIds().get(30, TimeUnit.SECONDS).get(id);
            String unknown;
            try {
                a.describeTopics(TopicCollection.ofTopicIds(List.of(Uuid.randomUuid())))
                    .allTopicIds().get(30, TimeUnit.SECONDS);
                unknown = "no error";
            } catch (ExecutionException e) {
                unknown = e.getCause().getClass().getSimpleName();
            }
            return obj("id", id.toString(), "by_id", describe(byId), "unknown_id_error", unknown);
        }
    }

    /**
     * Group members subscribed to one topic, each in its own thread, poll
     * and commit (commitSync) every record they get until `count` records
     * are read in all and every member holds partitions; returns each
     * member's final assignment, partitions read and count, and the
     * group's committed offsets through the admin client.
     * args: topic, group, members, count, consumer (configs).
     */
    static Object groupMembers(JsonNode args) throws Exception {
        String topic = args.get("topic").asText();
        String group = args.get("group").asText();
        int members = args.get("members").asInt();
        int count = args.get("count").asInt();
        Map<String, String> conf = new LinkedHashMap<>(strings(args.path("consumer")));
        conf.put(ConsumerConfig.GROUP_ID_CONFIG, group);
        Set<String> seen = ConcurrentHashMap.newKeySet();
        AtomicBoolean stop = new AtomicBoolean();
        List<Map<String, Object>> results = new ArrayList<>();
        List<Thread> threads = new ArrayList<>();
        List<Throwable> errors = java.util.Collections.synchronizedList(new ArrayList<>());
        // Members run until every record is read and every member holds
        // partitions, so the final assignments show the split.
        var holding = new java.util.concurrent.atomic.AtomicIntegerArray(members);
        // No member closes (and leaves, handing its partitions to the
        // others) until every member has taken its final assignment.
        var snapshotted = new java.util.concurrent.CountDownLatch(members);
        for (int m = 0; m < members; m++) {
            int member = m;
            Map<String, Object> result = new ConcurrentHashMap<>();
            results.add(result);
            Thread t = new Thread(() -> {
                Set<Integer> partitions = new TreeSet<>();
                int read = 0;
                try (KafkaConsumer<String, String> c = consumer(conf)) {
                    c.subscribe(List.of(topic));
                    long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(90);
                    while (!stop.get() && System.nanoTime() < deadline) {
                        var records = c.poll(Duration.ofMillis(200));
                        for (ConsumerRecord<String, String> r : records) {
                            partitions.add(r.partition());
                            seen.add(r.partition() + "/" + r.offset());
                            read++;
                        }
                        if (!records.isEmpty()) {
                            c.commitSync(Duration.ofSeconds(30));
                        }
                        holding.set(member, c.assignment().size());
                        boolean allHold = true;
                        for (int i = 0; i < members; i++) {
                            allHold &= holding.get(i) > 0;
                        }
                        if (seen.size() >= count && allHold) {
                            stop.set(true);
                        }
                    }
                    result.put("assigned", new TreeSet<>(
                        c.assignment().stream().map(TopicPartition::partition).toList()));
                    snapshotted.countDown();
                    snapshotted.await(30, TimeUnit.SECONDS);
                } catch (Throwable e) {
                    errors.add(e);
                    stop.set(true);
                }
                result.put("partitions", partitions);
                result.put("read", read);
            });
            t.start();
            threads.add(t);
        }
        for (Thread t : threads) {
            t.join(TimeUnit.SECONDS.toMillis(150));
        }
        if (!errors.isEmpty()) {
            throw new IllegalStateException("a member failed", errors.get(0));
        }
        Map<String, Object> committed = new TreeMap<>();
        try (Admin a = admin()) {
            Map<TopicPartition, OffsetAndMetadata> offsets = a.listConsumerGroupOffsets(
                Map.of(group, new ListConsumerGroupOffsetsSpec())).partitionsToOffsetAndMetadata(group)
                .get(30, TimeUnit.SECONDS);
            offsets.forEach((tp, o) -> committed.put(Integer.toString(tp.partition()), o.offset()));
        }
        return obj("members", results, "distinct_read", seen.size(), "committed", committed);
    }

    /**
     * describeFeatures, describeLogDirs and listOffsets (earliest, latest,
     * max timestamp) for partition 0 of a topic. args: topic.
     */
    static Object clusterViews(JsonNode args) throws Exception {
        String topic = args.get("topic").asText();
        TopicPartition tp = new TopicPartition(topic, 0);
        try (Admin a = admin()) {
            FeatureMetadata f = a.describeFeatures().featureMetadata().get(30, TimeUnit.SECONDS);
            Map<String, Object> finalized = new TreeMap<>();
            f.finalizedFeatures().forEach((k, v) -> finalized.put(k, v.maxVersionLevel()));
            Map<String, Object> supported = new TreeMap<>();
            f.supportedFeatures().forEach((k, v) -> supported.put(k, List.of(v.minVersion(), v.maxVersion())));
            int node = a.describeCluster().nodes().get(30, TimeUnit.SECONDS).iterator().next().id();
            Map<String, LogDirDescription> dirs = a.describeLogDirs(List.of(node)).allDescriptions()
                .get(30, TimeUnit.SECONDS).get(node);
            List<Object> logDirs = new ArrayList<>();
            dirs.forEach((path, d) -> logDirs.add(obj("path", path,
                "total", d.totalBytes().orElse(-1), "usable", d.usableBytes().orElse(-1),
                "partitions", d.replicaInfos().size())));
            Map<String, Object> offsets = new TreeMap<>();
            for (var e : Map.of("earliest", OffsetSpec.earliest(), "latest", OffsetSpec.latest(),
                    "max_timestamp", OffsetSpec.maxTimestamp()).entrySet()) {
                var info = a.listOffsets(Map.of(tp, e.getValue())).partitionResult(tp).get(30, TimeUnit.SECONDS);
                offsets.put(e.getKey(), info.offset());
            }
            return obj("finalized", finalized, "supported", supported,
                "epoch", f.finalizedFeaturesEpoch().orElse(-1L), "log_dirs", logDirs, "offsets", offsets);
        }
    }

    /**
     * describeLogDirs over every broker: each replica of a topic's
     * partitions that a broker lists, as (broker, partition, size).
     * args: topic.
     */
    static Object logDirs(JsonNode args) throws Exception {
        String topic = args.get("topic").asText();
        try (Admin a = admin()) {
            List<Integer> nodes = new ArrayList<>();
            a.describeCluster().nodes().get(30, TimeUnit.SECONDS).forEach(n -> nodes.add(n.id()));
            Map<Integer, Map<String, LogDirDescription>> all = a.describeLogDirs(nodes)
                .allDescriptions().get(30, TimeUnit.SECONDS);
            List<Object> replicas = new ArrayList<>();
            all.forEach((node, dirs) -> dirs.forEach((path, d) -> d.replicaInfos().forEach((tp, info) -> {
                if (tp.topic().equals(topic)) {
                    replicas.add(obj("broker", node, "partition", tp.partition(), "size", info.size()));
                }
            })));
            return obj("brokers", nodes, "replicas", replicas);
        }
    }

    /**
     * Kafka's exactly-once consume-transform-produce loop: a group member
     * (subscribed, read_committed) reads `input`, and each poll's records
     * go to `output` in one transaction together with the consumed offsets
     * (sendOffsetsToTransaction with the consumer's group metadata). The
     * first transaction is aborted and its records processed again, as an
     * application does after an abort. Returns the values a read_committed
     * and a read_uncommitted reader find in `output`, the group's committed
     * offsets, DescribeTransactions' view of the transactional id and the
     * finalized transaction.version. With `tolerant`, a transaction that
     * fails (a broker killed meanwhile) is aborted and its records
     * processed again (counted as `redone`). args: input, output, group,
     * txn_id, count (records in input), consumer (configs), tolerant.
     */
    static Object transactions(JsonNode args) throws Exception {
        String input = args.get("input").asText();
        String output = args.get("output").asText();
        String group = args.get("group").asText();
        String txnId = args.get("txn_id").asText();
        int count = args.get("count").asInt();
        boolean tolerant = args.path("tolerant").asBoolean(false);
        Map<String, String> cconf = new LinkedHashMap<>(strings(args.path("consumer")));
        cconf.put(ConsumerConfig.GROUP_ID_CONFIG, group);
        cconf.put(ConsumerConfig.ISOLATION_LEVEL_CONFIG, "read_committed");
        int commits = 0;
        int aborts = 0;
        int abortedRecords = 0;
        int redone = 0;
        int done = 0;
        try (KafkaProducer<String, String> p = producer(Map.of(
                ProducerConfig.TRANSACTIONAL_ID_CONFIG, txnId));
             KafkaConsumer<String, String> c = consumer(cconf)) {
            p.initTransactions();
            c.subscribe(List.of(input));
            long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(tolerant ? 200 : 90);
            while (done < count) {
                if (System.nanoTime() > deadline) {
                    throw new IllegalStateException("only " + done + " of " + count + " records committed");
                }
                ConsumerRecords<String, String> records = c.poll(Duration.ofMillis(200));
                if (records.isEmpty()) {
                    continue;
                }
                p.beginTransaction();
                try {
                    Map<TopicPartition, OffsetAndMetadata> next = new HashMap<>();
                    for (ConsumerRecord<String, String> r : records) {
                        p.send(new ProducerRecord<>(output, r.key(), "out:" + r.value()));
                        next.put(new TopicPartition(r.topic(), r.partition()), new OffsetAndMetadata(r.offset() + 1));
                    }
                    p.sendOffsetsToTransaction(next, c.groupMetadata());
                    if (aborts == 0) {
                        // Written first, so the abort has records to hide (an
                        // abort drops what the producer has not sent yet).
                        p.flush();
                        p.abortTransaction();
                        aborts++;
                        abortedRecords += records.count();
                        // Back to what the group committed: the aborted records are processed again.
                        seekToCommitted(c, records.partitions());
                    } else {
                        retryingTimeouts(p::commitTransaction, tolerant);
                        commits++;
                        done += records.count();
                    }
                } catch (org.apache.kafka.common.KafkaException e) {
                    // With `tolerant` (a broker killed meanwhile), a failed
                    // transaction is aborted and its records processed again.
                    if (!tolerant || e instanceof org.apache.kafka.common.errors.ProducerFencedException) {
                        throw e;
                    }
                    retryingTimeouts(p::abortTransaction, true);
                    redone++;
                    seekToCommitted(c, records.partitions());
                }
            }
        }
        List<String> readCommitted = readAll(output, "read_committed", count);
        List<String> readUncommitted = readAll(output, "read_uncommitted", count + abortedRecords);
        Map<String, Object> offsets = new TreeMap<>();
        Map<String, Object> txn;
        Map<String, Object> finalized = new TreeMap<>();
        try (Admin a = admin()) {
            a.listConsumerGroupOffsets(Map.of(group, new ListConsumerGroupOffsetsSpec()))
                .partitionsToOffsetAndMetadata(group).get(30, TimeUnit.SECONDS)
                .forEach((tp, o) -> offsets.put(Integer.toString(tp.partition()), o.offset()));
            TransactionDescription d = a.describeTransactions(List.of(txnId)).description(txnId)
                .get(30, TimeUnit.SECONDS);
            txn = obj("state", d.state().toString(), "producer_id", d.producerId(),
                "producer_epoch", d.producerEpoch(), "partitions", d.topicPartitions().size());
            a.describeFeatures().featureMetadata().get(30, TimeUnit.SECONDS).finalizedFeatures()
                .forEach((k, v) -> finalized.put(k, v.maxVersionLevel()));
        }
        return obj("commits", commits, "aborts", aborts, "aborted_records", abortedRecords,
            "redone", redone, "read_committed", readCommitted, "read_uncommitted", readUncommitted,
            "committed_offsets", offsets, "transaction", txn,
            "transaction_version", finalized.get("transaction.version"));
    }

    /** Seeks `c` back to its group's committed offsets of `partitions`. */
    static void seekToCommitted(KafkaConsumer<String, String> c, Set<TopicPartition> partitions) {
        Map<TopicPartition, OffsetAndMetadata> committed = c.committed(partitions);
        for (TopicPartition tp : partitions) {
            OffsetAndMetadata o = committed.get(tp);
            c.seek(tp, o == null ? 0 : o.offset());
        }
    }

    /**
     * Runs a transaction's end, again after a TimeoutException when
     * `retry` (the end may still complete; Kafka's producer lets the same
     * call be made again), at most 5 times.
     */
    static void retryingTimeouts(Runnable end, boolean retry) {
        for (int attempt = 1; ; attempt++) {
            try {
                end.run();
                return;
            } catch (org.apache.kafka.common.errors.TimeoutException e) {
                if (!retry || attempt == 5) {
                    throw e;
                }
            }
        }
    }

    /**
     * A zombie fenced: producer A (transactional id `txn_id`) writes
     * `count` records to partitions 0..partitions-2 of `topic` in a
     * transaction it leaves open; producer B starts with the same id,
     * which fences A and aborts its transaction, then writes `count`
     * records and commits. A then writes to the last partition, which its
     * transaction never had, and tries to commit. Returns the exceptions
     * (simple class names, "none" if it succeeded) of A's late write and
     * commit, what read_committed and read_uncommitted readers find in
     * `topic`, and B's transaction as DescribeTransactions shows it.
     * args: topic, partitions, txn_id, count.
     */
    static Object zombie(JsonNode args) throws Exception {
        String topic = args.get("topic").asText();
        int partitions = args.get("partitions").asInt();
        String txnId = args.get("txn_id").asText();
        int count = args.get("count").asInt();
        String lateSend = "none";
        String lateCommit = "none";
        Map<String, String> conf = Map.of(ProducerConfig.TRANSACTIONAL_ID_CONFIG, txnId);
        try (KafkaProducer<String, String> a = producer(conf)) {
            a.initTransactions();
            a.beginTransaction();
            for (int i = 0; i < count; i++) {
                a.send(new ProducerRecord<>(topic, i % (partitions - 1), "k" + i, "zombie-" + i));
            }
            a.flush();
            try (KafkaProducer<String, String> b = producer(conf)) {
                b.initTransactions();
                try {
                    a.send(new ProducerRecord<>(topic, partitions - 1, "late", "late"))
                        .get(60, TimeUnit.SECONDS);
                } catch (ExecutionException e) {
                    lateSend = e.getCause().getClass().getSimpleName();
                }
                try {
                    a.commitTransaction();
                } catch (org.apache.kafka.common.KafkaException e) {
                    lateCommit = e.getClass().getSimpleName();
                }
                b.beginTransaction();
                for (int i = 0; i < count; i++) {
                    b.send(new ProducerRecord<>(topic, i % partitions, "k" + i, "live-" + i));
                }
                b.commitTransaction();
            }
        }
        List<String> readCommitted = readAll(topic, "read_committed", count);
        List<String> readUncommitted = readAll(topic, "read_uncommitted", 2 * count);
        Map<String, Object> txn;
        try (Admin adm = admin()) {
            TransactionDescription d = adm.describeTransactions(List.of(txnId)).description(txnId)
                .get(30, TimeUnit.SECONDS);
            txn = obj("state", d.state().toString(), "producer_id", d.producerId(),
                "producer_epoch", d.producerEpoch(), "partitions", d.topicPartitions().size());
        }
        return obj("late_send", lateSend, "late_commit", lateCommit,
            "read_committed", readCommitted, "read_uncommitted", readUncommitted,
            "transaction", txn);
    }

    /**
     * Every value of every partition of `topic` read from the beginning at
     * `isolation`: until `expected` values are read, then one more second
     * to catch any extra (60 s at most).
     */
    static List<String> readAll(String topic, String isolation, int expected) {
        List<String> values = new ArrayList<>();
        try (KafkaConsumer<String, String> c = consumer(Map.of(
                ConsumerConfig.ISOLATION_LEVEL_CONFIG, isolation))) {
            List<TopicPartition> tps = c.partitionsFor(topic).stream()
                .map(i -> new TopicPartition(topic, i.partition())).toList();
            c.assign(tps);
            c.seekToBeginning(tps);
            long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(60);
            long settle = Long.MAX_VALUE;
            while (System.nanoTime() < Math.min(deadline, settle)) {
                for (ConsumerRecord<String, String> r : c.poll(Duration.ofMillis(200))) {
                    values.add(r.value());
                }
                if (values.size() >= expected && settle == Long.MAX_VALUE) {
                    settle = System.nanoTime() + TimeUnit.SECONDS.toNanos(1);
                }
            }
        }
        return values;
    }

    /**
     * Classic static membership: members with `group.instance.id` (and the
     * given consumer configs) share `topic`; once both hold partitions the
     * second one closes (a static member leaves no LeaveGroup behind) and a
     * new consumer with its instance id takes its place within the session
     * timeout. Returns each member's instance id and assignment before,
     * the replacement's assignment and the generations seen (a static
     * rejoin does not rebalance), and the group as describeConsumerGroups
     * shows it. args: topic, group, consumer.
     */
    static Object staticMembers(JsonNode args) throws Exception {
        String topic = args.get("topic").asText();
        String group = args.get("group").asText();
        Map<String, String> base = new LinkedHashMap<>(strings(args.path("consumer")));
        base.put(ConsumerConfig.GROUP_ID_CONFIG, group);
        base.put(ConsumerConfig.SESSION_TIMEOUT_MS_CONFIG, "45000");
        List<KafkaConsumer<String, String>> members = new ArrayList<>();
        try {
            for (String id : List.of("static-a", "static-b")) {
                Map<String, String> conf = new LinkedHashMap<>(base);
                conf.put(ConsumerConfig.GROUP_INSTANCE_ID_CONFIG, id);
                KafkaConsumer<String, String> c = consumer(conf);
                c.subscribe(List.of(topic));
                members.add(c);
            }
            pollUntilAllAssigned(members, 60);
            Map<String, Object> before = new TreeMap<>();
            before.put("static-a", partitionsOf(members.get(0)));
            before.put("static-b", partitionsOf(members.get(1)));
            int generation = members.get(0).groupMetadata().generationId();
            members.get(1).close(Duration.ofSeconds(30));
            Map<String, String> conf = new LinkedHashMap<>(base);
            conf.put(ConsumerConfig.GROUP_INSTANCE_ID_CONFIG, "static-b");
            KafkaConsumer<String, String> again = consumer(conf);
            members.set(1, again);
            again.subscribe(List.of(topic));
            pollUntilAllAssigned(members, 60);
            // Let a rebalance, if the rejoin caused one, reach the first member.
            for (int i = 0; i < 10; i++) {
                for (KafkaConsumer<String, String> c : members) {
                    c.poll(Duration.ofMillis(100));
                }
            }
            Object after = partitionsOf(again);
            int generationAfter = members.get(0).groupMetadata().generationId();
            Map<String, Object> described = new TreeMap<>();
            String state;
            try (Admin a = admin()) {
                ConsumerGroupDescription d = a.describeConsumerGroups(List.of(group))
                    .describedGroups().get(group).get(30, TimeUnit.SECONDS);
                state = d.groupState().toString();
                for (MemberDescription m : d.members()) {
                    described.put(m.groupInstanceId().orElse("(none)"), new TreeSet<>(
                        m.assignment().topicPartitions().stream().map(TopicPartition::partition).toList()));
                }
            }
            return obj("before", before, "replacement", after, "generation", generation,
                "generation_after", generationAfter, "state", state, "described", described);
        } finally {
            for (KafkaConsumer<String, String> c : members) {
                c.close(Duration.ofSeconds(30));
            }
        }
    }

    static Set<Integer> partitionsOf(KafkaConsumer<String, String> c) {
        return new TreeSet<>(c.assignment().stream().map(TopicPartition::partition).toList());
    }

    /** Polls every member in turn until each holds partitions. */
    static void pollUntilAllAssigned(List<KafkaConsumer<String, String>> members, int seconds) {
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(seconds);
        while (true) {
            boolean all = true;
            for (KafkaConsumer<String, String> c : members) {
                c.poll(Duration.ofMillis(100));
                all &= !c.assignment().isEmpty();
            }
            if (all) {
                return;
            }
            if (System.nanoTime() > deadline) {
                throw new IllegalStateException("members not all assigned within " + seconds + " s");
            }
        }
    }

    /**
     * The admin client over one topic with `count` records in partition 0
     * and a group that consumed them: describeConfigs, incrementalAlterConfigs
     * (set and delete), createPartitions, listOffsets, deleteRecords,
     * listConsumerGroups, describeConsumerGroups, listConsumerGroupOffsets,
     * alterConsumerGroupOffsets, deleteConsumerGroupOffsets and
     * deleteConsumerGroups. args: topic, group, count.
     */
    static Object adminTour(JsonNode args) throws Exception {
        String topic = args.get("topic").asText();
        String group = args.get("group").asText();
        int count = args.get("count").asInt();
        TopicPartition tp0 = new TopicPartition(topic, 0);
        // A group that read everything and committed (then left, so it is empty).
        try (KafkaConsumer<String, String> c = consumer(Map.of(ConsumerConfig.GROUP_ID_CONFIG, group))) {
            c.subscribe(List.of(topic));
            int read = 0;
            long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(60);
            while (read < count && System.nanoTime() < deadline) {
                read += c.poll(Duration.ofMillis(200)).count();
            }
            c.commitSync(Duration.ofSeconds(30));
        }
        Map<String, Object> out = new LinkedHashMap<>();
        try (Admin a = admin()) {
            ConfigResource res = new ConfigResource(ConfigResource.Type.TOPIC, topic);
            java.util.function.Function<String, Object> config = name -> {
                try {
                    Config cfg = a.describeConfigs(List.of(res)).all().get(30, TimeUnit.SECONDS).get(res);
                    ConfigEntry e = cfg.get(name);
                    return obj("value", e.value(), "source", e.source().toString(), "default", e.isDefault());
                } catch (Exception e) {
                    throw new IllegalStateException(e);
                }
            };
            out.put("retention_default", config.apply("retention.ms"));
            a.incrementalAlterConfigs(Map.of(res, List.of(
                new AlterConfigOp(new ConfigEntry("retention.ms", "3600000"), AlterConfigOp.OpType.SET))))
                .all().get(30, TimeUnit.SECONDS);
            out.put("retention_set", config.apply("retention.ms"));
            a.incrementalAlterConfigs(Map.of(res, List.of(
                new AlterConfigOp(new ConfigEntry("retention.ms", ""), AlterConfigOp.OpType.DELETE))))
                .all().get(30, TimeUnit.SECONDS);
            out.put("retention_deleted", config.apply("retention.ms"));

            a.createPartitions(Map.of(topic, NewPartitions.increaseTo(3))).all().get(30, TimeUnit.SECONDS);
            out.put("partitions", a.describeTopics(List.of(topic)).allTopicNames().get(30, TimeUnit.SECONDS)
                .get(topic).partitions().size());

            a.deleteRecords(Map.of(tp0, RecordsToDelete.beforeOffset(5))).all().get(30, TimeUnit.SECONDS);
            out.put("earliest_after_delete", a.listOffsets(Map.of(tp0, OffsetSpec.earliest()))
                .partitionResult(tp0).get(30, TimeUnit.SECONDS).offset());
            out.put("latest", a.listOffsets(Map.of(tp0, OffsetSpec.latest()))
                .partitionResult(tp0).get(30, TimeUnit.SECONDS).offset());

            out.put("listed", a.listConsumerGroups().all().get(30, TimeUnit.SECONDS).stream()
                .anyMatch(g -> g.groupId().equals(group)));
            ConsumerGroupDescription d = a.describeConsumerGroups(List.of(group)).describedGroups()
                .get(group).get(30, TimeUnit.SECONDS);
            out.put("group_state", d.groupState().toString());
            out.put("group_members", d.members().size());
            java.util.function.Supplier<Map<String, Object>> offsets = () -> {
                try {
                    Map<String, Object> m = new TreeMap<>();
                    a.listConsumerGroupOffsets(Map.of(group, new ListConsumerGroupOffsetsSpec()))
                        .partitionsToOffsetAndMetadata(group).get(30, TimeUnit.SECONDS)
                        .forEach((tp, o) -> m.put(Integer.toString(tp.partition()), o.offset()));
                    return m;
                } catch (Exception e) {
                    throw new IllegalStateException(e);
                }
            };
            out.put("committed", offsets.get());
            a.alterConsumerGroupOffsets(group, Map.of(tp0, new OffsetAndMetadata(7)))
                .all().get(30, TimeUnit.SECONDS);
            out.put("committed_altered", offsets.get());
            a.deleteConsumerGroupOffsets(group, Set.of(tp0)).all().get(30, TimeUnit.SECONDS);
            out.put("committed_after_offset_delete", offsets.get());
            a.deleteConsumerGroups(List.of(group)).all().get(30, TimeUnit.SECONDS);
            out.put("listed_after_delete", a.listConsumerGroups().all().get(30, TimeUnit.SECONDS).stream()
                .anyMatch(g -> g.groupId().equals(group)));
        }
        return out;
    }

    /**
     * An admin client bootstrapped on `bootstrap` whose requests go to
     * broker `node`: a DescribeConfigs of that broker (which only it
     * answers) opens a connection to it, and requests for any broker
     * then take an idle established connection over brokers not yet
     * connected. {@link #contacted} tells whether that held.
     */
    static Admin adminOn(String bootstrap, int node) throws Exception {
        Admin a = Admin.create(props(Map.of(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap),
            AdminClientConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, "30000"));
        a.describeConfigs(List.of(new ConfigResource(ConfigResource.Type.BROKER, Integer.toString(node))))
            .all().get(30, TimeUnit.SECONDS);
        return a;
    }

    /** The brokers (node ids) an admin client has connected to, bootstrap connections aside. */
    static Set<Integer> contacted(Admin a) {
        Set<Integer> nodes = new TreeSet<>();
        a.metrics().keySet().stream()
            .filter(m -> m.group().equals("admin-client-node-metrics"))
            .map(m -> Integer.parseInt(m.tags().get("node-id").substring("node-".length())))
            .filter(id -> id >= 0)
            .forEach(nodes::add);
        return nodes;
    }

    /**
     * Admin.alterClientQuotas through broker `node`: sets the quotas of
     * client id `client_id` (a null value removes that quota); returns
     * the brokers the admin client talked to. args: bootstrap, node,
     * client_id, quotas.
     */
    static Object alterClientQuotas(JsonNode args) throws Exception {
        ClientQuotaEntity entity = new ClientQuotaEntity(
            Map.of(ClientQuotaEntity.CLIENT_ID, args.get("client_id").asText()));
        List<ClientQuotaAlteration.Op> ops = new ArrayList<>();
        args.get("quotas").fields().forEachRemaining(e -> ops.add(new ClientQuotaAlteration.Op(
            e.getKey(), e.getValue().isNull() ? null : e.getValue().asDouble())));
        try (Admin a = adminOn(args.get("bootstrap").asText(), args.get("node").asInt())) {
            a.alterClientQuotas(List.of(new ClientQuotaAlteration(entity, ops))).all()
                .get(30, TimeUnit.SECONDS);
            return obj("sent_to", contacted(a));
        }
    }

    /**
     * Admin.describeClientQuotas of client id `client_id` through broker
     * `node`; returns its quotas and the brokers the admin client talked
     * to. args: bootstrap, node, client_id.
     */
    static Object describeClientQuotas(JsonNode args) throws Exception {
        String client = args.get("client_id").asText();
        try (Admin a = adminOn(args.get("bootstrap").asText(), args.get("node").asInt())) {
            Map<ClientQuotaEntity, Map<String, Double>> all = a.describeClientQuotas(
                ClientQuotaFilter.containsOnly(List.of(ClientQuotaFilterComponent.ofEntity(
                    ClientQuotaEntity.CLIENT_ID, client)))).entities().get(30, TimeUnit.SECONDS);
            Map<String, Double> quotas = all.getOrDefault(
                new ClientQuotaEntity(Map.of(ClientQuotaEntity.CLIENT_ID, client)), Map.of());
            return obj("quotas", new TreeMap<>(quotas), "sent_to", contacted(a));
        }
    }

    /** One metric of a client by name and group (-1 if it has none, or no value yet). */
    static double metric(Map<org.apache.kafka.common.MetricName, ? extends org.apache.kafka.common.Metric> ms,
                         String group, String name) {
        return ms.entrySet().stream()
            .filter(e -> e.getKey().group().equals(group) && e.getKey().name().equals(name))
            .mapToDouble(e -> (Double) e.getValue().metricValue())
            .filter(v -> !Double.isNaN(v))
            .findFirst().orElse(-1);
    }

    /**
     * The throttle a client with client id `client_id` is told of when
     * it writes to and reads one partition, from the clients' own
     * metrics (each response's throttle_time_ms): a new producer sends
     * `count` records of about 1 kB to `partition` in one request; then
     * a new consumer reads the partition from its start until a fetch
     * is throttled or `count` records are read. Returns the largest
     * produce and fetch throttle (ms) and the records read.
     * args: topic, partition, client_id, count.
     */
    static Object throttles(JsonNode args) throws Exception {
        String topic = args.get("topic").asText();
        int partition = args.get("partition").asInt();
        int count = args.get("count").asInt();
        Map<String, String> id = Map.of(ProducerConfig.CLIENT_ID_CONFIG, args.get("client_id").asText());
        Map<String, String> pconf = new HashMap<>(id);
        // One batch, one request: a throttled connection would hold back a second one.
        pconf.put(ProducerConfig.BATCH_SIZE_CONFIG, "1048576");
        pconf.put(ProducerConfig.LINGER_MS_CONFIG, "10000");  // flush() sends at once
        double produceThrottle;
        try (KafkaProducer<String, String> p = producer(pconf)) {
            for (int i = 0; i < count; i++) {
                p.send(new ProducerRecord<>(topic, partition, "k" + i, "q".repeat(1000)));
            }
            p.flush();
            produceThrottle = metric(p.metrics(), "producer-metrics", "produce-throttle-time-max");
        }
        double fetchThrottle = 0;
        int read = 0;
        TopicPartition tp = new TopicPartition(topic, partition);
        try (KafkaConsumer<String, String> c = consumer(id)) {
            c.assign(List.of(tp));
            c.seekToBeginning(List.of(tp));
            long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(60);
            while (read < count && fetchThrottle <= 0 && System.nanoTime() < deadline) {
                read += c.poll(Duration.ofMillis(200)).count();
                fetchThrottle = metric(c.metrics(), "consumer-fetch-manager-metrics",
                    "fetch-throttle-time-max");
            }
        }
        return obj("produce_throttle_ms", produceThrottle, "fetch_throttle_ms", fetchThrottle,
            "read", read);
    }
}
