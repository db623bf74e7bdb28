// The temperature of an example's relaxed samples (Gumbel-Softmax, Binary Concrete), annealed
// as Jang et al. do: tau = max(tau-min, tau exp(-r t)), t the step rounded down to a multiple
// of --anneal-every. The flags and the schedule they make, for every example with such samples.
// Also the slope of slope-st (Table 1's Annealed ST), raised epoch by epoch.
#pragma once

#include <CLI/CLI.hpp>

#include <cstddef>
#include <string>
#include <utility>
#include <vector>

#include "examples/harness/harness.hpp"
#include "layers/temperature.hpp"

namespace harness {

struct Annealing {
    float tau = 1.0f, tau_min = 0.5f, rate = 1e-5f;  // rate 0: tau stays fixed
    std::size_t every = 1000;
};

// --tau --tau-min --anneal-rate --anneal-every, with bounds; an example sets its defaults in
// `annealing` first.
void add_annealing_flags(CLI::App& app, Annealing& annealing);

// The flags a resumed run must repeat (--tau; with a rate, --anneal-rate, --tau-min and
// --anneal-every), for Experiment::identity.
std::vector<std::pair<std::string, std::string>> identity(const Annealing& annealing);

// The schedule of the flags. Throws UsageError naming --tau and --tau-min when an annealed tau
// would start below its floor.
tg::optim::ExponentialTemperature temperature_schedule(const Annealing& annealing);
// The same for `estimator`, and a UsageError when the schedule would go below the lowest tau the
// estimator takes (reinmax: 1): the run would otherwise stop at the first step below it.
tg::optim::ExponentialTemperature temperature_schedule(const Annealing& annealing,
                                                       const tg::estimators::Estimator& estimator);

// slope-st's slope a in sigmoid/softmax(a * logits) (Chung et al. 2016): a = min(slope-max,
// slope + growth * epochs completed), the reimplementations' 1 + 0.04 per epoch up to 5 by default.
struct SlopeAnnealing {
    float slope = 1.0f, growth = 0.04f, max = 5.0f;  // growth 0: the slope stays fixed
};

// --slope --slope-growth --slope-max, with bounds.
void add_slope_flags(CLI::App& app, SlopeAnnealing& annealing);

// The slope at a step (from 0), epochs completed = step / steps_per_epoch: a function of the
// step alone, so a resumed run needs nothing more in its checkpoint.
float slope_at(const SlopeAnnealing& annealing, std::size_t step, std::size_t steps_per_epoch);

// For slope-st (nothing for another estimator): wraps ex.loss to set estimator.settings().slope
// at each step, adds a "slope" column (the slope the epoch trained with) and puts the flags in
// ex.identity (--slope; with a growth, --slope-growth and --slope-max). Call once ex.loss,
// ex.after_epoch and ex.identity are set. Throws UsageError naming --slope and --slope-max when
// the slope starts above its cap, whatever the estimator (as the temperature's flags).
void anneal_slope(Experiment& ex, tg::estimators::Estimator& estimator, const SlopeAnnealing& annealing,
                  const Flags& flags);

}  // namespace harness
