package htcgrid.runtime;

import java.math.BigDecimal;
import java.util.ArrayList;
import java.util.Collection;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * JSON text (RFC 8259) to Java values and back, for handlers without a JSON library (the JDK has
 * none) and for the runtime's error documents. Objects read as insertion-ordered {@code Map}s,
 * arrays as {@code List}s, numbers as {@code BigDecimal}s (nothing is rounded on the way
 * through), plus {@code String}, {@code Boolean} and null.
 */
public final class Json {
    /** Deeper nesting is refused, so a hostile event cannot overflow the reader's stack. */
    public static final int MAX_DEPTH = 512;

    private Json() {}

    /** Parses one JSON value; throws IllegalArgumentException naming what was expected where. */
    public static Object parse(String text) {
        Reader reader = new Reader(text);
        reader.skipSpace();
        Object value = reader.value(0);
        reader.skipSpace();
        if (reader.at < text.length()) {
            throw reader.error("the end of the text");
        }
        return value;
    }

    /** Writes maps (string keys), collections, strings, numbers, booleans and null as JSON. */
    public static String write(Object value) {
        StringBuilder out = new StringBuilder();
        write(value, out);
        return out.toString();
    }

    /** {@code text} as a JSON string, quotes included. */
    public static String quote(String text) {
        StringBuilder out = new StringBuilder(text.length() + 2);
        quote(text, out);
        return out.toString();
    }

    private static void write(Object value, StringBuilder out) {
        if (value == null) {
            out.append("null");
        } else if (value instanceof String text) {
            quote(text, out);
        } else if (value instanceof Boolean) {
            out.append(value);
        } else if (value instanceof Number number) {
            // BigDecimal, BigInteger, the integer types and Double.toString all print JSON
            // numbers ("1.0E-5", "1E+300"); only NaN and the infinities have no JSON form.
            if ((number instanceof Double || number instanceof Float)
                    && !Double.isFinite(number.doubleValue())) {
                throw new IllegalArgumentException("JSON has no " + number);
            }
            out.append(number);
        } else if (value instanceof Map<?, ?> map) {
            out.append('{');
            String separator = "";
            for (Map.Entry<?, ?> entry : map.entrySet()) {
                if (!(entry.getKey() instanceof String key)) {
                    throw new IllegalArgumentException("a JSON object's keys are strings, not "
                            + entry.getKey());
                }
                out.append(separator);
                quote(key, out);
                out.append(':');
                write(entry.getValue(), out);
                separator = ",";
            }
            out.append('}');
        } else if (value instanceof Collection<?> items) {
            out.append('[');
            String separator = "";
            for (Object item : items) {
                out.append(separator);
                write(item, out);
                separator = ",";
            }
            out.append(']');
        } else {
            throw new IllegalArgumentException("no JSON form for a " + value.getClass().getName());
        }
    }

    private static void quote(String text, StringBuilder out) {
        out.append('"');
        for (int i = 0; i < text.length(); i++) {
            char c = text.charAt(i);
            switch (c) {
                case '"' -> out.append("\\\"");
                case '\\' -> out.append("\\\\");
                case '\n' -> out.append("\\n");
                case '\r' -> out.append("\\r");
                case '\t' -> out.append("\\t");
                default -> {
                    if (Character.isHighSurrogate(c) && i + 1 < text.length()
                            && Character.isLowSurrogate(text.charAt(i + 1))) {
                        out.append(c).append(text.charAt(++i)); // a pair: one code point
                    } else if (c < 0x20 || Character.isSurrogate(c)) {
                        // Control characters must be escaped; a lone surrogate has no UTF-8
                        // form, so it travels as its escape (as Python's json writes it).
                        out.append(String.format("\\u%04x", (int) c));
                    } else {
                        out.append(c);
                    }
                }
            }
        }
        out.append('"');
    }

    /** A recursive-descent reader over the text; {@code at} is the next character. */
    private static final class Reader {
        private final String text;
        private int at;

        Reader(String text) {
            this.text = text;
        }

        Object value(int depth) {
            if (at >= text.length()) {
                throw error("a value");
            }
            return switch (text.charAt(at)) {
                case '{' -> object(depth + 1);
                case '[' -> array(depth + 1);
                case '"' -> string();
                case 't' -> literal("true", Boolean.TRUE);
                case 'f' -> literal("false", Boolean.FALSE);
                case 'n' -> literal("null", null);
                default -> number();
            };
        }

        private Map<String, Object> object(int depth) {
            checkDepth(depth);
            Map<String, Object> object = new LinkedHashMap<>();
            at++;
            skipSpace();
            if (take('}')) {
                return object;
            }
            do {
                skipSpace();
                if (at >= text.length() || text.charAt(at) != '"') {
                    throw error("a string (an object's key)");
                }
                String key = string();
                skipSpace();
                expect(':');
                skipSpace();
                object.put(key, value(depth)); // a repeated key: the last one wins
                skipSpace();
            } while (take(','));
            expect('}');
            return object;
        }

        private List<Object> array(int depth) {
            checkDepth(depth);
            List<Object> array = new ArrayList<>();
            at++;
            skipSpace();
            if (take(']')) {
                return array;
            }
            do {
                skipSpace();
                array.add(value(depth));
                skipSpace();
            } while (take(','));
            expect(']');
            return array;
        }

        private String string() {
            at++; // the opening quote
            StringBuilder out = new StringBuilder();
            while (true) {
                if (at >= text.length()) {
                    throw error("a closing quote");
                }
                char c = text.charAt(at++);
                if (c == '"') {
                    return out.toString();
                } else if (c < 0x20) {
                    at--;
                    throw error("an escape, not a raw control character,");
                } else if (c != '\\') {
                    out.append(c);
                    continue;
                }
                char escape = at < text.length() ? text.charAt(at++) : '\0';
                switch (escape) {
                    case '"', '\\', '/' -> out.append(escape);
                    case 'b' -> out.append('\b');
                    case 'f' -> out.append('\f');
                    case 'n' -> out.append('\n');
                    case 'r' -> out.append('\r');
                    case 't' -> out.append('\t');
                    case 'u' -> out.append(hex4());
                    default -> {
                        at--;
                        throw error("an escape (\\\" \\\\ \\/ \\b \\f \\n \\r \\t \\uXXXX)");
                    }
                }
            }
        }

        private char hex4() {
            int code = 0;
            for (int i = 0; i < 4; i++) {
                int digit = at < text.length() ? Character.digit(text.charAt(at), 16) : -1;
                if (digit < 0) {
                    throw error("four hexadecimal digits after \\u");
                }
                code = code * 16 + digit;
                at++;
            }
            return (char) code; // surrogate pairs arrive as two escapes, as UTF-16 holds them
        }

        private BigDecimal number() {
            int start = at;
            char first = text.charAt(at);
            if (first != '-' && (first < '0' || first > '9')) {
                throw error("a value");
            }
            take('-');
            if (!take('0')) {
                digits();
            }
            if (take('.')) {
                digits();
            }
            if (take('e') || take('E')) {
                if (!take('+')) {
                    take('-');
                }
                digits();
            }
            try {
                return new BigDecimal(text.substring(start, at));
            } catch (NumberFormatException tooLarge) { // an exponent beyond an int's range
                at = start;
                throw error("a number with an exponent within +-2147483647");
            }
        }

        private void digits() {
            int start = at;
            while (at < text.length() && text.charAt(at) >= '0' && text.charAt(at) <= '9') {
                at++;
            }
            if (at == start) {
                throw error("a digit");
            }
        }

        private Object literal(String word, Object value) {
            if (!text.startsWith(word, at)) {
                throw error("a value");
            }
            at += word.length();
            return value;
        }

        private void checkDepth(int depth) {
            if (depth > MAX_DEPTH) {
                throw error("at most " + MAX_DEPTH + " nested arrays and objects, not more");
            }
        }

        void skipSpace() {
            while (at < text.length() && " \t\r\n".indexOf(text.charAt(at)) >= 0) {
                at++;
            }
        }

        private boolean take(char c) {
            if (at < text.length() && text.charAt(at) == c) {
                at++;
                return true;
            }
            return false;
        }

        private void expect(char c) {
            if (!take(c)) {
                throw error("'" + c + "'");
            }
        }

        IllegalArgumentException error(String expected) {
            String found = at < text.length() ? "'" + text.charAt(at) + "'" : "the end";
            return new IllegalArgumentException(
                    "JSON: expected " + expected + " at character " + at + ", found " + found);
        }
    }
}
