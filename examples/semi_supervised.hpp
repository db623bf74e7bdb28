// Semi-supervised classification with the class as a latent variable (Jang, Gu and Poole 2017,
// section 4.3 and Table 2): model M2 of Kingma et al. (2014), a classifier q(y | x), a Gaussian
// q(z | x, y) and a decoder p(x | y, z) of Bernoulli pixels, p(z) = N(0, I), p(y) uniform. The
// model, its bounds and its evaluation; the program around them is semi_supervised.cpp.
//
//   labeled:   L(x, y) = -log p(x | y, z) + KL(q(z | x, y) || p(z)) - log p(y),  z ~ q(z | x, y)
//   unlabeled: U(x) = E_q(y|x)[L(x, y)] - H(q(y | x)), with the expectation taken
//     marginal: exactly, sum_y q(y | x) L(x, y): k passes of the encoder and decoder;
//     gs:       at one relaxed sample y ~ GumbelSoftmax(q(y | x), tau): one pass;
//     st-gs:    at its one-hot (straight-through: the relaxed sample's gradient).
// L and U are negative bounds on log p(x, y) and log p(x) (the ELBO is -U), in nats.
#pragma once

#include <cmath>
#include <cstddef>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include <tapegrad.hpp>

#include "datasets/mnist.hpp"
#include "examples/harness/harness.hpp"

namespace m2 {

using namespace tg;

enum class Method { marginal, gs, st_gs };

struct Model : nn::Module {
    // `classes` values of y, MLPs of one hidden layer of `hidden` ReLU units, a `latent`-dimensional z.
    Model(std::size_t classes, std::size_t hidden, std::size_t latent, Generator& init)
        : classes(classes), latent(latent) {
        if (classes < 2 || hidden == 0 || latent == 0)
            throw std::invalid_argument("m2::Model: needs at least 2 classes, 1 hidden unit and 1 latent dimension");
        const auto relu = [] { return std::make_shared<nn::ReLU>(); };
        const nn::LinearOptions options{true, &init};
        const std::size_t pixels = mnist::image_pixels;
        classifier = register_module("classifier", nn::mlp({pixels, hidden, classes}, relu, options));
        encoder = register_module("encoder", nn::mlp({pixels + classes, hidden, 2 * latent}, relu, options));
        decoder = register_module("decoder", nn::mlp({latent + classes, hidden, pixels}, relu, options));
    }
    std::size_t classes, latent;
    std::shared_ptr<nn::MLP> classifier;  // x -> logits of q(y | x)
    std::shared_ptr<nn::MLP> encoder;     // [x, y] -> mean and log-variance of q(z | x, y)
    std::shared_ptr<nn::MLP> decoder;     // [z, y] -> logits of p(x | y, z)
};

// L(x, y) of each row: x [n, 784] binary, y [n, k] one-hot or relaxed -> [n], one z per row.
inline Tensor labeled_bound(const Model& model, const Tensor& x, const Tensor& y, Generator& gen) {
    const std::vector<Tensor> mean_logvar = chunk(model.encoder->forward(concat({x, y}, 1)), 2, 1);
    const dist::Normal q(mean_logvar[0], exp(mean_logvar[1] * 0.5f));
    const Tensor z = q.rsample(&gen);
    const Tensor reconstruction =
        sum(binary_cross_entropy_with_logits(model.decoder->forward(concat({z, y}, 1)), x, Reduction::none), 1);
    const Tensor kl = sum(kl_divergence(q, dist::Normal(Tensor::zeros({1}), Tensor::ones({1}))), 1);
    return reconstruction + kl + float(std::log(double(model.classes)));  // -log p(y) = log k
}

// The one-hot of every class for each of n rows, class-major: row c * n + i is class c.
inline Tensor every_class(std::size_t classes, std::size_t n) {
    Indices c = Indices::from_shape({classes * n});
    for (std::size_t r = 0; r < c.size(); ++r) c(r) = r / n;
    return one_hot(c, classes);
}

// U(x) of each row of x [n, 784] -> [n], the expectation over y as the method says; tau is the
// temperature of the relaxed samples (ignored by marginal).
inline Tensor unlabeled_bound(const Model& model, const Tensor& x, Method method, float tau, Generator& gen) {
    const std::size_t n = x.shape()[0], k = model.classes;
    const Tensor logits = model.classifier->forward(x);
    const Tensor entropy = dist::Categorical(logits).entropy();
    if (method == Method::marginal) {
        // L(x, y) for every class at once: the batch k times over, [k * n] -> [n, k]
        const Tensor bounds = labeled_bound(model, repeat(x, {k, 1}), every_class(k, n), gen);
        return sum(softmax(logits, 1) * transpose(reshape(bounds, {k, n})), 1) - entropy;
    }
    const Tensor y = gumbel_softmax(logits, GumbelSoftmaxOptions().tau(tau).hard(method == Method::st_gs).generator(&gen));
    return labeled_bound(model, x, y, gen) - entropy;
}

struct Batch {
    Tensor labeled_x, unlabeled_x;  // binary images
    Indices labels;                 // of labeled_x
};

struct Loss {
    Tensor objective;  // recorded on the tape
    double labeled = 0.0, unlabeled = 0.0, cross_entropy = 0.0;  // the means of its three terms
};

// mean L(x_l, y_l) + mean U(x_u) + weight * mean -log q(y_l | x_l): Kingma's J^alpha, per image.
inline Loss training_loss(const Model& model, const Batch& b, Method method, float tau, float weight, Generator& gen) {
    const Tensor labeled = mean(labeled_bound(model, b.labeled_x, one_hot(b.labels, model.classes), gen));
    const Tensor unlabeled = mean(unlabeled_bound(model, b.unlabeled_x, method, tau, gen));
    const Tensor ce = cross_entropy(model.classifier->forward(b.labeled_x), b.labels);
    return {labeled + unlabeled + ce * weight, labeled.item(), unlabeled.item(), ce.item()};
}

// ---- Evaluation ------------------------------------------------------------------------------

struct Scores {
    double accuracy = 0.0;  // of argmax q(y | x) against the labels
    double elbo = 0.0;      // mean -U(x), marginalized over y exactly, one z per class
};

// Both over a data set (binary images), in chunks that a stop request can interrupt.
inline Scores evaluate(const Model& model, const mnist::DataSet& data, std::size_t images, std::uint64_t seed) {
    images = std::min(images, data.size());
    if (images == 0) throw std::invalid_argument("m2::evaluate: no images to evaluate");
    std::vector<double> correct(images), elbo(images);  // per image, summed in order below
    harness::for_each_chunk(images, 500, [&](std::size_t c, const std::vector<std::size_t>& rows) {
        Generator gen(harness::derive_seed(seed, c));
        Array x;
        Indices labels;
        mnist::gather(data, rows, x, labels);
        const Tensor xt(x);
        const Indices predicted = argmax(model.classifier->forward(xt), 1);
        const Array u = unlabeled_bound(model, xt, Method::marginal, 1.0f, gen).value();
        for (std::size_t i = 0; i < rows.size(); ++i) {
            correct[rows[i]] = predicted(i) == labels(i);
            elbo[rows[i]] = -u(i);
        }
    });
    Scores total;
    for (std::size_t i = 0; i < images; ++i) {
        total.accuracy += correct[i];
        total.elbo += elbo[i];
    }
    total.accuracy /= double(images);
    total.elbo /= double(images);
    return total;
}

// `per_class` training rows of each class 0..classes-1, drawn without replacement by gen, class
// after class; a class with too few images is an error naming it.
inline std::vector<std::size_t> choose_labeled(const std::vector<std::uint8_t>& labels, std::size_t classes,
                                               std::size_t per_class, Generator& gen) {
    std::vector<std::size_t> chosen;
    for (std::size_t c = 0; c < classes; ++c) {
        std::vector<std::size_t> rows;
        for (std::size_t i = 0; i < labels.size(); ++i)
            if (labels[i] == c) rows.push_back(i);
        if (rows.size() < per_class)
            throw std::invalid_argument("choose_labeled: class " + std::to_string(c) + " has " +
                                        std::to_string(rows.size()) + " training images, fewer than the " +
                                        std::to_string(per_class) + " labels asked for per class");
        for (std::size_t j = 0; j < per_class; ++j) {  // a partial Fisher-Yates shuffle
            std::swap(rows[j], rows[j + gen.below(rows.size() - j)]);
            chosen.push_back(rows[j]);
        }
    }
    return chosen;
}

}  // namespace m2
