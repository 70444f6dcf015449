package weir.harness;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.charset.StandardCharsets;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * The Java side of tests/java_harness.py: programs print results as JSON
 * lines on stdout ({@link #emit}), or serve scenarios one command a line
 * ({@link #serve}) so one JVM runs a whole pytest module.
 */
public final class Harness {
    public static final ObjectMapper JSON = new ObjectMapper();

    /** A scenario: its JSON arguments in, any JSON-serialisable result out. */
    @FunctionalInterface
    public interface Scenario {
        Object run(JsonNode args) throws Exception;
    }

    private Harness() {}

    /** Prints one JSON object on stdout (one line). */
    public static synchronized void emit(Object value) {
        try {
            System.out.println(JSON.writeValueAsString(value));
            System.out.flush();
        } catch (Exception e) {
            throw new IllegalStateException(e);
        }
    }

    /** A JSON object from alternating keys and values. */
    public static Map<String, Object> obj(Object... kv) {
        Map<String, Object> m = new LinkedHashMap<>();
        for (int i = 0; i + 1 < kv.length; i += 2) {
            m.put((String) kv[i], kv[i + 1]);
        }
        return m;
    }

    /**
     * Reads {"scenario": name, "args": {...}} lines from stdin until EOF and
     * answers each with {"ok": true, "result": ...} or {"ok": false, "error",
     * "trace"}. A failing scenario does not end the program.
     */
    public static void serve(Map<String, Scenario> scenarios) throws Exception {
        BufferedReader in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
        String line;
        while ((line = in.readLine()) != null) {
            if (line.isBlank()) {
                continue;
            }
            JsonNode cmd = JSON.readTree(line);
            String name = cmd.path("scenario").asText();
            ObjectNode answer = JSON.createObjectNode();
            answer.put("scenario", name);
            Scenario s = scenarios.get(name);
            try {
                if (s == null) {
                    throw new IllegalArgumentException("unknown scenario " + name);
                }
                Object result = s.run(cmd.path("args"));
                answer.put("ok", true);
                answer.set("result", JSON.valueToTree(result));
            } catch (Throwable e) {
                StringWriter trace = new StringWriter();
                e.printStackTrace(new PrintWriter(trace));
                answer.put("ok", false);
                answer.put("error", e.toString());
                answer.put("trace", trace.toString());
            }
            emit(answer);
        }
    }
}
