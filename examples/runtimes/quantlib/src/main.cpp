// The QuantLib pricer as a Lambda custom runtime: a `bootstrap` serving one handler over the
// Runtime API client of ../cpp (lambda_runtime.hpp).
//
// Event:  {"trades": [trade, ...]}: 1 to 1,000 trades (trade.hpp says what a trade holds)
// Result: {"quantlib": "1.29", "prices": [{"id", "engine", "npv", "greeks": {...}}, ...]}, in the
//         order of the trades; fd trades also echo the "grid" they were priced on.
// A trade the pricer refuses fails the task as a PermanentTaskError naming the field; one that
// QuantLib cannot price, as a QuantLib.PermanentTaskError with QuantLib's message. Neither is
// retried: the same trade would fail the same way.
#include <ql/errors.hpp>
#include <ql/version.hpp>

#include <nlohmann/json.hpp>

#include <cstdlib>
#include <string>

#include "lambda_runtime.hpp"
#include "pricer.hpp"
#include "trade.hpp"

using nlohmann::json;

namespace {

constexpr std::size_t kMaxTrades = 1000;

json priced(const pricer::Trade& trade, const pricer::Price& price) {
    json result = {
        {"id", trade.id},
        {"engine", pricer::engine_name(trade.engine)},
        {"npv", price.npv},
        {"greeks", price.greeks},
    };
    if (trade.engine == pricer::Engine::FiniteDifference) {
        result["grid"] = {
            {"time_steps", trade.grid.time_steps},
            {"space_steps", trade.grid.space_steps},
            {"damping_steps", trade.grid.damping_steps},
        };
    }
    return result;
}

std::string price_trades(const lambda_runtime::Invocation& invocation) {
    const json event = json::parse(invocation.payload, nullptr, false);
    const auto trades = event.is_object() ? event.find("trades") : event.end();
    if (event.is_discarded() || !event.is_object() || trades == event.end() ||
        !trades->is_array() || trades->empty() || trades->size() > kMaxTrades) {
        throw lambda_runtime::HandlerError(
            "PermanentTaskError",
            "trades: the event must be {\"trades\": [...]} with 1 to " +
                std::to_string(kMaxTrades) + " trades");
    }
    json prices = json::array();
    for (std::size_t i = 0; i < trades->size(); ++i) {
        const std::string where = "trades[" + std::to_string(i) + "]";
        pricer::Trade trade;
        try {
            trade = pricer::parse_trade((*trades)[i], where);
        } catch (const pricer::InvalidTrade& error) {
            throw lambda_runtime::HandlerError("PermanentTaskError", error.what());
        }
        try {
            prices.push_back(priced(trade, pricer::price(trade)));
        } catch (const QuantLib::Error& error) {
            throw lambda_runtime::HandlerError("QuantLib.PermanentTaskError",
                                               where + " (" + trade.id + "): " + error.what());
        }
    }
    const json result = {{"quantlib", QL_VERSION}, {"prices", prices}};
    // Trade ids come from the event and may hold bytes that are not UTF-8: replace them.
    return result.dump(-1, ' ', false, json::error_handler_t::replace);
}

}  // namespace

int main() {
    return lambda_runtime::run_with_init([]() -> lambda_runtime::Handler {
        // Like Lambda's runtimes, serve the handler _HANDLER names: this runtime has one, and
        // an empty _HANDLER means it.
        const char* name = std::getenv("_HANDLER");
        const std::string handler = name == nullptr ? "" : name;
        if (!handler.empty() && handler != "pricer.price_trades") {
            throw lambda_runtime::HandlerError(
                "Runtime.HandlerNotFound",
                "_HANDLER: '" + handler + "' is not a handler of this runtime (pricer.price_trades)");
        }
        return price_trades;
    });
}
