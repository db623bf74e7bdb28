#include "examples/harness/annealing.hpp"

#include <algorithm>
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

tg::optim::ExponentialTemperature temperature_schedule(const Annealing& a, const tg::estimators::Estimator& estimator) {
    const float lowest = a.rate == 0.0f ? a.tau : a.tau_min, floor = estimator.info().min_tau;
    const std::string at_least = float_text(floor);
    require(lowest >= floor, "--estimator " + estimator.name() + " takes tau >= " + at_least + ", but " +
                                 (a.rate == 0.0f ? "--tau is " + float_text(a.tau) + " (give --tau " + at_least + " or more)"
                                                 : "the annealed tau goes down to --tau-min " + float_text(a.tau_min) +
                                                       " (give --tau-min " + at_least + ", or --anneal-rate 0 with --tau >= " +
                                                       at_least + ")"));
    return temperature_schedule(a);
}

void add_slope_flags(CLI::App& app, SlopeAnnealing& a) {
    add_positive(app, "--slope", a.slope, "slope-st: the slope a of sigmoid/softmax(a * logits) in the first epoch");
    add_real(app, "--slope-growth", a.growth, "slope-st: added to the slope after each epoch (0: a fixed slope)", 0.0f,
             INFINITY);
    add_positive(app, "--slope-max", a.max, "slope-st: the cap of the growing slope");
}

float slope_at(const SlopeAnnealing& a, std::size_t step, std::size_t steps_per_epoch) {
    return std::min(a.max, a.slope + a.growth * static_cast<float>(step / steps_per_epoch));
}

void anneal_slope(Experiment& ex, tg::estimators::Estimator& estimator, const SlopeAnnealing& a, const Flags& flags) {
    require(a.slope <= a.max, "--slope " + float_text(a.slope) + " is above --slope-max " + float_text(a.max));
    if (estimator.name() != "slope-st") return;
    // harness::train's batches per epoch (at least 1: train refuses a training set smaller than
    // a batch, but only later)
    const std::size_t per_epoch =
        std::max<std::size_t>(1, tg::mnist::batches_per_epoch(ex.train_size, batch_options(flags)));
    ex.loss = [&estimator, a, per_epoch, loss = ex.loss](const std::vector<std::size_t>& rows, std::size_t step) {
        estimator.settings().slope = slope_at(a, step, per_epoch);
        return loss(rows, step);
    };
    ex.columns.push_back({"slope", "%.2f"});
    ex.after_epoch = [a, per_epoch, after = ex.after_epoch](std::size_t epoch, std::size_t step) {
        std::vector<double> values = after(epoch, step);
        values.push_back(slope_at(a, step - 1, per_epoch));  // the slope of the epoch's last step, as tau's column
        return values;
    };
    ex.identity.emplace_back("--slope", float_text(a.slope));
    if (a.growth == 0.0f) {
        ex.identity.emplace_back("--slope-growth", "0");
    } else {
        ex.identity.insert(ex.identity.end(), {{"--slope-growth", float_text(a.growth)}, {"--slope-max", float_text(a.max)}});
    }
}

}  // namespace harness
