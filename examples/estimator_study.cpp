// Every gradient estimator of the library on the toy problem of the REBAR, RELAX and DisARM
// papers, E_{b ~ Bernoulli(sigmoid(phi))}[(b - t)^2] with t = 0.45 and 0.499: the bias and the
// standard deviation of one estimate against the exact gradient (1 - 2t) sigmoid'(phi), and
// phi's trajectory when Adam minimizes the loss with one estimate per step (the optimum is phi
// -> -infinity). Prints markdown tables.
//
//     build/examples/estimator_study [draws] [steps]
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include <tapegrad.hpp>

using namespace tg;

namespace {

SampleLoss toy(float t) {
    return [t](const Tensor& z) { return sum(square(add(z, -t)), -1); };
}

double exact(double phi, double t) {
    const double s = 1.0 / (1.0 + std::exp(-phi));
    return (1.0 - 2.0 * t) * s * (1.0 - s);
}

// Mean and standard deviation of `draws` estimates at phi, one per row of one batch.
void moments(const std::string& name, float phi, float t, std::size_t draws, double& mean, double& sd) {
    estimators::Estimator est(name);  // a fresh baseline for sf and nvil
    const Tensor logits = Tensor::full({draws, 1}, phi, true);
    Generator gen(1);
    const Tensor loss = sum(est.surrogate(logits, Discrete::bernoulli(), toy(t), gen, 2));
    if (loss.requires_grad()) loss.backward();
    const Array g = logits.has_grad() ? logits.grad() : Array(xt::zeros<float>({draws, std::size_t(1)}));
    double s = 0.0, s2 = 0.0;
    for (float v : g) s += v;
    mean = s / double(draws);
    for (float v : g) s2 += (v - mean) * (v - mean);
    sd = std::sqrt(s2 / double(draws - 1));
}

// phi after each of the checkpoints of Adam (lr 0.01) on one estimate per step, from phi = 0.
std::vector<double> trajectory(const std::string& name, float t, const std::vector<std::size_t>& at) {
    estimators::Estimator est(name);
    Tensor phi = Tensor::zeros({1, 1}, true);
    optim::Adam adam({phi}, {0.01f});
    Generator gen(2);
    std::vector<double> out;
    for (std::size_t step = 1; step <= at.back(); ++step) {
        const Tensor loss = sum(est.surrogate(phi, Discrete::bernoulli(), toy(t), gen, 2));
        if (loss.requires_grad()) loss.backward();
        adam.step();
        adam.zero_grad();
        for (std::size_t a : at)
            if (a == step) out.push_back(phi.value()(0, 0));
    }
    return out;
}

}  // namespace

int main(int argc, char** argv) {
    const std::size_t draws = argc > 1 ? std::strtoul(argv[1], nullptr, 10) : 100000;
    const std::size_t steps = argc > 2 ? std::strtoul(argv[2], nullptr, 10) : 2000;
    if (draws < 2 || steps < 4) {
        std::fprintf(stderr, "estimator_study: needs draws >= 2 and steps >= 4, got %zu and %zu\n", draws, steps);
        return 2;
    }
    // vimco's objective is its m-sample bound, not E[f]: it is checked against that in the tests
    std::vector<std::string> names;
    for (const std::string& n : estimators::names_for(Discrete::bernoulli()))
        if (n != "vimco") names.push_back(n);
    for (const float t : {0.45f, 0.499f}) {
        std::printf("\n### t = %.3f: one estimate at phi (%zu draws); bias in units of its standard error\n\n", t, draws);
        std::printf("| estimator | evals of f | phi = -2: bias (SE) | sd | phi = 0: bias (SE) | sd | phi = 1.5: bias (SE) | sd |\n");
        std::printf("|---|---|---|---|---|---|---|---|\n");
        for (const std::string& name : names) {
            const char* evals = estimators::find(name).form == estimators::Form::one_evaluation ? "1"
                                : name == "rloo" || name == "vimco" || name == "arm" || name == "disarm" ? "2"
                                : name == "muprop" ? "2 + grad"
                                : name == "rebar" ? "3"
                                                  : "1";
            std::printf("| %s | %s |", name.c_str(), evals);
            for (const float phi : {-2.0f, 0.0f, 1.5f}) {
                double mean = 0.0, sd = 0.0;
                moments(name, phi, t, draws, mean, sd);
                const double bias = mean - exact(phi, t), se = sd / std::sqrt(double(draws));
                // float rounding (about 1e-7) is no bias, where an estimator has no variance (DisARM at phi = 0)
                std::printf(" %+.5f (%.1f) | %.4f |", bias, std::max(0.0, std::abs(bias) - 1e-6) / (se + 1e-12), sd);
            }
            std::printf("\n");
        }
        const std::vector<std::size_t> at = {steps / 4, steps / 2, steps};
        std::printf("\n### t = %.3f: phi under Adam (lr 0.01, one estimate per step, from phi = 0; lower is better)\n\n", t);
        std::printf("| estimator | step %zu | step %zu | step %zu |\n|---|---|---|---|\n", at[0], at[1], at[2]);
        for (const std::string& name : names) {
            const std::vector<double> phis = trajectory(name, t, at);
            std::printf("| %s | %+.3f | %+.3f | %+.3f |\n", name.c_str(), phis[0], phis[1], phis[2]);
        }
    }
    std::printf("\nexact gradient at phi = 0: t = 0.45: %+.5f, t = 0.499: %+.5f\n", exact(0, 0.45), exact(0, 0.499));
    return 0;
}
