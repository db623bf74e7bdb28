#include "examples/harness/annealing.hpp"

#include <cmath>
#include <cstdint>

#include "examples/harness/harness.hpp"

namespace harness {

void add_annealing_flags(CLI::App& app, Annealing& a) {
    add_positive(app, "--tau", a.tau, "Temperature of the relaxed samples at step 0");
    add_positive(app, "--tau-min", a.tau_min, "Floor of the annealed temperature");
    add_real(app, "--anneal-rate", a.rate, "r in tau = max(tau-min, tau exp(-r step)) (0: a fixed tau)", 0.0f,
             INFINITY);
    add_count(app, "--anneal-every", a.every, "Steps between temperature updates", 1, std::size_t{1} << 40);
}

std::vector<std::pair<std::string, std::string>> identity(const Annealing& a) {
    if (a.rate == 0.0f) return {{"--tau", float_text(a.tau)}, {"--anneal-rate", "0"}};
    return {{"--tau", float_text(a.tau)}, {"--anneal-rate", float_text(a.rate)}, {"--tau-min", float_text(a.tau_min)},
            {"--anneal-every", std::to_string(a.every)}};
}

tg::optim::ExponentialTemperature temperature_schedule(const Annealing& a) {
    if (a.rate == 0.0f) return tg::optim::ExponentialTemperature(a.tau, 0.0f, a.tau, 1);
    require(a.tau_min <= a.tau, "--tau " + float_text(a.tau) + " is below --tau-min " + float_text(a.tau_min) +
                                    " (lower --tau-min, or use --anneal-rate 0 for a fixed tau)");
    return tg::optim::ExponentialTemperature(a.tau, a.rate, a.tau_min, static_cast<std::int64_t>(a.every));
}

}  // namespace harness
