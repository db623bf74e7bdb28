// The temperature of an example's relaxed samples (Gumbel-Softmax, Binary Concrete), annealed
// as Jang et al. do: tau = max(tau-min, tau exp(-r t)), t the step rounded down to a multiple
// of --anneal-every. The flags and the schedule they make, for every example with such samples.
#pragma once

#include <CLI/CLI.hpp>

#include <cstddef>
#include <string>
#include <utility>
#include <vector>

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

}  // namespace harness
