// The example C++ custom runtime: a `bootstrap` serving one small handler over the Lambda
// Runtime API (lambda_runtime.hpp). Its event chooses what it does:
//   {"op": "stats", "values": [1, 2, 3]}   count, sum, mean, min and max of the values, and the
//                                          invocation's context as the runtime received it
//   {"op": "fail", "type": "T", "message": "M"}   fails with error type T and message M
//   {"op": "sleep", "seconds": 5}          sleeps, then says how long (to overrun a deadline)
// An event it cannot read fails as a PermanentTaskError (retrying would not help).
#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <string>
#include <thread>

#include "lambda_runtime.hpp"

using nlohmann::json;

namespace example {

// Events come from whoever submits tasks: every field is checked, and a bad one named.
const json& field(const json& event, const char* name) {
    const auto found = event.find(name);
    if (found == event.end()) {
        throw lambda_runtime::HandlerError("PermanentTaskError",
                                           std::string(name) + ": missing from the event");
    }
    return *found;
}

json context_of(const lambda_runtime::Invocation& invocation) {
    json client_context = nullptr;
    if (!invocation.client_context.empty()) {
        client_context = json::parse(invocation.client_context, nullptr, false);
    }
    return {
        {"request_id", invocation.request_id},
        {"deadline_ms", invocation.deadline_ms},
        {"remaining_ms", invocation.remaining().count()},
        {"function_arn", invocation.function_arn},
        {"trace_id", invocation.trace_id},
        {"client_context", client_context.is_discarded() ? json(nullptr) : client_context},
    };
}

json stats(const json& event, const lambda_runtime::Invocation& invocation) {
    const json& values = field(event, "values");
    if (!values.is_array() || values.empty()) {
        throw lambda_runtime::HandlerError("PermanentTaskError",
                                           "values: must be a list of at least one number");
    }
    double sum = 0.0;
    double low = 0.0;
    double high = 0.0;
    for (std::size_t i = 0; i < values.size(); ++i) {
        if (!values[i].is_number()) {
            throw lambda_runtime::HandlerError(
                "PermanentTaskError", "values[" + std::to_string(i) + "]: not a number");
        }
        const double value = values[i].get<double>();
        sum += value;
        low = i == 0 ? value : std::min(low, value);
        high = i == 0 ? value : std::max(high, value);
    }
    return {
        {"count", values.size()},
        {"sum", sum},
        {"mean", sum / static_cast<double>(values.size())},
        {"min", low},
        {"max", high},
        {"context", context_of(invocation)},
    };
}

json fail(const json& event) {
    const json& type = field(event, "type");
    const json& message = field(event, "message");
    if (!type.is_string() || !message.is_string()) {
        throw lambda_runtime::HandlerError("PermanentTaskError", "type, message: must be strings");
    }
    throw lambda_runtime::HandlerError(type.get<std::string>(), message.get<std::string>());
}

json sleep(const json& event) {
    const json& seconds = field(event, "seconds");
    if (!seconds.is_number() || seconds.get<double>() < 0 || seconds.get<double>() > 900) {
        throw lambda_runtime::HandlerError("PermanentTaskError",
                                           "seconds: must be a number from 0 to 900");
    }
    std::this_thread::sleep_for(std::chrono::duration<double>(seconds.get<double>()));
    return {{"slept_s", seconds}};
}

/// The handler: the event's "op" chooses what to do.
std::string handle(const lambda_runtime::Invocation& invocation) {
    const json event = json::parse(invocation.payload, nullptr, false);
    if (event.is_discarded() || !event.is_object()) {
        throw lambda_runtime::HandlerError("PermanentTaskError", "the event is not a JSON object");
    }
    const json& op = field(event, "op");
    json result;
    if (op == "stats") {
        result = stats(event, invocation);
    } else if (op == "fail") {
        result = fail(event);
    } else if (op == "sleep") {
        result = sleep(event);
    } else {
        // The op is echoed cut short: the event may be hostile, and megabytes of it would
        // only bury the error.
        const std::string shown = op.dump(-1, ' ', false, json::error_handler_t::replace);
        throw lambda_runtime::HandlerError(
            "PermanentTaskError",
            "op: " + shown.substr(0, 40) + (shown.size() > 40 ? "..." : "") +
                " is not stats, fail or sleep");
    }
    // Strings from the event may hold bytes that are not UTF-8: replace them rather than fail.
    return result.dump(-1, ' ', false, json::error_handler_t::replace);
}

}  // namespace example

int main() {
    return lambda_runtime::run_with_init([]() -> lambda_runtime::Handler {
        // Like Lambda's runtimes, the runtime serves the handler _HANDLER names; this one has
        // a single handler, and an empty _HANDLER means it.
        const char* name = std::getenv("_HANDLER");
        const std::string handler = name == nullptr ? "" : name;
        if (!handler.empty() && handler != "example.handle") {
            throw lambda_runtime::HandlerError(
                "Runtime.HandlerNotFound",
                "_HANDLER: '" + handler + "' is not a handler of this runtime (example.handle)");
        }
        return example::handle;
    });
}
