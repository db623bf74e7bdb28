// Library misuse, one probe per process (tests/probes/probe.py runs it): `probe_misuse` lists
// the probes as "name<TAB>what the refusal must name"; `probe_misuse NAME` runs one and prints
// what became of it. Exit 2: it threw (the message on stdout); 0: it returned, and stdout says
// whether what it made was finite. A signal is a crash. Not part of the suite (slow to build
// and to run one process each); built on demand: cmake --build build --target probe_misuse.
#include <cfloat>
#include <cmath>
#include <cstdio>
#include <functional>
#include <iostream>
#include <string>
#include <vector>

#include "tapegrad.hpp"

using namespace tg;

namespace {

struct Probe {
    std::string name, names;  // names: a word the refusal must hold (the op, method or option)
    std::function<Tensor()> run;
};

// An element of a that is NaN or infinite: the value of a silent wrong result.
bool finite(const Tensor& t) {
    if (!t.defined()) return true;
    for (float v : t.value())
        if (!std::isfinite(v)) return false;
    return true;
}

const float nan = std::nanf("");

std::vector<Probe> probes() {
    std::vector<Probe> p;
    const Tensor z3 = Tensor::zeros({3}), z23 = Tensor::zeros({2, 3});
    // distributions: values outside the support
    for (float v : {2.0f, -1.0f, nan, INFINITY})
        p.push_back({"Bernoulli::log_prob(" + std::to_string(v) + ")", "Bernoulli::log_prob",
                     [=] { return dist::Bernoulli::from_logits(z3).log_prob(Tensor(Array{0.0f, 1.0f, v})); }});
    for (float v : {1.5f, -0.1f, nan})
        p.push_back({"Bernoulli::from_probs(" + std::to_string(v) + ")", "Bernoulli::from_probs",
                     [=] { return dist::Bernoulli::from_probs(Tensor(Array{0.5f, v})).probs(); }});
    for (const Array& v : {Array{{0.5f, 0.5f, 0.0f}, {1.0f, 0.0f, 0.0f}}, Array{{1.0f, 1.0f, 0.0f}, {1.0f, 0.0f, 0.0f}},
                           Array{{0.0f, 0.0f, 0.0f}, {1.0f, 0.0f, 0.0f}}, Array{{nan, 1.0f, 0.0f}, {1.0f, 0.0f, 0.0f}},
                           Array{{2.0f, 0.0f, 0.0f}, {1.0f, 0.0f, 0.0f}}})
        p.push_back({"Categorical::log_prob(not one-hot " + std::to_string(p.size()) + ")", "Categorical::log_prob",
                     [=] { return dist::Categorical(z23).log_prob(Tensor(v)); }});
    p.push_back({"Categorical::log_prob(Indices 3 of 3)", "Categorical::log_prob",
                 [=] { return dist::Categorical(z23).log_prob(Indices{0, 3}); }});
    for (const Array& v : {Array{0.0f, 0.5f, 0.5f}, Array{0.5f, 0.5f, 0.5f}, Array{nan, 0.5f, 0.5f},
                           Array{1.5f, -0.25f, -0.25f}})
        p.push_back({"RelaxedOneHotCategorical::log_prob(off the open simplex " + std::to_string(p.size()) + ")",
                     "RelaxedOneHotCategorical::log_prob",
                     [=] { return dist::RelaxedOneHotCategorical(z3, 0.5f).log_prob(Tensor(v)); }});
    for (const Array& v : {Array{0.5f, -1.0f, -1.0f}, Array{-1.0f, -1.0f, -1.0f}, Array{-INFINITY, 0.0f, -1.0f},
                           Array{nan, 0.0f, -1.0f}})
        p.push_back({"RelaxedOneHotCategorical::log_prob_log(not a log-simplex point " + std::to_string(p.size()) + ")",
                     "RelaxedOneHotCategorical::log_prob_log",
                     [=] { return dist::RelaxedOneHotCategorical(z3, 0.5f).log_prob_log(Tensor(v)); }});
    for (float v : {0.0f, 1.0f, 1.5f, -0.5f, nan})
        p.push_back({"RelaxedBernoulli::log_prob(" + std::to_string(v) + ")", "RelaxedBernoulli::log_prob",
                     [=] { return dist::RelaxedBernoulli(z3, 0.5f).log_prob(Tensor(Array{0.5f, 0.5f, v})); }});
    for (float v : {nan, INFINITY, -INFINITY})
        p.push_back({"LogitRelaxedBernoulli::log_prob(" + std::to_string(v) + ")", "LogitRelaxedBernoulli::log_prob",
                     [=] { return dist::LogitRelaxedBernoulli(z3, 0.5f).log_prob(Tensor(Array{0.5f, 0.5f, v})); }});
    // temperatures (and Softplus's beta): denormal, zero, negative, NaN, infinite
    for (float tau : {1e-45f, 1e-39f, 0.0f, -1.0f, nan, INFINITY}) {
        const std::string t = "(" + std::to_string(tau) + (tau > 0 && tau < FLT_MIN ? " denormal" : "") + ")";
        p.push_back({"RelaxedOneHotCategorical" + t, "RelaxedOneHotCategorical",
                     [=] { return dist::RelaxedOneHotCategorical(z3, tau).rsample(); }});
        p.push_back({"RelaxedBernoulli" + t, "RelaxedBernoulli", [=] { return dist::RelaxedBernoulli(z3, tau).rsample(); }});
        p.push_back({"LogitRelaxedBernoulli" + t, "LogitRelaxedBernoulli",
                     [=] { return dist::LogitRelaxedBernoulli(z3, tau).rsample(); }});
        p.push_back({"GumbelSoftmaxOptions::tau" + t, "tau",
                     [=] { return gumbel_softmax(z23, GumbelSoftmaxOptions().tau(tau)); }});
        p.push_back({"BinaryConcreteOptions::tau" + t, "tau",
                     [=] { return binary_concrete(z3, BinaryConcreteOptions().tau(tau)); }});
        p.push_back({"nn::GumbelSoftmax::set_tau" + t, "tau", [=] {
                         nn::GumbelSoftmax layer;
                         layer.set_tau(tau);
                         return layer(z23);
                     }});
        p.push_back({"ConstantTemperature" + t, "ConstantTemperature",
                     [=] { return Tensor::scalar(optim::ConstantTemperature(tau).at(0)); }});
        p.push_back({"ExponentialTemperature tau0" + t, "ExponentialTemperature",
                     [=] { return Tensor::scalar(optim::ExponentialTemperature(tau, 1e-3f, 0.5f).at(10)); }});
        p.push_back({"ExponentialTemperature tau_min" + t, "ExponentialTemperature",
                     [=] { return Tensor::scalar(optim::ExponentialTemperature(1.0f, 1e-3f, tau).at(100000)); }});
        p.push_back({"Softplus beta" + t, "Softplus", [=] {
                         nn::Softplus s(nn::SoftplusOptions{tau});
                         return s.forward(Tensor(Array{1.0f, -1.0f}));
                     }});
    }
    // optimizers: parameters that could never be updated, bad options
    const Tensor leaf(Array{1.0f, 2.0f}, true), constant(Array{1.0f, 2.0f});
    for (const char* kind : {"SGD", "Adam", "AdamW"}) {
        const std::string k = kind;
        auto make = [k](std::vector<Tensor> params, float lr) -> std::unique_ptr<optim::Optimizer> {
            if (k == "SGD") return std::make_unique<optim::SGD>(std::move(params), optim::SGDOptions{lr});
            if (k == "Adam") return std::make_unique<optim::Adam>(std::move(params), optim::AdamOptions{lr});
            return std::make_unique<optim::AdamW>(std::move(params), optim::AdamWOptions{lr});
        };
        p.push_back({k + " of a tensor that does not require grad", k, [=] { return make({constant}, 0.1f), constant; }});
        p.push_back({k + " of a tensor made by an op", k, [=] {
                         const Tensor made = leaf * 2.0f;
                         make({made}, 0.1f);
                         return made;
                     }});
        p.push_back({k + " of a null tensor", k, [=] { return make({Tensor()}, 0.1f), leaf; }});
        p.push_back({k + " of one tensor twice", k, [=] { return make({leaf, leaf}, 0.1f), leaf; }});
        for (float lr : {-1.0f, nan, INFINITY})
            p.push_back({k + " lr " + std::to_string(lr), k, [=] { return make({leaf}, lr), leaf; }});
    }
    // samplers given NaN logits (the lead's part of issue 18, in autograd/)
    const Tensor nan_logits(Array{{nan, 0.0f, 1.0f}});
    p.push_back({"gumbel_max(NaN logits)", "gumbel_max", [=] { return gumbel_max(nan_logits); }});
    p.push_back({"Categorical::sample(NaN logits)", "sample", [=] { return dist::Categorical(nan_logits).sample(); }});
    p.push_back({"bernoulli_sample(NaN logits)", "bernoulli_sample", [=] { return bernoulli_sample(nan_logits); }});
    p.push_back({"gumbel_softmax hard(NaN logits)", "gumbel_softmax",
                 [=] { return gumbel_softmax(nan_logits, GumbelSoftmaxOptions().hard(true)); }});
    p.push_back({"straight_through_bernoulli(NaN logits)", "straight_through",
                 [=] { return straight_through_bernoulli(nan_logits); }});
    p.push_back({"straight_through_categorical(NaN logits)", "straight_through",
                 [=] { return straight_through_categorical(nan_logits); }});
    return p;
}

}  // namespace

int main(int argc, char** argv) {
    const std::vector<Probe> all = probes();
    if (argc < 2) {
        for (const Probe& p : all) std::cout << p.name << "\t" << p.names << "\n";
        return 0;
    }
    for (const Probe& p : all) {
        if (p.name != argv[1]) continue;
        try {
            const Tensor t = p.run();
            std::cout << (finite(t) ? "returned finite values\n" : "returned NaN or infinity\n");
            return 0;
        } catch (const std::exception& e) {
            std::cout << e.what() << "\n";
            return 2;
        }
    }
    std::cerr << "probe_misuse: no probe named '" << argv[1] << "'\n";
    return 64;
}
