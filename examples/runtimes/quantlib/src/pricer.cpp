#include "pricer.hpp"

#include <ql/errors.hpp>
#include <ql/exercise.hpp>
#include <ql/handle.hpp>
#include <ql/instruments/payoffs.hpp>
#include <ql/instruments/vanillaoption.hpp>
#include <ql/pricingengines/vanilla/analyticeuropeanengine.hpp>
#include <ql/pricingengines/vanilla/baroneadesiwhaleyengine.hpp>
#include <ql/pricingengines/vanilla/bjerksundstenslandengine.hpp>
#include <ql/pricingengines/vanilla/fdblackscholesvanillaengine.hpp>
#include <ql/pricingengines/vanilla/qdfpamericanengine.hpp>
#include <ql/processes/blackscholesprocess.hpp>
#include <ql/quotes/simplequote.hpp>
#include <ql/settings.hpp>
#include <ql/termstructures/volatility/equityfx/blackconstantvol.hpp>
#include <ql/termstructures/yield/flatforward.hpp>
#include <ql/time/calendars/nullcalendar.hpp>
#include <ql/time/daycounters/actual365fixed.hpp>

#include <functional>
#include <utility>

namespace pricer {
namespace ql = QuantLib;
// QuantLib's pointers are ql::ext::shared_ptr: boost's or std's, as the library was configured
// (Debian's 1.29 uses boost's).
namespace {

ql::ext::shared_ptr<ql::PricingEngine> make_engine(
    const Trade& trade, const ql::ext::shared_ptr<ql::GeneralizedBlackScholesProcess>& process) {
    switch (trade.engine) {
        case Engine::Analytic:
            return ql::ext::make_shared<ql::AnalyticEuropeanEngine>(process);
        case Engine::FiniteDifference:
            return ql::ext::make_shared<ql::FdBlackScholesVanillaEngine>(
                process, trade.grid.time_steps, trade.grid.space_steps, trade.grid.damping_steps);
        case Engine::BaroneAdesiWhaley:
            return ql::ext::make_shared<ql::BaroneAdesiWhaleyApproximationEngine>(process);
        case Engine::BjerksundStensland:
            return ql::ext::make_shared<ql::BjerksundStenslandApproximationEngine>(process);
        case Engine::QdFp:
            return ql::ext::make_shared<ql::QdFpAmericanEngine>(
                process, ql::QdFpAmericanEngine::accurateScheme());
    }
    QL_FAIL("unknown engine");
}

}  // namespace

Price price(const Trade& trade) {
    ql::Settings::instance().evaluationDate() = trade.valuation_date;
    const ql::DayCounter day_counter = ql::Actual365Fixed();
    const ql::Handle<ql::Quote> spot(ql::ext::make_shared<ql::SimpleQuote>(trade.spot));
    const ql::Handle<ql::YieldTermStructure> rate(
        ql::ext::make_shared<ql::FlatForward>(trade.valuation_date, trade.rate, day_counter));
    const ql::Handle<ql::YieldTermStructure> dividend(
        ql::ext::make_shared<ql::FlatForward>(trade.valuation_date, trade.dividend, day_counter));
    const ql::Handle<ql::BlackVolTermStructure> volatility(ql::ext::make_shared<ql::BlackConstantVol>(
        trade.valuation_date, ql::NullCalendar(), trade.volatility, day_counter));
    const auto process =
        ql::ext::make_shared<ql::BlackScholesMertonProcess>(spot, dividend, rate, volatility);

    ql::ext::shared_ptr<ql::Exercise> exercise;
    if (trade.style == Style::European) {
        exercise = ql::ext::make_shared<ql::EuropeanExercise>(trade.maturity);
    } else {
        exercise = ql::ext::make_shared<ql::AmericanExercise>(trade.valuation_date, trade.maturity);
    }
    ql::VanillaOption option(
        ql::ext::make_shared<ql::PlainVanillaPayoff>(trade.call ? ql::Option::Call : ql::Option::Put,
                                                 trade.strike),
        exercise);
    option.setPricingEngine(make_engine(trade, process));

    Price result;
    result.npv = option.NPV();
    const std::pair<const char*, std::function<double()>> greeks[] = {
        {"delta", [&] { return option.delta(); }},
        {"gamma", [&] { return option.gamma(); }},
        {"vega", [&] { return option.vega(); }},
        {"theta", [&] { return option.theta(); }},
        {"rho", [&] { return option.rho(); }},
        {"dividend_rho", [&] { return option.dividendRho(); }},
    };
    for (const auto& [name, greek] : greeks) {
        try {
            result.greeks[name] = greek();
        } catch (const ql::Error&) {
            // QuantLib's way of saying "<greek> not provided" by this engine: leave it out.
        }
    }
    return result;
}

}  // namespace pricer
