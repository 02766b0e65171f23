// A trade of the book: a vanilla equity option and the market it is priced in (flat rate,
// dividend yield and volatility), with the engine to price it. Parsed from JSON and checked
// field by field: a task's payload comes from whoever submits it.
#pragma once

#include <ql/time/date.hpp>

#include <nlohmann/json.hpp>

#include <stdexcept>
#include <string>

namespace pricer {

/// A trade the pricer refuses, the message naming the field and what it must be.
class InvalidTrade : public std::invalid_argument {
  public:
    using std::invalid_argument::invalid_argument;
};

enum class Style { European, American };
enum class Engine { Analytic, FiniteDifference, BaroneAdesiWhaley, BjerksundStensland, QdFp };

/// The finite-difference engine's grid.
struct Grid {
    unsigned time_steps = 200;
    unsigned space_steps = 200;
    unsigned damping_steps = 0;
};

struct Trade {
    std::string id;
    Style style = Style::European;
    bool call = true;
    double spot = 0;
    double strike = 0;
    double rate = 0;        // continuously compounded, Actual/365 Fixed
    double dividend = 0;    // continuous dividend yield, Actual/365 Fixed
    double volatility = 0;  // Black volatility, annual
    QuantLib::Date valuation_date;
    QuantLib::Date maturity;
    Engine engine = Engine::Analytic;
    Grid grid;
};

/// The trade at `where` (e.g. "trades[3]", used in error messages) from its JSON document:
///   {"id", "style": "european"|"american", "type": "call"|"put", "spot", "strike", "rate",
///    "dividend", "volatility", "valuation_date": "YYYY-MM-DD", "maturity": "YYYY-MM-DD",
///    "engine": "analytic"|"fd"|"baw"|"bjerksund_stensland"|"qdfp" (default: analytic for
///    European trades, fd for American ones), "grid": {"time_steps", "space_steps",
///    "damping_steps"} (fd only)}
/// Throws InvalidTrade naming the first field that is missing or out of its range.
Trade parse_trade(const nlohmann::json& document, const std::string& where);

/// The engine's name as trades spell it.
std::string engine_name(Engine engine);

}  // namespace pricer
