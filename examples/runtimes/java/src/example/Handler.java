package example;

import htcgrid.runtime.Context;
import htcgrid.runtime.RequestHandler;

/** The smallest handler: returns its event unchanged (what {@code make bench} runs). */
public final class Handler implements RequestHandler {
    @Override
    public String handleRequest(String event, Context context) {
        return event;
    }
}
