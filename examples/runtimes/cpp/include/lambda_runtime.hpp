// lambda_runtime.hpp: a small client of the AWS Lambda Runtime API (version 2018-06-01) for
// custom runtimes written in C++17, over libcurl. A runtime's `bootstrap` calls
// lambda_runtime::run(handler): it asks the API for the next invocation, calls the handler, and
// posts the handler's result or error, for as long as the API answers. One CURL handle serves
// every request, so the connection to the API stays open between them.
//
// A handler takes the invocation and returns its result as JSON text, or throws. A HandlerError
// carries an error type, a message and the stack trace captured where it was made; any other
// exception is reported with its demangled type name and what(). Stack traces name functions
// only if the executable exports its symbols (link with -rdynamic: CMake's ENABLE_EXPORTS).
//
// API reference: https://docs.aws.amazon.com/lambda/latest/dg/runtimes-api.html
#pragma once

#include <curl/curl.h>
#include <cxxabi.h>
#include <execinfo.h>

#include <cctype>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <typeinfo>
#include <utility>
#include <vector>

namespace lambda_runtime {

/// One invocation as GET /runtime/invocation/next hands it over: the event, and every header
/// the API documents. A header the API omitted (it omits the Cognito identity and the client
/// context when there is none) is an empty string.
struct Invocation {
    std::string request_id;        // Lambda-Runtime-Aws-Request-Id
    std::int64_t deadline_ms = 0;  // Lambda-Runtime-Deadline-Ms: the deadline, epoch milliseconds
    std::string function_arn;      // Lambda-Runtime-Invoked-Function-Arn
    std::string trace_id;          // Lambda-Runtime-Trace-Id
    std::string client_context;    // Lambda-Runtime-Client-Context (JSON)
    std::string cognito_identity;  // Lambda-Runtime-Cognito-Identity (JSON)
    std::string payload;           // the event (JSON)

    /// Time left until the deadline; negative once it has passed.
    std::chrono::milliseconds remaining() const {
        const auto now = std::chrono::duration_cast<std::chrono::milliseconds>(
            std::chrono::system_clock::now().time_since_epoch());
        return std::chrono::milliseconds(deadline_ms) - now;
    }
};

/// The API failed or answered what a runtime cannot go on from (a refused connection, an
/// HTTP 500): the runtime exits, and whoever started it starts it again.
class ApiError : public std::runtime_error {
  public:
    using std::runtime_error::runtime_error;
};

namespace detail {

inline std::string demangle(const char* name) {
    int status = 0;
    std::unique_ptr<char, void (*)(void*)> readable(
        abi::__cxa_demangle(name, nullptr, nullptr, &status), std::free);
    return status == 0 && readable ? std::string(readable.get()) : std::string(name);
}

/// One line of backtrace_symbols(), "/path/module(symbol+offset) [address]", as
/// "symbol+offset in module" with the symbol demangled. A frame without a symbol (a static
/// function) keeps its offset in the module, "??+offset in module", which addr2line resolves.
inline std::string readable_frame(const std::string& frame) {
    const auto open = frame.find('(');
    const auto plus = frame.find('+', open);
    const auto close = frame.find(')', open);
    if (open == std::string::npos || plus == std::string::npos || close == std::string::npos ||
        plus > close) {
        return frame;
    }
    const auto slash = frame.rfind('/', open);
    const auto module = slash == std::string::npos ? 0 : slash + 1;
    const std::string symbol = frame.substr(open + 1, plus - open - 1);
    return (symbol.empty() ? std::string("??") : demangle(symbol.c_str())) +
           frame.substr(plus, close - plus) + " in " + frame.substr(module, open - module);
}

/// The calling thread's stack, innermost frame first, without this function's own frame and
/// the `skip` frames above it. Not inlined, so that the frames to skip are known.
[[gnu::noinline]] inline std::vector<std::string> capture_stack_trace(int skip) {
    constexpr int kMaxFrames = 64;
    void* addresses[kMaxFrames];
    const int depth = backtrace(addresses, kMaxFrames);
    std::vector<std::string> frames;
    std::unique_ptr<char*, void (*)(void*)> symbols(backtrace_symbols(addresses, depth), std::free);
    if (!symbols) {
        return frames;  // out of memory: an error without its trace is still worth reporting
    }
    for (int i = 1 + skip; i < depth; ++i) {
        frames.push_back(readable_frame(symbols.get()[i]));
        if (frames.back().rfind("main+", 0) == 0) {
            break;  // what runs before main (the C library's start-up) says nothing of the error
        }
    }
    return frames;
}

/// The length of the well-formed UTF-8 sequence (RFC 3629) that starts at text[at], or 0 if
/// the bytes there are not one: a stray continuation byte, an overlong form, a surrogate, a
/// code point above U+10FFFF or a sequence cut short.
inline std::size_t utf8_sequence_length(std::string_view text, std::size_t at) {
    const auto byte = [&](std::size_t k) { return static_cast<unsigned char>(text[at + k]); };
    const unsigned char lead = byte(0);
    std::size_t length = 0;
    unsigned char low = 0x80;  // the range of the second byte, narrowed for some lead bytes
    unsigned char high = 0xBF;
    if (lead >= 0xC2 && lead <= 0xDF) {
        length = 2;
    } else if (lead >= 0xE0 && lead <= 0xEF) {
        length = 3;
        low = lead == 0xE0 ? 0xA0 : low;    // overlong
        high = lead == 0xED ? 0x9F : high;  // UTF-16 surrogates
    } else if (lead >= 0xF0 && lead <= 0xF4) {
        length = 4;
        low = lead == 0xF0 ? 0x90 : low;    // overlong
        high = lead == 0xF4 ? 0x8F : high;  // above U+10FFFF
    } else {
        return 0;
    }
    if (at + length > text.size() || byte(1) < low || byte(1) > high) {
        return 0;
    }
    for (std::size_t k = 2; k < length; ++k) {
        if (byte(k) < 0x80 || byte(k) > 0xBF) {
            return 0;
        }
    }
    return length;
}

}  // namespace detail

/// Appends `text` to `out` as a JSON string: quoted, with quotes, backslashes and control
/// characters escaped. JSON text must be UTF-8, and an error message may hold any bytes (a
/// file name, a what() built from the event), so each byte that is not part of well-formed
/// UTF-8 becomes U+FFFD, the replacement character.
inline void append_json_string(std::string& out, std::string_view text) {
    static constexpr char kHex[] = "0123456789abcdef";
    out += '"';
    for (std::size_t i = 0; i < text.size();) {
        const auto byte = static_cast<unsigned char>(text[i]);
        if (byte >= 0x80) {
            const std::size_t length = detail::utf8_sequence_length(text, i);
            if (length == 0) {
                out += "\\ufffd";
                ++i;
            } else {
                out.append(text.substr(i, length));
                i += length;
            }
            continue;
        }
        switch (byte) {
            case '"': out += "\\\""; break;
            case '\\': out += "\\\\"; break;
            case '\b': out += "\\b"; break;
            case '\f': out += "\\f"; break;
            case '\n': out += "\\n"; break;
            case '\r': out += "\\r"; break;
            case '\t': out += "\\t"; break;
            default:
                if (byte < 0x20) {
                    out += "\\u00";
                    out += kHex[byte >> 4];
                    out += kHex[byte & 0xF];
                } else {
                    out += static_cast<char>(byte);
                }
        }
        ++i;
    }
    out += '"';
}

/// What the runtime posts when an invocation or the runtime's initialisation fails.
struct ErrorReport {
    std::string type;
    std::string message;
    std::vector<std::string> stack_trace;

    /// The API's error document: {"errorType", "errorMessage", "stackTrace": [...]}.
    std::string to_json() const {
        std::string json = "{\"errorType\":";
        append_json_string(json, type);
        json += ",\"errorMessage\":";
        append_json_string(json, message);
        json += ",\"stackTrace\":[";
        for (std::size_t i = 0; i < stack_trace.size(); ++i) {
            if (i > 0) {
                json += ',';
            }
            append_json_string(json, stack_trace[i]);
        }
        json += "]}";
        return json;
    }
};

/// An error a handler (or the runtime's initialisation) throws on purpose: its type is what
/// the grid records as the error's type (a type of "PermanentTaskError", or one ending in
/// ".PermanentTaskError", is not retried), with the stack where the error was made.
class HandlerError : public std::runtime_error {
  public:
    // Not inlined, so that its frame is always the one capture_stack_trace skips.
    [[gnu::noinline]] HandlerError(std::string type, const std::string& message)
        : std::runtime_error(message),
          type_(std::move(type)),
          stack_trace_(detail::capture_stack_trace(1)) {}

    const std::string& type() const { return type_; }
    const std::vector<std::string>& stack_trace() const { return stack_trace_; }

  private:
    std::string type_;
    std::vector<std::string> stack_trace_;
};

/// A handler: the invocation in, its result (JSON text) out; it throws to fail the invocation.
using Handler = std::function<std::string(const Invocation&)>;

/// The error a handler or an initialisation threw, as the API takes it. Called only inside a
/// catch block.
inline ErrorReport report_current_exception() {
    try {
        throw;
    } catch (const HandlerError& error) {
        return ErrorReport{error.type(), error.what(), error.stack_trace()};
    } catch (const std::exception& error) {
        return ErrorReport{detail::demangle(typeid(error).name()), error.what(), {}};
    } catch (...) {
        // Code may throw anything (an int, a library's own type): the runtime must report it
        // rather than die with the invocation unanswered, and the type is all there is to say.
        const std::type_info* type = abi::__cxa_current_exception_type();
        std::string name = type != nullptr ? detail::demangle(type->name()) : "unknown";
        return ErrorReport{name, "the handler threw a " + name + ", not a std::exception", {}};
    }
}

/// The Runtime API at one address ("host:port", what AWS_LAMBDA_RUNTIME_API holds), over one
/// CURL handle: libcurl keeps the connection open from one request to the next.
class RuntimeApi {
  public:
    explicit RuntimeApi(const std::string& address)
        : base_url_("http://" + address + "/2018-06-01/runtime"), curl_(curl_easy_init()) {
        if (curl_ == nullptr) {
            throw ApiError("curl_easy_init failed");
        }
    }
    ~RuntimeApi() { curl_easy_cleanup(curl_); }
    RuntimeApi(const RuntimeApi&) = delete;
    RuntimeApi& operator=(const RuntimeApi&) = delete;

    /// Waits for the next invocation (the API holds the request until there is one).
    Invocation next() {
        Reply reply = request("/invocation/next", nullptr, "");
        if (reply.status != 200) {
            throw ApiError("GET /invocation/next: HTTP " + std::to_string(reply.status) + ": " +
                           reply.body);
        }
        Invocation invocation;
        invocation.request_id = reply.header("lambda-runtime-aws-request-id");
        if (invocation.request_id.empty()) {
            throw ApiError("GET /invocation/next: no Lambda-Runtime-Aws-Request-Id header");
        }
        invocation.deadline_ms =
            std::strtoll(reply.header("lambda-runtime-deadline-ms").c_str(), nullptr, 10);
        invocation.function_arn = reply.header("lambda-runtime-invoked-function-arn");
        invocation.trace_id = reply.header("lambda-runtime-trace-id");
        invocation.client_context = reply.header("lambda-runtime-client-context");
        invocation.cognito_identity = reply.header("lambda-runtime-cognito-identity");
        invocation.payload = std::move(reply.body);
        return invocation;
    }

    /// Posts an invocation's result.
    void post_response(const std::string& request_id, const std::string& result) {
        Reply reply = request("/invocation/" + request_id + "/response", &result, "");
        check_accepted(reply, "POST /invocation/" + request_id + "/response");
    }

    /// Posts an invocation's error.
    void post_error(const std::string& request_id, const ErrorReport& error) {
        const std::string body = error.to_json();
        Reply reply = request("/invocation/" + request_id + "/error", &body, error.type);
        check_accepted(reply, "POST /invocation/" + request_id + "/error");
    }

    /// Posts why the runtime could not start; the runtime should exit after it.
    void post_init_error(const ErrorReport& error) {
        const std::string body = error.to_json();
        Reply reply = request("/init/error", &body, error.type);
        check_accepted(reply, "POST /init/error");
    }

  private:
    struct Reply {
        long status = 0;
        std::map<std::string, std::string> headers;  // names in lower case
        std::string body;

        std::string header(const std::string& name) const {
            const auto found = headers.find(name);
            return found == headers.end() ? std::string() : found->second;
        }
    };

    static std::size_t append_body(char* data, std::size_t size, std::size_t count, void* body) {
        static_cast<std::string*>(body)->append(data, size * count);
        return size * count;
    }

    static std::size_t collect_header(char* data, std::size_t size, std::size_t count,
                                      void* reply) {
        auto& headers = static_cast<Reply*>(reply)->headers;
        const std::string_view line(data, size * count);
        if (line.rfind("HTTP/", 0) == 0) {
            headers.clear();  // a new status line: only the final response's headers count
            return size * count;
        }
        const auto colon = line.find(':');
        if (colon == std::string_view::npos) {
            return size * count;  // the blank line that ends the headers
        }
        std::string name(line.substr(0, colon));
        for (char& c : name) {
            c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        }
        std::string_view value = line.substr(colon + 1);
        const auto first = value.find_first_not_of(" \t");
        const auto last = value.find_last_not_of(" \t\r\n");
        headers[name] = first == std::string_view::npos
                            ? std::string()
                            : std::string(value.substr(first, last - first + 1));
        return size * count;
    }

    /// One request on the shared handle: a GET, or a POST of `body` as JSON. `error_type`, if
    /// any, goes in Lambda-Runtime-Function-Error-Type.
    Reply request(const std::string& path, const std::string* body,
                  const std::string& error_type) {
        // Resetting the options keeps the handle's open connection for this request.
        curl_easy_reset(curl_);
        Reply reply;
        const std::string url = base_url_ + path;
        curl_slist* headers = nullptr;
        // curl waits for "100 Continue" before sending a large body; the API never sends it.
        headers = curl_slist_append(headers, "Expect:");
        if (body != nullptr) {
            headers = curl_slist_append(headers, "Content-Type: application/json");
        }
        if (!error_type.empty()) {
            headers = curl_slist_append(
                headers, ("Lambda-Runtime-Function-Error-Type: " + header_value(error_type)).c_str());
        }
        const std::unique_ptr<curl_slist, void (*)(curl_slist*)> header_list(headers,
                                                                              curl_slist_free_all);
        curl_easy_setopt(curl_, CURLOPT_URL, url.c_str());
        curl_easy_setopt(curl_, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(curl_, CURLOPT_HTTPHEADER, headers);
        curl_easy_setopt(curl_, CURLOPT_WRITEFUNCTION, &RuntimeApi::append_body);
        curl_easy_setopt(curl_, CURLOPT_WRITEDATA, &reply.body);
        curl_easy_setopt(curl_, CURLOPT_HEADERFUNCTION, &RuntimeApi::collect_header);
        curl_easy_setopt(curl_, CURLOPT_HEADERDATA, &reply);
        if (body != nullptr) {
            curl_easy_setopt(curl_, CURLOPT_POST, 1L);
            curl_easy_setopt(curl_, CURLOPT_POSTFIELDS, body->data());
            curl_easy_setopt(curl_, CURLOPT_POSTFIELDSIZE_LARGE,
                             static_cast<curl_off_t>(body->size()));
        }
        const CURLcode code = curl_easy_perform(curl_);
        if (code != CURLE_OK) {
            throw ApiError(url + ": " + curl_easy_strerror(code));
        }
        curl_easy_getinfo(curl_, CURLINFO_RESPONSE_CODE, &reply.status);
        return reply;
    }

    /// An error type as a header value: a handler chooses the type, and a CR or LF in it would
    /// start a header of its own, so control characters are dropped.
    static std::string header_value(const std::string& text) {
        std::string value;
        for (const char c : text) {
            if (static_cast<unsigned char>(c) >= 0x20 && c != 0x7F) {
                value += c;
            }
        }
        return value;
    }

    /// 202 is success. A 4xx refuses this one post (e.g. 413, a response over Lambda's 6 MB;
    /// the invocation has failed already), so the runtime logs it and goes on to the next
    /// invocation; anything else means the API is gone or broken, and the runtime exits.
    static void check_accepted(const Reply& reply, const std::string& what) {
        if (reply.status == 202) {
            return;
        }
        const std::string problem = what + ": HTTP " + std::to_string(reply.status) + ": " + reply.body;
        if (reply.status >= 400 && reply.status < 500) {
            std::fprintf(stderr, "lambda_runtime: %s\n", problem.c_str());
            return;
        }
        throw ApiError(problem);
    }

    std::string base_url_;
    CURL* curl_;
};

namespace detail {

/// Serves invocations until the API fails; the exit status for main (1: the API went away).
inline int serve(RuntimeApi& api, const Handler& handler) {
    try {
        for (;;) {
            const Invocation invocation = api.next();
            // Lambda's runtimes hand the trace id to the handler's process in this variable,
            // where tracing SDKs read it.
            setenv("_X_AMZN_TRACE_ID", invocation.trace_id.c_str(), 1);
            std::string result;
            std::optional<ErrorReport> failure;
            try {
                result = handler(invocation);
            } catch (...) {
                // Whatever the handler threw fails this invocation, not the runtime.
                failure = report_current_exception();
            }
            if (failure) {
                api.post_error(invocation.request_id, *failure);
            } else {
                api.post_response(invocation.request_id, result);
            }
        }
    } catch (const ApiError& error) {
        std::fprintf(stderr, "lambda_runtime: %s: exiting\n", error.what());
        return 1;
    }
}

/// The API's address from AWS_LAMBDA_RUNTIME_API, or nullopt (said on stderr) if it is unset.
inline std::optional<std::string> address_from_environment() {
    const char* address = std::getenv("AWS_LAMBDA_RUNTIME_API");
    if (address == nullptr || *address == '\0') {
        std::fprintf(stderr, "lambda_runtime: AWS_LAMBDA_RUNTIME_API is not set: this program is "
                             "a Lambda runtime, started by Lambda or by an htcgrid agent\n");
        return std::nullopt;
    }
    return std::string(address);
}

}  // namespace detail

/// Runs `init` once to make the handler, then serves invocations with it until the API goes
/// away. If `init` throws, its error is posted to /init/error and the runtime exits (status
/// 1). Returns the exit status for main.
inline int run_with_init(const std::function<Handler()>& init) {
    const auto address = detail::address_from_environment();
    if (!address) {
        return 1;
    }
    curl_global_init(CURL_GLOBAL_DEFAULT);
    try {
        RuntimeApi api(*address);
        Handler handler;
        try {
            handler = init();
        } catch (...) {
            // Whatever init threw is the runtime's init error.
            const ErrorReport error = report_current_exception();
            std::fprintf(stderr, "lambda_runtime: init failed: %s: %s\n", error.type.c_str(),
                         error.message.c_str());
            api.post_init_error(error);
            return 1;
        }
        return detail::serve(api, handler);
    } catch (const ApiError& error) {
        std::fprintf(stderr, "lambda_runtime: %s: exiting\n", error.what());
        return 1;
    }
}

/// Serves invocations with `handler` until the API goes away; the exit status for main.
inline int run(const Handler& handler) {
    return run_with_init([&handler] { return handler; });
}

}  // namespace lambda_runtime
