// Every gradient estimator of the library on the toy problem of the REBAR, RELAX and DisARM
// papers, E_{b ~ Bernoulli(sigmoid(phi))}[(b - t)^2] with t = 0.45 and 0.499: the bias and the
// standard deviation of one estimate against the exact gradient (1 - 2t) sigmoid'(phi), and
// phi's trajectory when Adam minimizes the loss with one estimate per step (the optimum is phi
// -> -infinity). Besides the fixed-eta REBAR, "rebar-tuned" and "relax" tune their control
// variate online (nn::ControlVariate: eta, tau and RELAX's network descend the estimate's
// variance), as the papers do. Prints markdown tables and writes one PNG per t: bias and log10
// sd across phi, and phi's trajectory.
//
// A second mode runs every estimator that applies on the structured-output model
// (examples/structured_output.hpp, two layers of stochastic units): the variance of the
// gradient of all parameters over repeated estimates on one fixed batch, at initialization and
// after training steps with that estimator, the cost of a training step and variance x cost;
// a table and a PNG plot (log scale). Synthetic digits by default, MNIST with --mnist DIR.
//
//     build/examples/estimator_study [draws] [steps] [png prefix]   (estimator_toy_045.png, ...)
//     build/examples/estimator_study structured [--mnist DIR] [--latent bernoulli|categorical]
//         [--steps N] [--repeats R] [--hidden H] [--png FILE]
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include <tapegrad.hpp>
#include <xtensor/xview.hpp>

#include "examples/harness/images.hpp"
#include "examples/structured_output.hpp"

using namespace tg;

namespace {

SampleLoss toy(float t) {
    return [t](const Tensor& z) { return sum(square(add(z, -t)), -1); };
}

double exact(double phi, double t) {
    const double s = 1.0 / (1.0 + std::exp(-phi));
    return (1.0 - 2.0 * t) * s * (1.0 - s);
}

// The tuned forms: REBAR (eta, tau) and RELAX (eta, tau and a 10-unit tanh network), each step's
// Adam step on the control variate descending the single-sample variance (lr 0.03, as the tests).
bool tuned(const std::string& name) { return name == "rebar-tuned" || name == "relax"; }
struct Tuned {
    explicit Tuned(const std::string& name)
        : init(3), cv(Discrete::bernoulli(), 1, name == "relax" ? 10 : 0, 1.0f, 0.5f, &init), adam(cv.parameters(), {0.03f}) {}
    // One estimate per row of logits (its gradient set), and one tuning step.
    void step(const Tensor& logits, float t, Generator& gen) {
        Tape tape;  // the estimate's graphs end with the step
        TapeScope scope(tape);
        const ControlledEstimate e = cv.estimate(logits, toy(t), gen);
        Tensor(logits).zero_grad();
        logits.backward(e.gradient.value());
        cv.variance_backward(e);
        adam.step();
    }
    Generator init;
    nn::ControlVariate cv;
    optim::Adam adam;
};

// Mean and standard deviation of `draws` estimates at phi, one per row of one batch (the tuned
// forms first tune for 200 steps of 64 draws at phi).
void moments(const std::string& name, float phi, float t, std::size_t draws, double& mean, double& sd) {
    Generator gen(1);
    Array g;
    if (tuned(name)) {
        Tuned tune(name);
        const Tensor batch = Tensor::full({64, 1}, phi, true);
        for (int s = 0; s < 200; ++s) tune.step(batch, t, gen);
        Tape tape;
        TapeScope scope(tape);
        g = tune.cv.estimate(Tensor::full({draws, 1}, phi, true), toy(t), gen).gradient.value();
    } else {
        estimators::Estimator est(name);  // a fresh baseline for sf and nvil
        const Tensor logits = Tensor::full({draws, 1}, phi, true);
        const Tensor loss = sum(est.surrogate(logits, Discrete::bernoulli(), toy(t), gen, 2));
        if (loss.requires_grad()) loss.backward();
        g = logits.has_grad() ? logits.grad() : Array(xt::zeros<float>({draws, std::size_t(1)}));
    }
    double s = 0.0, s2 = 0.0;
    for (float v : g) s += v;
    mean = s / double(draws);
    for (float v : g) s2 += (v - mean) * (v - mean);
    sd = std::sqrt(s2 / double(draws - 1));
}

// phi after each step of Adam (lr 0.01) on one estimate per step, from phi = 0.
std::vector<double> trajectory(const std::string& name, float t, std::size_t steps) {
    estimators::Estimator est(tuned(name) ? "sf" : name);
    std::unique_ptr<Tuned> tune = tuned(name) ? std::make_unique<Tuned>(name) : nullptr;
    Tensor phi = Tensor::zeros({1, 1}, true);
    optim::Adam adam({phi}, {0.01f});
    Generator gen(2);
    std::vector<double> out;
    for (std::size_t step = 1; step <= steps; ++step) {
        if (tune) {
            tune->step(phi, t, gen);
        } else {
            const Tensor loss = sum(est.surrogate(phi, Discrete::bernoulli(), toy(t), gen, 2));
            if (loss.requires_grad()) loss.backward();
        }
        adam.step();
        adam.zero_grad();
        out.push_back(phi.value()(0, 0));
    }
    return out;
}

int toy_study(std::size_t draws, std::size_t steps, const std::string& prefix) {
    // vimco's objective is its m-sample bound, not E[f]: it is checked against that in the tests
    std::vector<std::string> names;
    for (const std::string& n : estimators::names_for(Discrete::bernoulli()))
        if (n != "vimco") names.push_back(n);
    std::vector<float> grid;  // phi = -3, -2.5, ..., 3: the table's -2, 0 and 1.5 among them
    for (int i = 0; i <= 12; ++i) grid.push_back(-3.0f + 0.5f * float(i));
    const auto column = [&](float phi) { return std::size_t(std::lround((phi + 3.0f) / 0.5f)); };
    for (const float t : {0.45f, 0.499f}) {
        std::vector<harness::images::Series> bias_series, sd_series, phi_series;
        std::printf("\n### t = %.3f: one estimate at phi (%zu draws); bias in units of its standard error\n\n", t, draws);
        std::printf("| estimator | evals of f | phi = -2: bias (SE) | sd | phi = 0: bias (SE) | sd | phi = 1.5: bias (SE) | sd |\n");
        std::printf("|---|---|---|---|---|---|---|---|\n");
        for (const std::string& name : names) {
            const harness::images::Color color = harness::images::series_color(bias_series.size());
            bias_series.push_back({name, {}, {}, color});
            sd_series.push_back({name, {}, {}, color});
            std::vector<double> bias(grid.size()), se(grid.size()), sd(grid.size());
            for (std::size_t i = 0; i < grid.size(); ++i) {
                double mean = 0.0;
                moments(name, grid[i], t, draws, mean, sd[i]);
                bias[i] = mean - exact(grid[i], t), se[i] = sd[i] / std::sqrt(double(draws));
                bias_series.back().x.push_back(grid[i]), bias_series.back().y.push_back(bias[i]);
                // log10 of a zero sd (DisARM at phi = 0) is -inf: left out of the plot
                sd_series.back().x.push_back(grid[i]), sd_series.back().y.push_back(std::log10(sd[i]));
            }
            const char* evals = tuned(name) ? "3 + grad"
                                : estimators::find(name).form == estimators::Form::one_evaluation ? "1"
                                : name == "rloo" || name == "arm" || name == "disarm" ? "2"
                                : name == "muprop" ? "2 + grad"
                                : name == "rebar" ? "3"
                                                  : "1";
            std::printf("| %s | %s |", name.c_str(), evals);
            for (const float phi : {-2.0f, 0.0f, 1.5f}) {
                const std::size_t i = column(phi);
                // float rounding (about 1e-7) is no bias, where an estimator has no variance (DisARM at phi = 0)
                std::printf(" %+.5f (%.1f) | %.4f |", bias[i], std::max(0.0, std::abs(bias[i]) - 1e-6) / (se[i] + 1e-12), sd[i]);
            }
            std::printf("\n");
        }
        const std::vector<std::size_t> at = {steps / 4, steps / 2, steps};
        std::printf("\n### t = %.3f: phi under Adam (lr 0.01, one estimate per step, from phi = 0; lower is better)\n\n", t);
        std::printf("| estimator | step %zu | step %zu | step %zu |\n|---|---|---|---|\n", at[0], at[1], at[2]);
        for (const std::string& name : names) {
            const std::vector<double> phis = trajectory(name, t, steps);
            std::printf("| %s | %+.3f | %+.3f | %+.3f |\n", name.c_str(), phis[at[0] - 1], phis[at[1] - 1], phis[at[2] - 1]);
            harness::images::Series& s = phi_series.emplace_back();
            s = {name, {}, {}, harness::images::series_color(phi_series.size() - 1)};
            for (std::size_t k = 0; k < steps; k += std::max<std::size_t>(1, steps / 200))
                s.x.push_back(double(k + 1)), s.y.push_back(phis[k]);
        }
        char tag[32];
        std::snprintf(tag, sizeof tag, "t = %.3f", t);
        namespace img = harness::images;
        const int w = 520, h = 440;
        const std::string png = prefix + (t < 0.46f ? "_045.png" : "_0499.png");
        img::side_by_side({img::plot(bias_series, std::string("bias, ") + tag, "phi", "bias", w, h, false),
                           img::plot(sd_series, std::string("log10 sd, ") + tag, "phi", "log10 sd", w, h, false),
                           img::plot(phi_series, std::string("phi under Adam, ") + tag, "step", "phi", w, h, false),
                           img::legend(phi_series, h)})
            .save_png(png);
        std::printf("\nplot: %s\n", png.c_str());
    }
    std::printf("\nexact gradient at phi = 0: t = 0.45: %+.5f, t = 0.499: %+.5f\n", exact(0, 0.45), exact(0, 0.499));
    return 0;
}

// ---- The structured-output model

// Synthetic digits: 10 random binary prototypes of 28 x 28 (each pixel on with probability
// 0.3), each image one of them with 5% of its pixels flipped; its halves [n, 392] each.
void synthetic_halves(std::size_t n, Generator& gen, Array& upper, Array& lower) {
    const Array prototypes = xt::eval(xt::cast<float>(gen.uniform_open({10, mnist::image_pixels}) < 0.3f));
    Array images = Array::from_shape({n, mnist::image_pixels});
    for (std::size_t i = 0; i < n; ++i) {
        const std::size_t digit = std::size_t(gen.below(10));
        const Array flip = gen.uniform_open({mnist::image_pixels});
        for (std::size_t k = 0; k < mnist::image_pixels; ++k)
            images(i, k) = flip(k) < 0.05f ? 1.0f - prototypes(digit, k) : prototypes(digit, k);
    }
    mnist::halves(images, upper, lower);
}

struct Row {
    std::string name;
    double var_init = 0.0, var_trained = 0.0, ms = 0.0;
};

// The trace of the covariance of the parameters' gradient over `repeats` estimates on one batch
// (the model's own: not NVIL's baseline network, which the gradient of its fit trains).
double gradient_variance(structured::Model& model, const Tensor& upper, const Tensor& lower, estimators::Estimator& est,
                         std::size_t m, std::size_t repeats, Generator& gen) {
    std::vector<Tensor> params;
    for (const auto& layer : {model.fc1, model.fc2, model.fc3})
        for (const Tensor& p : layer->parameters()) params.push_back(p);
    std::vector<std::vector<double>> sum(params.size()), sum2(params.size());
    for (std::size_t i = 0; i < params.size(); ++i) sum[i].assign(params[i].size(), 0.0), sum2[i] = sum[i];
    for (std::size_t r = 0; r < repeats; ++r) {
        model.zero_grad();
        structured::training_loss(model, upper, lower, est, 1.0f, m, gen).objective.backward();
        for (std::size_t i = 0; i < params.size(); ++i) {
            if (!params[i].has_grad()) continue;
            const Array& g = params[i].grad();
            for (std::size_t k = 0; k < g.size(); ++k) sum[i][k] += g.data()[k], sum2[i][k] += double(g.data()[k]) * g.data()[k];
        }
    }
    model.zero_grad();
    double total = 0.0;
    for (std::size_t i = 0; i < params.size(); ++i)
        for (std::size_t k = 0; k < sum[i].size(); ++k) {
            const double mean = sum[i][k] / double(repeats);
            total += (sum2[i][k] - double(repeats) * mean * mean) / double(repeats - 1);
        }
    return total;
}

int structured_study(int argc, char** argv) {
    std::string mnist_dir, latent_name = "bernoulli", png = "estimator_variance.png";
    std::size_t steps = 200, repeats = 20, hidden = 200, batch = 50;
    for (int i = 2; i < argc; ++i) {
        const std::string flag = argv[i];
        if (i + 1 >= argc) {
            std::fprintf(stderr, "estimator_study structured: %s needs a value\n", flag.c_str());
            return 2;
        }
        const std::string value = argv[++i];
        if (flag == "--mnist") mnist_dir = value;
        else if (flag == "--latent") latent_name = value;
        else if (flag == "--png") png = value;
        else if (flag == "--steps") steps = std::strtoul(value.c_str(), nullptr, 10);
        else if (flag == "--repeats") repeats = std::strtoul(value.c_str(), nullptr, 10);
        else if (flag == "--hidden") hidden = std::strtoul(value.c_str(), nullptr, 10);
        else {
            std::fprintf(stderr, "estimator_study structured: unknown flag %s (--mnist, --latent, --steps, --repeats, --hidden, --png)\n", flag.c_str());
            return 2;
        }
    }
    if (latent_name != "bernoulli" && latent_name != "categorical") {
        std::fprintf(stderr, "estimator_study structured: --latent must be bernoulli or categorical, got %s\n", latent_name.c_str());
        return 2;
    }
    const auto latent = latent_name == "bernoulli" ? structured::Latent::bernoulli : structured::Latent::categorical;
    if (repeats < 2 || steps < 1 || hidden < 10 || hidden > 4096 || hidden % 10 != 0) {
        std::fprintf(stderr, "estimator_study structured: needs --repeats >= 2, --steps >= 1 and --hidden a multiple of 10 in [10, 4096]\n");
        return 2;
    }
    // a pool of training images and the fixed batch (its first rows) the variance is measured on
    const std::size_t pool = 1000;
    Array upper_all, lower_all;
    Generator data_gen(5);
    if (mnist_dir.empty()) {
        synthetic_halves(pool, data_gen, upper_all, lower_all);
    } else {
        const mnist::Mnist data = mnist::load(mnist_dir);
        std::vector<std::size_t> rows(pool);
        for (std::size_t i = 0; i < pool; ++i) rows[i] = i;
        mnist::gather_halves(data.train, rows, upper_all, lower_all);
    }
    const auto rows_of = [&](const Array& a, std::size_t from) {
        return Tensor(Array(xt::view(a, xt::range(from, from + batch), xt::all())));
    };
    const Tensor fixed_upper = rows_of(upper_all, 0), fixed_lower = rows_of(lower_all, 0);
    const Discrete kind = structured::discrete_kind(latent);
    std::vector<Row> rows;
    for (const std::string& name : estimators::names_for(kind)) {
        estimators::Estimator est(name);
        if (est.form() == estimators::Form::one_layer) continue;  // needs one layer of latents
        const std::size_t m = name == "rloo" || name == "vimco" ? 2 : 1;
        Generator init(1), gen(2);
        structured::Model model(latent, hidden, init);
        harness::attach_estimator_parts(est, model, mnist::half_pixels, kind, hidden, init);
        optim::Adam adam(model.parameters(), {3e-3f});
        Row row{name};
        row.var_init = gradient_variance(model, fixed_upper, fixed_lower, est, m, repeats, gen);
        // the fastest step: on a shared machine the mean measures the other jobs as well
        double seconds = 1e30;
        for (std::size_t s = 0; s < steps; ++s) {
            const std::size_t from = (s * batch) % (pool - batch);
            const Tensor upper = rows_of(upper_all, from), lower = rows_of(lower_all, from);
            const auto start = std::chrono::steady_clock::now();
            structured::training_loss(model, upper, lower, est, 1.0f, m, gen).objective.backward();
            adam.step();
            adam.zero_grad();
            seconds = std::min(seconds, std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
        }
        row.ms = 1e3 * seconds;
        row.var_trained = gradient_variance(model, fixed_upper, fixed_lower, est, m, repeats, gen);
        rows.push_back(row);
        std::fprintf(stderr, "%s done\n", name.c_str());
    }
    std::printf("\n### Structured output (%s data, %s units, hidden %zu, batch %zu): the variance of the gradient "
                "of all parameters over %zu estimates on one batch (trace of its covariance), at initialization and "
                "after %zu Adam steps (lr 3e-3) with that estimator; cost: the fastest training step\n\n",
                mnist_dir.empty() ? "synthetic" : "MNIST", latent_name.c_str(), hidden, batch, repeats, steps);
    std::printf("| estimator | variance at init | variance after %zu steps | ms / step | variance x ms (after) |\n|---|---|---|---|---|\n", steps);
    for (const Row& r : rows)
        std::printf("| %s | %.4g | %.4g | %.2f | %.4g |\n", r.name.c_str(), r.var_init, r.var_trained, r.ms, r.var_trained * r.ms);
    std::vector<harness::images::Series> series;
    for (std::size_t i = 0; i < rows.size(); ++i)
        series.push_back({rows[i].name, {0.0, double(steps)}, {std::log10(rows[i].var_init), std::log10(rows[i].var_trained)},
                          harness::images::series_color(i)});
    harness::images::plot(series, "gradient variance, structured output (" + latent_name + ")", "training step",
                          "log10 variance").save_png(png);
    std::printf("\nplot: %s\n", png.c_str());
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    if (argc > 1 && std::string(argv[1]) == "structured") {
        try {
            return structured_study(argc, argv);
        } catch (const std::exception& e) {
            std::fprintf(stderr, "estimator_study structured: %s\n", e.what());
            return 2;
        }
    }
    const std::size_t draws = argc > 1 ? std::strtoul(argv[1], nullptr, 10) : 100000;
    const std::size_t steps = argc > 2 ? std::strtoul(argv[2], nullptr, 10) : 2000;
    if (draws < 2 || steps < 4) {
        std::fprintf(stderr, "estimator_study: needs draws >= 2 and steps >= 4, got %zu and %zu\n", draws, steps);
        return 2;
    }
    try {
        return toy_study(draws, steps, argc > 3 ? argv[3] : "estimator_toy");
    } catch (const std::exception& e) {
        std::fprintf(stderr, "estimator_study: %s\n", e.what());
        return 2;
    }
}
