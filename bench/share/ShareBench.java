import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Properties;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AlterConfigOp;
import org.apache.kafka.clients.admin.ConfigEntry;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.consumer.AcknowledgeType;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.ConsumerRecords;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.KafkaShareConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.KafkaException;
import org.apache.kafka.common.TopicIdPartition;
import org.apache.kafka.common.config.ConfigResource;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;
import org.apache.kafka.common.serialization.ByteArraySerializer;

/**
 * The share-group benchmark of BENCHMARKS.md (driven by bench/share_groups.py),
 * with Kafka's own Java client. Modes:
 *
 *   produce BOOTSTRAP TOPIC RECORDS SIZE
 *       creates TOPIC with one partition and fills it (acks=all).
 *   classic|share|share-implicit BOOTSTRAP TOPIC GROUP RECORDS CONSUMERS
 *       CONSUMERS consumers of a new group, one thread each, read TOPIC
 *       until RECORDS distinct records are confirmed:
 *       classic: a classic consumer group, commitSync after every poll;
 *       share: a share group, every record ACCEPTed explicitly and
 *         commitSync after every poll (the broker confirms each batch);
 *       share-implicit: a share group in implicit mode, acknowledgements
 *         piggy-backed on the next ShareFetch and counted once the broker
 *         confirms them (the acknowledgement commit callback).
 *
 * Prints one JSON line: the time from the first record received to the
 * last confirmation, records per second over it, and each consumer's
 * share of the records.
 */
public final class ShareBench {
    static Properties props(String bootstrap) {
        Properties p = new Properties();
        p.put("bootstrap.servers", bootstrap);
        return p;
    }

    public static void main(String[] a) throws Exception {
        String mode = a[0];
        String bootstrap = a[1];
        String topic = a[2];
        if (mode.equals("produce")) {
            produce(bootstrap, topic, Long.parseLong(a[3]), Integer.parseInt(a[4]));
            return;
        }
        String group = a[3];
        long records = Long.parseLong(a[4]);
        int consumers = Integer.parseInt(a[5]);
        if (mode.startsWith("share")) {
            try (Admin admin = Admin.create(props(bootstrap))) {
                ConfigResource r = new ConfigResource(ConfigResource.Type.GROUP, group);
                admin.incrementalAlterConfigs(Map.of(r, List.of(new AlterConfigOp(
                        new ConfigEntry("share.auto.offset.reset", "earliest"), AlterConfigOp.OpType.SET))))
                    .all().get(30, TimeUnit.SECONDS);
            }
        }
        Set<Long> confirmed = ConcurrentHashMap.newKeySet();
        AtomicLong deliveries = new AtomicLong();
        AtomicLong first = new AtomicLong(Long.MAX_VALUE);
        AtomicLong last = new AtomicLong();
        List<AtomicLong> per = new ArrayList<>();
        List<Thread> threads = new ArrayList<>();
        List<Throwable> errors = new java.util.concurrent.CopyOnWriteArrayList<>();
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(600);
        for (int i = 0; i < consumers; i++) {
            AtomicLong mine = new AtomicLong();
            per.add(mine);
            Runnable body = switch (mode) {
                case "classic" -> () -> classic(bootstrap, topic, group, records, confirmed, deliveries, first, last, mine, deadline);
                case "share", "share-implicit" -> () -> share(bootstrap, topic, group, records, mode.equals("share"),
                                                              confirmed, deliveries, first, last, mine, deadline);
                default -> throw new IllegalArgumentException(mode);
            };
            Thread t = new Thread(() -> {
                try {
                    body.run();
                } catch (Throwable e) {
                    errors.add(e);
                }
            });
            t.start();
            threads.add(t);
        }
        for (Thread t : threads) {
            t.join();
        }
        if (!errors.isEmpty()) {
            throw new IllegalStateException("a consumer failed", errors.get(0));
        }
        if (confirmed.size() < records) {
            throw new IllegalStateException("only " + confirmed.size() + " of " + records + " records confirmed");
        }
        double secs = (last.get() - first.get()) / 1e9;
        StringBuilder shares = new StringBuilder();
        for (AtomicLong m : per) {
            shares.append(shares.length() == 0 ? "" : ",").append(m.get());
        }
        System.out.printf("{\"mode\":\"%s\",\"consumers\":%d,\"records\":%d,\"deliveries\":%d,\"secs\":%.3f,"
                + "\"records_per_sec\":%.1f,\"per_consumer\":[%s]}%n",
            mode, consumers, records, deliveries.get(), secs, records / secs, shares);
    }

    static void produce(String bootstrap, String topic, long records, int size) throws Exception {
        try (Admin admin = Admin.create(props(bootstrap))) {
            admin.createTopics(List.of(new NewTopic(topic, 1, (short) 1))).all().get(30, TimeUnit.SECONDS);
        }
        Properties p = props(bootstrap);
        p.put("acks", "all");
        p.put("linger.ms", "5");
        p.put("batch.size", "262144");
        p.put("key.serializer", ByteArraySerializer.class.getName());
        p.put("value.serializer", ByteArraySerializer.class.getName());
        byte[] value = new byte[size];
        long start = System.nanoTime();
        try (KafkaProducer<byte[], byte[]> producer = new KafkaProducer<>(p)) {
            for (long i = 0; i < records; i++) {
                producer.send(new ProducerRecord<>(topic, 0, null, value));
            }
            producer.flush();
        }
        System.out.printf("{\"mode\":\"produce\",\"records\":%d,\"secs\":%.3f}%n", records,
            (System.nanoTime() - start) / 1e9);
    }

    static void seen(ConsumerRecords<byte[], byte[]> rs, AtomicLong deliveries, AtomicLong first, AtomicLong mine) {
        if (!rs.isEmpty()) {
            first.accumulateAndGet(System.nanoTime(), Math::min);
            deliveries.addAndGet(rs.count());
            mine.addAndGet(rs.count());
        }
    }

    static void done(ConsumerRecords<byte[], byte[]> rs, Set<Long> confirmed, AtomicLong last) {
        for (ConsumerRecord<byte[], byte[]> r : rs) {
            confirmed.add(r.offset());
        }
        last.accumulateAndGet(System.nanoTime(), Math::max);
    }

    static void classic(String bootstrap, String topic, String group, long records, Set<Long> confirmed,
                        AtomicLong deliveries, AtomicLong first, AtomicLong last, AtomicLong mine, long deadline) {
        Properties p = props(bootstrap);
        p.put("group.id", group);
        p.put("group.protocol", "classic");
        p.put("auto.offset.reset", "earliest");
        p.put("enable.auto.commit", "false");
        p.put("key.deserializer", ByteArrayDeserializer.class.getName());
        p.put("value.deserializer", ByteArrayDeserializer.class.getName());
        try (KafkaConsumer<byte[], byte[]> c = new KafkaConsumer<>(p)) {
            c.subscribe(List.of(topic));
            while (confirmed.size() < records && System.nanoTime() < deadline) {
                ConsumerRecords<byte[], byte[]> rs = c.poll(Duration.ofMillis(100));
                seen(rs, deliveries, first, mine);
                if (!rs.isEmpty()) {
                    c.commitSync();
                    done(rs, confirmed, last);
                }
            }
        }
    }

    static boolean ok(Map<TopicIdPartition, Optional<KafkaException>> result) {
        return result.values().stream().allMatch(Optional::isEmpty);
    }

    static void share(String bootstrap, String topic, String group, long records, boolean explicit,
                      Set<Long> confirmed, AtomicLong deliveries, AtomicLong first, AtomicLong last,
                      AtomicLong mine, long deadline) {
        Properties p = props(bootstrap);
        p.put("group.id", group);
        p.put("share.acknowledgement.mode", explicit ? "explicit" : "implicit");
        p.put("key.deserializer", ByteArrayDeserializer.class.getName());
        p.put("value.deserializer", ByteArrayDeserializer.class.getName());
        try (KafkaShareConsumer<byte[], byte[]> c = new KafkaShareConsumer<>(p)) {
            // Implicit mode: the broker's confirmations of the acknowledgements
            // piggy-backed on later fetches arrive through this callback.
            c.setAcknowledgementCommitCallback((offsets, e) -> {
                if (e == null) {
                    offsets.values().forEach(confirmed::addAll);
                    last.accumulateAndGet(System.nanoTime(), Math::max);
                }
            });
            c.subscribe(List.of(topic));
            while (confirmed.size() < records && System.nanoTime() < deadline) {
                ConsumerRecords<byte[], byte[]> rs = c.poll(Duration.ofMillis(100));
                seen(rs, deliveries, first, mine);
                if (explicit && !rs.isEmpty()) {
                    for (ConsumerRecord<byte[], byte[]> r : rs) {
                        c.acknowledge(r, AcknowledgeType.ACCEPT);
                    }
                    if (ok(c.commitSync())) {
                        done(rs, confirmed, last);
                    }
                }
            }
        }
    }
}
