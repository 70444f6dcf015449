package weir.cdc;

import io.debezium.engine.ChangeEvent;
import io.debezium.engine.DebeziumEngine;
import io.debezium.engine.format.Json;
import java.io.FileInputStream;
import java.util.Properties;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import weir.harness.Harness;

/**
 * Debezium's own PostgreSQL connector in its embedded engine, whose records
 * come out through Kafka's JsonConverter (schemas enabled), as the reference
 * for Weir's connector. Args: a properties file, the number of records to
 * wait for, a timeout in seconds. Prints one JSON line per record
 * ({"topic", "key", "value"}, the converter's strings), then stops.
 */
public final class DebeziumCapture {
    public static void main(String[] args) throws Exception {
        try {
            capture(args);
        } catch (Throwable t) {
            t.printStackTrace();
            System.exit(3);
        }
    }

    private static void capture(String[] args) throws Exception {
        Properties props = new Properties();
        try (FileInputStream in = new FileInputStream(args[0])) {
            props.load(in);
        }
        int want = Integer.parseInt(args[1]);
        long deadline = System.currentTimeMillis() + 1000L * Long.parseLong(args[2]);
        AtomicInteger seen = new AtomicInteger();
        java.util.concurrent.atomic.AtomicReference<String> failure = new java.util.concurrent.atomic.AtomicReference<>();
        DebeziumEngine<ChangeEvent<String, String>> engine = DebeziumEngine.create(Json.class)
                .using(props)
                .notifying(r -> {
                    Harness.emit(Harness.obj("topic", r.destination(), "key", r.key(), "value", r.value()));
                    seen.incrementAndGet();
                })
                .using((success, message, error) -> {
                    if (!success) {
                        failure.set(message + (error != null ? ": " + error : ""));
                    }
                })
                .build();
        ExecutorService exec = Executors.newSingleThreadExecutor();
        exec.execute(engine);
        while (seen.get() < want && failure.get() == null && System.currentTimeMillis() < deadline) {
            Thread.sleep(100);
        }
        engine.close();
        exec.shutdown();
        exec.awaitTermination(30, TimeUnit.SECONDS);
        if (failure.get() != null) {
            System.err.println("engine failed: " + failure.get());
            System.exit(2);
        }
        System.exit(0);
    }
}
