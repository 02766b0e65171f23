package htcgrid.runtime;

import java.io.IOException;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.lang.reflect.InvocationTargetException;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpHeaders;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Objects;

/**
 * A Lambda custom runtime for Java over the Runtime API
 * (https://docs.aws.amazon.com/lambda/latest/dg/runtimes-api.html), JDK only: load the handler
 * named by {@code _HANDLER} (or report why it cannot be loaded and exit), then forever get the
 * next invocation, call the handler, post its result or its error. A failure of the API itself
 * ends the process: Lambda, or the htcgrid agent, starts the runtime again.
 */
public final class LambdaRuntime {
    private static final String TRACE_PROPERTY = "com.amazonaws.xray.traceHeader";

    private final HttpClient http;
    private final String api;
    private final Map<String, String> environment;

    LambdaRuntime(String address, Map<String, String> environment) {
        // HTTP/1.1 because the client's default, HTTP/2, asks every plain-HTTP request to upgrade.
        this.http = HttpClient.newBuilder().version(HttpClient.Version.HTTP_1_1).build();
        this.api = "http://" + address + "/2018-06-01/runtime";
        this.environment = environment;
    }

    public static void main(String[] args) throws IOException, InterruptedException {
        String address = System.getenv("AWS_LAMBDA_RUNTIME_API");
        if (address == null || address.isEmpty()) {
            System.err.println("AWS_LAMBDA_RUNTIME_API is not set: this runtime runs under "
                    + "Lambda or an htcgrid agent (htcgrid-agent --bootstrap)");
            System.exit(2);
        }
        LambdaRuntime runtime = new LambdaRuntime(address, System.getenv());
        RequestHandler handler;
        try {
            handler = load(System.getenv("_HANDLER"));
        } catch (ReflectiveOperationException | LinkageError | RuntimeException error) {
            Throwable cause = error instanceof InvocationTargetException thrown
                    ? thrown.getCause() : error; // what the handler's constructor threw
            runtime.post("/init/error", cause);
            System.exit(1);
            return;
        }
        while (true) {
            runtime.serveOne(handler);
        }
    }

    /**
     * The handler named as Lambda names Java handlers, {@code package.Class} or
     * {@code package.Class::handleRequest}, built with its no-argument constructor.
     */
    static RequestHandler load(String name) throws ReflectiveOperationException {
        if (name == null || name.isBlank()) {
            throw new IllegalArgumentException(
                    "_HANDLER is empty: name a class that implements " + RequestHandler.class.getName());
        }
        String className = name;
        int colons = name.indexOf("::");
        if (colons >= 0) {
            className = name.substring(0, colons);
            if (!name.substring(colons + 2).equals("handleRequest")) {
                throw new IllegalArgumentException("_HANDLER " + name
                        + ": the method is handleRequest, the one RequestHandler declares");
            }
        }
        Class<?> type;
        try {
            type = Class.forName(className);
        } catch (ClassNotFoundException missing) {
            throw new ClassNotFoundException("_HANDLER " + name + ": no class " + className
                    + " in runtime.jar, $LAMBDA_TASK_ROOT or its lib/*.jar", missing);
        }
        if (!RequestHandler.class.isAssignableFrom(type)) {
            throw new IllegalArgumentException("_HANDLER " + name + ": " + className
                    + " does not implement " + RequestHandler.class.getName());
        }
        return (RequestHandler) type.getDeclaredConstructor().newInstance();
    }

    /** Gets the next invocation (blocking until there is one), runs it, posts the outcome. */
    void serveOne(RequestHandler handler) throws IOException, InterruptedException {
        HttpResponse<byte[]> next = http.send(
                HttpRequest.newBuilder(URI.create(api + "/invocation/next")).GET().build(),
                HttpResponse.BodyHandlers.ofByteArray());
        if (next.statusCode() != 200) {
            throw new IOException("GET /invocation/next: HTTP " + next.statusCode());
        }
        Context context = contextOf(next.headers());
        // Lambda's Java runtime passes the trace header to the X-Ray SDK this way.
        if (context.traceId() != null) {
            System.setProperty(TRACE_PROPERTY, context.traceId());
        } else {
            System.clearProperty(TRACE_PROPERTY);
        }
        String invocation = "/invocation/" + context.awsRequestId();
        String result;
        try {
            result = handler.handleRequest(
                    new String(next.body(), StandardCharsets.UTF_8), context);
        } catch (Throwable error) { // whatever the handler throws is the invocation's error
            post(invocation + "/error", error);
            if (error instanceof VirtualMachineError) {
                System.exit(1); // after an OutOfMemoryError and the like, start a fresh JVM
            }
            return;
        }
        post(invocation + "/response", Objects.requireNonNullElse(result, "null"), null);
    }

    private Context contextOf(HttpHeaders headers) throws IOException {
        String id = required(headers, "Lambda-Runtime-Aws-Request-Id");
        long deadlineMs;
        try {
            deadlineMs = Long.parseLong(required(headers, "Lambda-Runtime-Deadline-Ms"));
        } catch (NumberFormatException notANumber) {
            throw new IOException("Lambda-Runtime-Deadline-Ms is not a number of milliseconds");
        }
        return new Context(
                id,
                deadlineMs,
                headers.firstValue("Lambda-Runtime-Invoked-Function-Arn").orElse(null),
                headers.firstValue("Lambda-Runtime-Trace-Id").orElse(null),
                headers.firstValue("Lambda-Runtime-Client-Context").orElse(null),
                headers.firstValue("Lambda-Runtime-Cognito-Identity").orElse(null),
                environment.get("AWS_LAMBDA_FUNCTION_NAME"),
                environment.get("AWS_LAMBDA_FUNCTION_VERSION"),
                environment.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE"),
                environment.get("AWS_LAMBDA_LOG_GROUP_NAME"),
                environment.get("AWS_LAMBDA_LOG_STREAM_NAME"));
    }

    private static String required(HttpHeaders headers, String name) throws IOException {
        return headers.firstValue(name).orElseThrow(
                () -> new IOException("GET /invocation/next: no " + name + " header"));
    }

    private void post(String path, Throwable error) throws IOException, InterruptedException {
        String type = error.getClass().getName();
        post(path, errorDocument(error), type);
    }

    private void post(String path, String json, String errorType)
            throws IOException, InterruptedException {
        HttpRequest.Builder request = HttpRequest.newBuilder(URI.create(api + path))
                .header("Content-Type", "application/json")
                .POST(HttpRequest.BodyPublishers.ofString(json, StandardCharsets.UTF_8));
        if (errorType != null) {
            request.header("Lambda-Runtime-Function-Error-Type", errorType);
        }
        HttpResponse<String> response = http.send(
                request.build(), HttpResponse.BodyHandlers.ofString(StandardCharsets.UTF_8));
        if (response.statusCode() != 202) {
            // Refused (a result over 6 MB, say): the API has failed the invocation on its side,
            // so the runtime logs why and goes on to the next one.
            System.err.println("POST " + path + ": HTTP " + response.statusCode() + " "
                    + response.body());
        }
    }

    /**
     * The Runtime API's error document: the exception's class as the type, its message, and its
     * stack trace as {@code printStackTrace} prints it (causes and suppressed exceptions too),
     * one line per entry.
     */
    static String errorDocument(Throwable error) {
        StringWriter trace = new StringWriter();
        error.printStackTrace(new PrintWriter(trace));
        Map<String, Object> document = new LinkedHashMap<>();
        document.put("errorType", error.getClass().getName());
        document.put("errorMessage", Objects.requireNonNullElse(error.getMessage(), ""));
        // The first line repeats the type and message.
        document.put("stackTrace", trace.toString().lines().skip(1).map(String::strip).toList());
        return Json.write(document);
    }
}
