#include "trade.hpp"

#include <cmath>
#include <cstdio>

namespace pricer {
namespace {

// Limits that keep a hostile or mistyped trade from making QuantLib fail obscurely or run for
// minutes: a task's cost must stay bounded.
constexpr double kMaxPrice = 1e9;
constexpr double kMaxRate = 1.0;
constexpr double kMaxVolatility = 5.0;
constexpr int kMaxYears = 50;
constexpr unsigned kMinSteps = 10;
constexpr unsigned kMaxSteps = 5000;
constexpr double kMaxGridPoints = 4e6;  // time steps x space steps
constexpr std::size_t kMaxIdChars = 100;

/// A value from the trade, quoted for an error message, and cut short: the trade may be
/// hostile, and the message should name the field, not carry megabytes of it.
std::string quoted(const std::string& value) {
    constexpr std::size_t kMaxChars = 40;
    return "'" + (value.size() <= kMaxChars ? value : value.substr(0, kMaxChars) + "...") + "'";
}

/// A limit as people write it: 0, 5, 1e+09.
std::string readable(double x) {
    char text[32];
    std::snprintf(text, sizeof text, "%g", x);
    return text;
}

const nlohmann::json& field(const nlohmann::json& document, const std::string& where,
                            const char* name) {
    const auto found = document.find(name);
    if (found == document.end()) {
        throw InvalidTrade(where + "." + name + ": missing");
    }
    return *found;
}

double number(const nlohmann::json& document, const std::string& where, const char* name,
              double low, double high, bool low_included) {
    const nlohmann::json& value = field(document, where, name);
    if (!value.is_number()) {
        throw InvalidTrade(where + "." + name + ": must be a number");
    }
    const double x = value.get<double>();
    const bool above_low = low_included ? x >= low : x > low;
    if (!std::isfinite(x) || !above_low || x > high) {
        throw InvalidTrade(where + "." + name + ": " + value.dump() + " is not in " +
                           (low_included ? "[" : "(") + readable(low) + ", " + readable(high) +
                           "]");
    }
    return x;
}

std::string text(const nlohmann::json& document, const std::string& where, const char* name) {
    const nlohmann::json& value = field(document, where, name);
    if (!value.is_string()) {
        throw InvalidTrade(where + "." + name + ": must be a string");
    }
    return value.get<std::string>();
}

QuantLib::Date date(const nlohmann::json& document, const std::string& where, const char* name) {
    const std::string value = text(document, where, name);
    int year = 0;
    int month = 0;
    int day = 0;
    char end = 0;
    // QuantLib's dates run from 1901 to 2199.
    if (value.size() != 10 || std::sscanf(value.c_str(), "%4d-%2d-%2d%c", &year, &month, &day, &end) != 3 ||
        year < 1901 || year > 2199 || month < 1 || month > 12 || day < 1 ||
        day > QuantLib::Date::endOfMonth(QuantLib::Date(1, QuantLib::Month(month), year)).dayOfMonth()) {
        throw InvalidTrade(where + "." + name + ": " + quoted(value) +
                           " is not a date YYYY-MM-DD between 1901 and 2199");
    }
    return QuantLib::Date(day, QuantLib::Month(month), year);
}

unsigned steps(const nlohmann::json& grid, const std::string& where, const char* name,
               unsigned fallback, unsigned low) {
    const auto found = grid.find(name);
    if (found == grid.end()) {
        return fallback;
    }
    if (!found->is_number_integer() || found->get<long long>() < low ||
        found->get<long long>() > kMaxSteps) {
        throw InvalidTrade(where + ".grid." + name + ": must be an integer from " +
                           std::to_string(low) + " to " + std::to_string(kMaxSteps));
    }
    return found->get<unsigned>();
}

Engine engine(const std::string& name, const std::string& where) {
    if (name == "analytic") return Engine::Analytic;
    if (name == "fd") return Engine::FiniteDifference;
    if (name == "baw") return Engine::BaroneAdesiWhaley;
    if (name == "bjerksund_stensland") return Engine::BjerksundStensland;
    if (name == "qdfp") return Engine::QdFp;
    throw InvalidTrade(where + ".engine: " + quoted(name) +
                       " is not analytic, fd, baw, bjerksund_stensland or qdfp");
}

}  // namespace

std::string engine_name(Engine engine) {
    switch (engine) {
        case Engine::Analytic: return "analytic";
        case Engine::FiniteDifference: return "fd";
        case Engine::BaroneAdesiWhaley: return "baw";
        case Engine::BjerksundStensland: return "bjerksund_stensland";
        case Engine::QdFp: return "qdfp";
    }
    return "unknown";
}

Trade parse_trade(const nlohmann::json& document, const std::string& where) {
    if (!document.is_object()) {
        throw InvalidTrade(where + ": must be an object");
    }
    Trade trade;
    trade.id = text(document, where, "id");
    if (trade.id.empty() || trade.id.size() > kMaxIdChars) {
        throw InvalidTrade(where + ".id: must be 1 to " + std::to_string(kMaxIdChars) + " bytes");
    }
    const std::string style = text(document, where, "style");
    if (style != "european" && style != "american") {
        throw InvalidTrade(where + ".style: " + quoted(style) + " is not european or american");
    }
    trade.style = style == "european" ? Style::European : Style::American;
    const std::string type = text(document, where, "type");
    if (type != "call" && type != "put") {
        throw InvalidTrade(where + ".type: " + quoted(type) + " is not call or put");
    }
    trade.call = type == "call";
    trade.spot = number(document, where, "spot", 0, kMaxPrice, false);
    trade.strike = number(document, where, "strike", 0, kMaxPrice, false);
    trade.rate = number(document, where, "rate", -kMaxRate, kMaxRate, true);
    trade.dividend = number(document, where, "dividend", -kMaxRate, kMaxRate, true);
    trade.volatility = number(document, where, "volatility", 0, kMaxVolatility, false);
    trade.valuation_date = date(document, where, "valuation_date");
    trade.maturity = date(document, where, "maturity");
    if (trade.maturity <= trade.valuation_date ||
        trade.maturity > trade.valuation_date + QuantLib::Period(kMaxYears, QuantLib::Years)) {
        throw InvalidTrade(where + ".maturity: must be after valuation_date, by at most " +
                           std::to_string(kMaxYears) + " years");
    }

    const auto named = document.find("engine");
    if (named == document.end()) {
        trade.engine = trade.style == Style::European ? Engine::Analytic : Engine::FiniteDifference;
    } else if (!named->is_string()) {
        throw InvalidTrade(where + ".engine: must be a string");
    } else {
        trade.engine = engine(named->get<std::string>(), where);
    }
    // The analytic engine prices European options only, the approximations American ones
    // only, and the finite-difference engine both.
    const bool fits = trade.engine == Engine::FiniteDifference ||
                      (trade.engine == Engine::Analytic) == (trade.style == Style::European);
    if (!fits) {
        throw InvalidTrade(where + ".engine: '" + engine_name(trade.engine) + "' does not price " +
                           style + " options");
    }

    const auto grid = document.find("grid");
    if (grid != document.end()) {
        if (trade.engine != Engine::FiniteDifference || !grid->is_object()) {
            throw InvalidTrade(where + ".grid: an object, for the fd engine only");
        }
        trade.grid.time_steps = steps(*grid, where, "time_steps", trade.grid.time_steps, kMinSteps);
        trade.grid.space_steps = steps(*grid, where, "space_steps", trade.grid.space_steps, kMinSteps);
        trade.grid.damping_steps = steps(*grid, where, "damping_steps", trade.grid.damping_steps, 0);
        if (double(trade.grid.time_steps) * trade.grid.space_steps > kMaxGridPoints) {
            throw InvalidTrade(where + ".grid: time_steps x space_steps is above " +
                               readable(kMaxGridPoints));
        }
    }
    return trade;
}

}  // namespace pricer
