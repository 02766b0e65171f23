package htcgrid.runtime;

/**
 * Thrown by a handler when retrying the task cannot help (bad input, say): htcgrid does not
 * retry an attempt whose error type ends in {@code .PermanentTaskError}.
 */
public class PermanentTaskError extends RuntimeException {
    private static final long serialVersionUID = 1L;

    public PermanentTaskError(String message) {
        super(message);
    }
}
