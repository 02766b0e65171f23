package htcgrid.runtime;

/**
 * A handler the runtime calls once per invocation: the event's JSON text in, the result's JSON
 * text out. The runtime parses nothing, so a handler uses whichever JSON library it likes (or
 * {@link Json}, for the examples). A thrown exception fails the invocation: its class is the
 * error type, its message and stack trace the error message.
 *
 * <p>The class needs a public no-argument constructor; the runtime builds one instance at
 * start-up (Lambda's init phase) and calls it for every invocation, one at a time.
 */
@FunctionalInterface
public interface RequestHandler {
    String handleRequest(String event, Context context) throws Exception;
}
