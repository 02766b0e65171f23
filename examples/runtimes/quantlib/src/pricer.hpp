// Prices a trade with QuantLib: its NPV and whichever Greeks its engine provides.
#pragma once

#include <map>
#include <string>

#include "trade.hpp"

namespace pricer {

struct Price {
    double npv = 0;
    /// Greek name (delta, gamma, vega, theta, rho, dividend_rho) to value, for the Greeks the
    /// engine provides: the analytic engine all of them, the finite-difference engine delta,
    /// gamma and theta, the approximations none. Theta is per year, vega and the rhos per unit.
    std::map<std::string, double> greeks;
};

/// Prices `trade` as of its valuation date. Sets QuantLib's global evaluation date, so it is
/// for one thread at a time (a runtime serves one invocation at a time). QuantLib's own errors
/// (QuantLib::Error) propagate.
Price price(const Trade& trade);

}  // namespace pricer
