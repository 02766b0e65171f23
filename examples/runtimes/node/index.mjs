// A Lambda Node.js handler as any Lambda function has it: nothing in it knows about htcgrid.
//
// aws-lambda-ric (the Node.js runtime interface client) runs it unmodified, on Lambda or as an
// htcgrid worker. The event's `action` picks what it does, so one handler shows each outcome
// the grid records: a result computed from the event, an error (retried, or permanent), a
// deadline overrun, and what the context carries.

// An error no retry can help: the grid fails the task at once when a runtime reports an error
// of this name (the runtime reports `error.name` as the error type).
class PermanentTaskError extends Error {
  constructor(message) {
    super(message);
    this.name = "PermanentTaskError";
  }
}

export const handler = async (event, context) => {
  const action = event.action ?? "square";
  switch (action) {
    case "square":
      return { value: event.value, square: event.value * event.value, runtime: "node" };
    case "fail":
      throw new RangeError(event.message ?? "the handler failed");
    case "fail_permanently":
      throw new PermanentTaskError(event.message ?? "the handler failed for good");
    case "sleep":
      await new Promise((resolve) => setTimeout(resolve, event.seconds * 1000));
      return { slept_s: event.seconds };
    case "context":
      return {
        request_id: context.awsRequestId,
        remaining_ms: context.getRemainingTimeInMillis(),
        custom: context.clientContext?.custom ?? null,
        function_name: context.functionName,
        invoked_function_arn: context.invokedFunctionArn,
        pid: process.pid,
      };
    default:
      throw new RangeError(
        `action: ${JSON.stringify(action)} is not one of square, fail, fail_permanently, sleep, context`,
      );
  }
};
