package example;

import htcgrid.runtime.Context;
import htcgrid.runtime.Json;
import htcgrid.runtime.PermanentTaskError;
import htcgrid.runtime.RequestHandler;
import java.math.BigDecimal;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * An example handler: prices a European or American option on a Cox-Ross-Rubinstein binomial
 * tree.
 *
 * <p>Event: {@code {"spot": 100, "strike": 105, "rate": 0.05, "volatility": 0.2,
 * "maturity": 1.0, "right": "call" | "put", "exercise": "european" | "american",
 * "steps": 500, "id": <any JSON, returned as given>, "sleep_s": <seconds to wait first>}}.
 * Result: {@code {"id": ..., "price": ..., "pid": <the JVM's process id>}}. Bad input throws
 * {@link PermanentTaskError}, which the grid does not retry.
 */
public final class OptionPricer implements RequestHandler {
    /** A tree of n steps takes n^2/2 node updates: this bounds one task's work. */
    static final int MAX_STEPS = 20_000;

    @Override
    public String handleRequest(String event, Context context) throws InterruptedException {
        if (!(Json.parse(event) instanceof Map<?, ?> trade)) {
            throw new PermanentTaskError("the event is not a JSON object: " + event);
        }
        double seconds = number(trade, "sleep_s", 0);
        if (seconds > 0) {
            Thread.sleep((long) (seconds * 1000)); // stands for a long computation
        }
        double price = price(
                positive(trade, "spot"),
                positive(trade, "strike"),
                number(trade, "rate", 0),
                positive(trade, "volatility"),
                positive(trade, "maturity"),
                choice(trade, "right", "call", "put").equals("call"),
                choice(trade, "exercise", "european", "american").equals("american"),
                (int) number(trade, "steps", 500));
        Map<String, Object> result = new LinkedHashMap<>();
        result.put("id", trade.get("id"));
        result.put("price", price);
        result.put("pid", ProcessHandle.current().pid());
        return Json.write(result);
    }

    static double price(double spot, double strike, double rate, double volatility,
            double maturity, boolean call, boolean american, int steps) {
        if (steps < 1 || steps > MAX_STEPS) {
            throw new PermanentTaskError("steps: " + steps + "; from 1 to " + MAX_STEPS);
        }
        double dt = maturity / steps;
        double up = Math.exp(volatility * Math.sqrt(dt));
        double down = 1 / up;
        double growth = Math.exp(rate * dt);
        double p = (growth - down) / (up - down); // the risk-neutral probability of a move up
        if (!(p > 0 && p < 1)) {
            throw new PermanentTaskError("steps: " + steps + " are too few for this rate and "
                    + "volatility (the tree's probability of a move up is " + p + ")");
        }
        // values[i]: the option's value at the node reached by i moves up, from maturity back.
        double[] values = new double[steps + 1];
        for (int i = 0; i <= steps; i++) {
            values[i] = payoff(spot * Math.pow(up, 2 * i - steps), strike, call);
        }
        for (int step = steps - 1; step >= 0; step--) {
            for (int i = 0; i <= step; i++) {
                double held = (p * values[i + 1] + (1 - p) * values[i]) / growth;
                values[i] = american
                        ? Math.max(held, payoff(spot * Math.pow(up, 2 * i - step), strike, call))
                        : held;
            }
        }
        return values[0];
    }

    private static double payoff(double spot, double strike, boolean call) {
        return Math.max(call ? spot - strike : strike - spot, 0);
    }

    private static double number(Map<?, ?> trade, String field, double absent) {
        Object value = trade.get(field);
        if (value == null) {
            return absent;
        }
        if (!(value instanceof BigDecimal number)) {
            throw new PermanentTaskError(field + ": " + Json.write(value) + " is not a number");
        }
        return number.doubleValue();
    }

    private static double positive(Map<?, ?> trade, String field) {
        if (trade.get(field) == null) {
            throw new PermanentTaskError(field + ": missing");
        }
        double value = number(trade, field, 0);
        if (!(value > 0 && Double.isFinite(value))) {
            throw new PermanentTaskError(field + ": " + value + " is not a positive number");
        }
        return value;
    }

    private static String choice(Map<?, ?> trade, String field, String first, String second) {
        Object value = trade.get(field);
        if (value == null) {
            return first;
        }
        if (!first.equals(value) && !second.equals(value)) {
            throw new PermanentTaskError(field + ": " + Json.write(value) + " is not \""
                    + first + "\" or \"" + second + "\"");
        }
        return (String) value;
    }
}
