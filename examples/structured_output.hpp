// Structured output prediction on MNIST (Jang, Gu and Poole 2017, section 4.1): predict the
// lower 14 rows of a binarized digit from the upper 14 through two layers of discrete
// stochastic units. The model, its training loss and its evaluation; the program around them
// (flags, training loop, outputs) is structured_output.cpp.
#pragma once

#include <algorithm>
#include <cmath>
#include <memory>
#include <numeric>
#include <stdexcept>
#include <string>
#include <vector>

#include <tapegrad.hpp>

#include "datasets/mnist.hpp"
#include "examples/harness/harness.hpp"

namespace structured {

using namespace tg;

enum class Latent { bernoulli, categorical };
// The gradient estimator is the library's, chosen by name (tg::estimators::Estimator): the
// one-evaluation ones give the units' samples, the score-function ones (sf, nvil, rloo, vimco)
// a surrogate of the loss. Estimators of one layer of latents (muprop, arm, disarm, the rebars, relax) do
// not apply to this model's two stochastic layers.
using estimators::Estimator;

constexpr std::size_t classes = 10;  // of each categorical variable

// 392 -> Linear -> hidden stochastic units -> Linear -> hidden stochastic units -> Linear -> 392
// Bernoulli logits. Categorical units are hidden / 10 variables of 10 classes (one-hot).
struct Model : nn::Module {
    Model(Latent latent, std::size_t hidden, Generator& init) : latent(latent) {
        if (hidden == 0 || (latent == Latent::categorical && hidden % classes != 0))
            throw std::invalid_argument("Model: " + std::to_string(hidden) + " hidden units do not fit the latent kind");
        nn::LinearOptions options;
        options.generator = &init;
        fc1 = register_module("fc1", std::make_shared<nn::Linear>(mnist::half_pixels, hidden, options));
        fc2 = register_module("fc2", std::make_shared<nn::Linear>(hidden, hidden, options));
        fc3 = register_module("fc3", std::make_shared<nn::Linear>(hidden, mnist::half_pixels, options));
    }
    Latent latent;
    std::shared_ptr<nn::Linear> fc1, fc2, fc3;
};

// [rows, hidden] seen as [rows, hidden / 10, 10]: categorical variables of 10 classes.
inline Shape grouped(const Tensor& a) { return {a.shape()[0], a.shape()[1] / classes, classes}; }

inline Discrete discrete_kind(Latent latent) {
    return latent == Latent::bernoulli ? Discrete::bernoulli() : Discrete::categorical(classes);
}

// Throws std::invalid_argument unless the estimator applies to this model with m samples.
inline void require_applies(const Estimator& estimator, Latent latent, std::size_t m) {
    estimator.require(discrete_kind(latent));
    if (estimator.form() == estimators::Form::one_layer)
        throw std::invalid_argument("estimator " + estimator.name() + " needs the loss of one layer's sample; this model "
                                    "has two stochastic layers (use sf, nvil, rloo, vimco or a one-evaluation estimator)");
    if ((estimator.name() == "rloo" || estimator.name() == "vimco") && m < 2)
        throw std::invalid_argument("estimator " + estimator.name() + " needs m >= 2 samples per image (--samples), got " +
                                    std::to_string(m));
}

// One layer of stochastic units from its logits [rows, hidden], for training. For the
// score-function estimators the sample is discrete and carries no gradient; log_q [rows]
// receives sum over units of log q(h | logits).
inline Tensor stochastic_units(const Tensor& logits, Latent latent, Estimator& estimator, float tau, Generator& gen,
                               Tensor* log_q) {
    if (estimator.form() == estimators::Form::one_evaluation) {
        estimator.settings().tau = tau;
        return estimator.sample(logits, discrete_kind(latent), gen);
    }
    if (latent == Latent::bernoulli) {
        const dist::Bernoulli q = dist::Bernoulli::from_logits(logits);
        Tensor h = q.sample(&gen);
        *log_q = sum(q.log_prob(h), 1);
        return h;
    }
    const dist::Categorical q(reshape(logits, grouped(logits)));
    const Tensor h = q.sample(&gen);  // one-hot [rows, groups, classes]
    *log_q = sum(q.log_prob(h), 1);
    return reshape(h, logits.shape());
}

using Loss = harness::Loss;  // objective: on the tape; value: the batch mean of the loss, to report

// The training objective on one batch: the NLL of the lower half given the sampled units
// (with samples m > 1, -log-mean-exp of the m likelihoods; rloo: their mean), averaged over the
// batch. For the score-function estimators the objective is the estimator's surrogate of it,
// from each sample's loss and log q(h1, h2).
inline Loss training_loss(const Model& model, const Tensor& upper, const Tensor& lower, Estimator& estimator,
                          float tau, std::size_t m, Generator& gen) {
    require_applies(estimator, model.latent, m);
    const bool score = estimator.form() == estimators::Form::score;
    const std::size_t batch = upper.shape()[0];
    // with m > 1 the batch m times over, sample-major: row s * batch + i is image i
    const Tensor x = m > 1 ? concat(std::vector<Tensor>(m, upper), 0) : upper;
    const Tensor y = m > 1 ? concat(std::vector<Tensor>(m, lower), 0) : lower;
    Tensor log_q1, log_q2;
    Tensor h1 = stochastic_units(model.fc1->forward(x), model.latent, estimator, tau, gen, &log_q1);
    Tensor h2 = stochastic_units(model.fc2->forward(h1), model.latent, estimator, tau, gen, &log_q2);
    Tensor logits = model.fc3->forward(h2);
    if (m == 1 && !score) {  // the common case: one fused node, summed over pixels and the batch
        Tensor objective = mul(binary_cross_entropy_with_logits(logits, y, Reduction::sum), 1.0f / batch);
        return {objective, objective.item()};
    }
    // f [batch] or [m, batch]: each sample's loss, -log p(lower | h)
    Tensor f = sum(binary_cross_entropy_with_logits(logits, y, Reduction::none), 1);
    if (m > 1) f = reshape(f, {m, batch});
    const Tensor bound = m > 1 ? (estimator.name() == "rloo" ? mean(f, 0) : neg(log_mean_exp(neg(f), 0))) : f;
    const double mean_f = std::accumulate(bound.value().begin(), bound.value().end(), 0.0) / static_cast<double>(batch);
    if (!score) return {mean(bound), mean_f};
    Tensor log_q = add(log_q1, log_q2);
    if (m > 1) log_q = reshape(log_q, {m, batch});
    return {mean(estimator.surrogate_of(f, log_q, upper)), mean_f};
}

// ---- Evaluation: discrete samples, no tape -----------------------------------------------

// Each row of a [n, d] m times over: [n * m, d], the m copies of row i together.
inline Tensor repeat_rows(const Tensor& a, std::size_t m) { return repeat_interleave(a, m, 0); }

// Exact samples of the units: {0, 1} (Bernoulli) or one-hot per variable (Gumbel-Max).
inline Tensor discrete_units(const Tensor& logits, Latent latent, Generator& gen) {
    if (latent == Latent::bernoulli) return bernoulli_sample(logits, &gen);
    return gumbel_max(logits, GumbelSoftmaxOptions().classes(classes).generator(&gen));
}

// The logits of the lower half [n * m, 392] for m samples of the units per upper half [n, 392]
// (the first layer's logits computed once per image).
inline Tensor lower_logits(const Model& model, const Array& upper, std::size_t m, Generator& gen) {
    NoGradGuard no_grad;
    const Tensor a1 = repeat_rows(model.fc1->forward(Tensor(upper)), m);
    const Tensor h1 = discrete_units(a1, model.latent, gen);
    const Tensor h2 = discrete_units(model.fc2->forward(h1), model.latent, gen);
    return model.fc3->forward(h2);
}

// The NLL with m discrete samples per image, mean over the images of a data set of
// -log((1/m) sum_i p(lower | h_i)) (rows 14-27 predicted from rows 0-13); per_image (if given)
// gets each. A stop request (Ctrl-C) is honoured between chunks (harness::Interrupted).
inline double nll(const Model& model, const mnist::DataSet& data, std::size_t m, std::uint64_t seed,
                  std::vector<double>* per_image = nullptr) {
    mnist::check_data_set(data, "nll");
    if (data.size() == 0 || m == 0)
        throw std::invalid_argument("nll: needs at least one image and m >= 1, got " + std::to_string(data.size()) +
                                    " images and m = " + std::to_string(m));
    std::vector<double> image_nll(data.size());  // summed in order below: the same on any thread count
    // chunks of about 2000 rows of images x samples: big enough for GEMMs near their peak,
    // small enough to stay in cache
    harness::for_each_chunk(data.size(), 2000 / m, [&](std::size_t c, const std::vector<std::size_t>& rows) {
        Generator gen(harness::derive_seed(seed, c));
        Array upper, lower;
        mnist::gather_halves(data, rows, upper, lower);
        const Tensor logits = lower_logits(model, upper, m, gen);
        const Tensor log_p = neg(sum(binary_cross_entropy_with_logits(logits, repeat_rows(Tensor(lower), m),
                                                                      Reduction::none), 1));
        const Tensor nll = neg(log_mean_exp(reshape(log_p, {rows.size(), m}), 1));
        for (std::size_t i = 0; i < rows.size(); ++i) image_nll[rows[i]] = nll.value()(i);
    });
    if (per_image) *per_image = image_nll;
    double total = 0.0;
    for (double v : image_nll) total += v;
    return total / static_cast<double>(data.size());
}

}  // namespace structured
