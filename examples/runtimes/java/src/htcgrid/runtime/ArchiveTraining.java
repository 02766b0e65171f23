package htcgrid.runtime;

import com.sun.net.httpserver.HttpExchange;
import com.sun.net.httpserver.HttpServer;
import java.io.IOException;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.nio.charset.StandardCharsets;

/**
 * Takes the runtime through a result and an error against an in-process Runtime API, then exits.
 * build.sh runs it under {@code -XX:ArchiveClassesAtExit} so that the classes an invocation
 * loads, the JDK's HTTP client above all, go to a class-data sharing archive that every start of
 * the runtime maps instead of loading them again: about a third less CPU to the first result.
 */
final class ArchiveTraining {
    private ArchiveTraining() {}

    public static void main(String[] args) throws IOException, InterruptedException {
        HttpServer api = HttpServer.create(
                new InetSocketAddress(InetAddress.getLoopbackAddress(), 0), 0);
        api.createContext("/2018-06-01/runtime/invocation/next", ArchiveTraining::next);
        api.createContext("/2018-06-01/runtime/invocation/training/", exchange -> {
            exchange.getRequestBody().readAllBytes();
            exchange.sendResponseHeaders(202, -1);
            exchange.close();
        });
        api.start();
        try {
            LambdaRuntime runtime = new LambdaRuntime(
                    "127.0.0.1:" + api.getAddress().getPort(), System.getenv());
            runtime.serveOne((event, context) -> Json.write(Json.parse(event)));
            runtime.serveOne((event, context) -> {
                throw new IllegalStateException("training");
            });
        } finally {
            api.stop(0);
        }
    }

    private static void next(HttpExchange exchange) throws IOException {
        byte[] event = "{\"training\": [1, 2.5, \"\\u00e9\", true, null]}"
                .getBytes(StandardCharsets.UTF_8);
        exchange.getResponseHeaders().add("Lambda-Runtime-Aws-Request-Id", "training");
        exchange.getResponseHeaders().add("Lambda-Runtime-Deadline-Ms",
                String.valueOf(System.currentTimeMillis() + 60_000));
        exchange.sendResponseHeaders(200, event.length);
        exchange.getResponseBody().write(event);
        exchange.close();
    }
}
