package htcgrid.runtime;

/**
 * What the runtime knows of one invocation, from the Runtime API's headers and the environment
 * Lambda sets: Lambda's Java {@code Context} in a record.
 *
 * @param awsRequestId the invocation's id (on htcgrid, the task id)
 * @param deadlineMs when the invocation times out, epoch milliseconds
 * @param invokedFunctionArn the function's ARN
 * @param traceId the X-Ray trace header, or null
 * @param clientContext the client context's JSON text, or null (htcgrid sends the session id
 *     and attempt number: {@code {"custom": {"session_id": ..., "attempt": "N"}}})
 * @param cognitoIdentity the Cognito identity's JSON text, or null (htcgrid sends none)
 */
public record Context(
        String awsRequestId,
        long deadlineMs,
        String invokedFunctionArn,
        String traceId,
        String clientContext,
        String cognitoIdentity,
        String functionName,
        String functionVersion,
        String memoryLimitMb,
        String logGroupName,
        String logStreamName) {

    /** Milliseconds left before the deadline (negative once it has passed). */
    public long remainingTimeMillis() {
        return deadlineMs - System.currentTimeMillis();
    }
}
