// A variational autoencoder with discrete latent variables on binarized MNIST (Jang, Gu and
// Poole 2017, section 4.2 and Table 1's VAE rows): 784 -> affine -> 200 Bernoulli units, or 20
// categorical variables of 10 classes -> affine -> 784 Bernoulli logits (linear; nonlinear puts
// two layers of 200 tanh units on each side), under a learned prior (the published paper's) or
// a uniform one.
// The model, its training loss (the negative ELBO) and its evaluation (the importance-weighted
// bound on -log p(x) with discrete samples); the program around them is discrete_vae.cpp.
#pragma once

#include <algorithm>
#include <cmath>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include <tapegrad.hpp>

#include "datasets/mnist.hpp"
#include "examples/harness/harness.hpp"

namespace vae {

using namespace tg;

enum class Latent { bernoulli, categorical };
enum class Arch { linear, nonlinear };
enum class Prior { learned, uniform };

constexpr std::size_t classes = 10;  // of each categorical variable
constexpr std::size_t nonlinear_hidden = 200;  // units of each deterministic layer of Arch::nonlinear

struct Model : nn::Module {
    // `variables` Bernoulli units, or categorical variables of 10 classes (the paper: 200 or 20).
    Model(Latent latent, std::size_t variables, Generator& init, Arch arch = Arch::linear, Prior prior = Prior::learned)
        : latent(latent), variables(variables) {
        if (variables == 0) throw std::invalid_argument("Model: needs at least one latent variable");
        nn::LinearOptions options;
        options.generator = &init;
        const auto layers = [&](std::size_t in, std::size_t out) -> std::shared_ptr<nn::Layer> {
            if (arch == Arch::linear) return std::make_shared<nn::Linear>(in, out, options);
            return nn::mlp({in, nonlinear_hidden, nonlinear_hidden, out}, [] { return std::make_shared<nn::Tanh>(); }, options);
        };
        encoder = register_module("encoder", layers(mnist::image_pixels, width()));
        decoder = register_module("decoder", layers(width(), mnist::image_pixels));
        // uniform at the start; a uniform prior stays a constant
        prior_logits = Tensor::zeros({width()});
        if (prior == Prior::learned) prior_logits = register_parameter("prior_logits", prior_logits);
    }
    // Entries of a latent sample: one per unit, or a one-hot of 10 per variable.
    std::size_t width() const { return latent == Latent::bernoulli ? variables : variables * classes; }

    Latent latent;
    std::size_t variables;
    std::shared_ptr<nn::Layer> encoder, decoder;  // x -> logits of q(z | x); z -> logits of p(x | z)
    Tensor prior_logits;                          // [width]: of each unit, or 10 of each variable
};

// [rows, width] as [rows, variables, 10], for the categorical distributions.
inline Shape grouped(const Model& model, const Tensor& a) { return {a.shape()[0], model.variables, classes}; }

// KL(q(z | x) || p(z)) of each row of encoder logits [rows, width] -> [rows]: the analytic KL of
// the discrete distributions, also when training samples are relaxed (as the paper does).
inline Tensor kl_to_prior(const Model& model, const Tensor& logits) {
    if (model.latent == Latent::bernoulli)
        return sum(kl_divergence(dist::Bernoulli::from_logits(logits), dist::Bernoulli::from_logits(model.prior_logits)), 1);
    return sum(kl_divergence(dist::Categorical(reshape(logits, grouped(model, logits))),
                             dist::Categorical(reshape(model.prior_logits, {model.variables, classes}))), 1);
}

struct Loss {
    Tensor objective;       // recorded on the tape
    double neg_elbo = 0.0;  // its value, to report
};

using estimators::Estimator;

inline Discrete discrete_kind(const Model& model) {
    return model.latent == Latent::bernoulli ? Discrete::bernoulli() : Discrete::categorical(classes);
}

// The negative ELBO of a batch x [B, 784], averaged over the batch: -log p(x | z) + KL(q(z | x) ||
// p(z)), the KL analytic. z comes from the estimator: a one-evaluation estimator's sample at
// temperature tau (relaxed for gs: then it is not a bound), or the estimator's surrogate of the
// reconstruction loss (rloo and vimco with 2 samples per image; vimco's is their 2-sample bound).
inline Loss training_loss(const Model& model, const Tensor& x, Estimator& estimator, float tau, Generator& gen) {
    const Discrete kind = discrete_kind(model);
    estimator.require(kind);
    const Tensor logits = model.encoder->forward(x);
    const Tensor kl = sum(kl_to_prior(model, logits));
    const float per_image = 1.0f / float(x.shape()[0]);
    estimator.settings().tau = tau;
    if (estimator.form() == estimators::Form::one_evaluation) {
        const Tensor z = estimator.sample(logits, kind, gen);
        const Tensor reconstruction = binary_cross_entropy_with_logits(model.decoder->forward(z), x, Reduction::sum);
        const Tensor objective = mul(add(reconstruction, kl), per_image);
        return {objective, objective.item()};
    }
    // -log p(x | z) of each image, for z of the batch once or several times over (sample-major)
    const SampleLoss reconstruction = [&](const Tensor& z) {
        const std::size_t copies = z.shape()[0] / x.shape()[0];
        const Tensor xs = copies > 1 ? concat(std::vector<Tensor>(copies, x), 0) : x;
        return sum(binary_cross_entropy_with_logits(model.decoder->forward(z), xs, Reduction::none), 1);
    };
    // NVIL divides its signal by max(1, running std) (Mnih and Gregor 2014), where the signal is the
    // encoder's whole gradient. Here the KL adds its exact gradient, so it is divided by the same
    // scale, the value kept: else the reconstruction's part shrinks beside the KL's and the encoder
    // collapses onto the prior (test NLL 181.5 after 100 epochs where sf reaches 112.9).
    const float scale = estimator.name() == "nvil" ? estimator.nvil().scale() : 1.0f;
    const Tensor kl_term = scale == 1.0f ? kl : add(detach(kl), grad_only(mul(kl, 1.0f / scale)));
    const Tensor objective = mul(add(sum(estimator.surrogate(logits, kind, reconstruction, gen, 2, x)), kl_term), per_image);
    return {objective, objective.item()};
}

// ---- Evaluation: discrete samples, no tape -----------------------------------------------

// Exact samples of z from logits [rows, width]: {0, 1} units or one-hot variables (Gumbel-Max).
inline Tensor discrete_latent(const Model& model, const Tensor& logits, Generator& gen) {
    if (model.latent == Latent::bernoulli) return bernoulli_sample(logits, &gen);
    return gumbel_max(logits, GumbelSoftmaxOptions().classes(classes).generator(&gen));
}

// log q(z | x) of discrete samples z [rows, width] under encoder logits [rows, width] (or log p(z)
// under the prior's [width]) -> [rows].
inline Tensor log_probability(const Model& model, const Tensor& logits, const Tensor& z) {
    if (model.latent == Latent::bernoulli) return sum(dist::Bernoulli::from_logits(logits).log_prob(z), 1);
    const Shape shape = logits.shape().size() == 1 ? Shape{model.variables, classes} : grouped(model, logits);
    return sum(dist::Categorical(reshape(logits, shape)).log_prob(reshape(z, grouped(model, z))), 1);
}

// a [n, d] m times over, [m * n, d]: row s * n + i is row i (one concat, copies of whole blocks).
inline Tensor repeat(const Tensor& a, std::size_t m) { return concat(std::vector<Tensor>(m, a), 0); }

struct Bounds {
    double nll = 0.0;       // mean over images of -log (1/m) sum_i p(x, z_i) / q(z_i | x)
    double neg_elbo = 0.0;  // mean over images of -(1/m) sum_i log p(x | z_i) + KL(q(z | x) || p(z))
};

// Both bounds on -log p(x) with m discrete samples z_i ~ q(z | x) per image of a data set; the
// first is the importance-weighted (IWAE) bound the paper reports, tighter as m grows. A stop
// request is honoured between chunks.
inline Bounds evaluate(const Model& model, const mnist::DataSet& data, std::size_t m, std::uint64_t seed) {
    if (data.size() == 0 || m == 0)
        throw std::invalid_argument("evaluate: needs images and m >= 1 samples, got " + std::to_string(data.size()) +
                                    " and m = " + std::to_string(m));
    std::vector<double> nll_of(data.size()), neg_elbo_of(data.size());  // summed in order below
    // about 2000 rows of images x samples at once: GEMMs near their peak, buffers in cache
    harness::for_each_chunk(data.size(), 2000 / m, [&](std::size_t c, const std::vector<std::size_t>& rows) {
        Generator gen(harness::derive_seed(seed, c));
        Array images;
        mnist::gather(data, rows, images);
        const std::size_t n = rows.size();
        const Tensor x(images), logits = model.encoder->forward(x);
        const Tensor logits_m = repeat(logits, m), x_m = repeat(x, m);
        const Tensor z = discrete_latent(model, logits_m, gen);
        const Tensor log_likelihood =
            neg(sum(binary_cross_entropy_with_logits(model.decoder->forward(z), x_m, Reduction::none), 1));
        const Tensor log_w = sub(add(log_likelihood, log_probability(model, model.prior_logits, z)),
                                 log_probability(model, logits_m, z));
        const Tensor nll = neg(log_mean_exp(reshape(log_w, {m, n}), 0));
        const Tensor neg_elbo = sub(kl_to_prior(model, logits), mean(reshape(log_likelihood, {m, n}), 0));
        for (std::size_t i = 0; i < n; ++i) {
            nll_of[rows[i]] = nll.value()(i);
            neg_elbo_of[rows[i]] = neg_elbo.value()(i);
        }
    });
    Bounds total;
    for (std::size_t i = 0; i < data.size(); ++i) {
        total.nll += nll_of[i];
        total.neg_elbo += neg_elbo_of[i];
    }
    total.nll /= double(data.size());
    total.neg_elbo /= double(data.size());
    return total;
}

// The pixel probabilities of n digits decoded from samples of the prior, [n, 784].
inline Array prior_samples(const Model& model, std::size_t n, Generator& gen) {
    NoGradGuard no_grad;
    const Tensor logits = repeat(reshape(model.prior_logits, {1, model.width()}), n);
    return sigmoid(model.decoder->forward(discrete_latent(model, logits, gen))).value();
}

}  // namespace vae
