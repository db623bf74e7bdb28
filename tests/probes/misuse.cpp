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

using Op = std::function<Tensor(const Tensor&)>;

// Every op the README lists, each on one argument (the others fixed and valid), by name: what a
// null tensor must be refused by, naming the op.
std::vector<std::pair<std::string, Op>> ops_of_one() {
    const Tensor z23 = Tensor::zeros({2, 3});
    return {
        {"neg", [](const Tensor& a) { return neg(a); }}, {"exp", [](const Tensor& a) { return exp(a); }},
        {"log", [](const Tensor& a) { return log(a); }}, {"sqrt", [](const Tensor& a) { return sqrt(a); }},
        {"square", [](const Tensor& a) { return square(a); }}, {"pow", [](const Tensor& a) { return pow(a, 2.0f); }},
        {"abs", [](const Tensor& a) { return abs(a); }}, {"sigmoid", [](const Tensor& a) { return sigmoid(a); }},
        {"log_sigmoid", [](const Tensor& a) { return log_sigmoid(a); }}, {"tanh", [](const Tensor& a) { return tanh(a); }},
        {"relu", [](const Tensor& a) { return relu(a); }}, {"softplus", [](const Tensor& a) { return softplus(a); }},
        {"clamp", [](const Tensor& a) { return clamp(a, 0.0f, 1.0f); }}, {"sign", [](const Tensor& a) { return sign(a); }},
        {"detach", [](const Tensor& a) { return detach(a); }}, {"add", [=](const Tensor& a) { return add(a, z23); }},
        {"add", [=](const Tensor& a) { return add(z23, a); }}, {"sub", [=](const Tensor& a) { return sub(a, z23); }},
        {"mul", [=](const Tensor& a) { return mul(z23, a); }}, {"div", [=](const Tensor& a) { return div(a, z23); }},
        {"add", [](const Tensor& a) { return add(a, 1.0f); }}, {"mul", [](const Tensor& a) { return mul(a, 2.0f); }},
        {"rsub", [](const Tensor& a) { return rsub(1.0f, a); }}, {"rdiv", [](const Tensor& a) { return rdiv(1.0f, a); }},
        {"where", [=](const Tensor& a) { return where(a, z23, z23); }},
        {"where", [=](const Tensor& a) { return where(z23, a, z23); }},
        {"matmul", [](const Tensor& a) { return matmul(a, Tensor::zeros({3, 2})); }},
        {"matmul", [=](const Tensor& a) { return matmul(z23, a); }},
        {"linear", [](const Tensor& a) { return linear(a, Tensor::zeros({4, 3})); }},
        {"linear", [=](const Tensor& a) { return linear(z23, a); }},
        {"sum", [](const Tensor& a) { return sum(a); }}, {"sum", [](const Tensor& a) { return sum(a, 0); }},
        {"mean", [](const Tensor& a) { return mean(a); }}, {"max", [](const Tensor& a) { return max(a, 0); }},
        {"reshape", [](const Tensor& a) { return reshape(a, {6}); }},
        {"transpose", [](const Tensor& a) { return transpose(a); }},
        {"slice", [](const Tensor& a) { return slice(a, 0, 0, 1); }},
        {"concat", [=](const Tensor& a) { return concat({z23, a}, 0); }},
        {"stack", [=](const Tensor& a) { return stack({a, z23}, 0); }},
        {"broadcast_to", [](const Tensor& a) { return broadcast_to(a, {2, 3}); }},
        {"sum_to", [](const Tensor& a) { return sum_to(a, {3}); }},
        {"repeat", [](const Tensor& a) { return repeat(a, {1, 2}); }},
        {"tile", [](const Tensor& a) { return tile(a, {1, 2}); }},
        {"repeat_interleave", [](const Tensor& a) { return repeat_interleave(a, 2, 0); }},
        {"split", [](const Tensor& a) { return split(a, 1, 0).at(0); }},
        {"chunk", [](const Tensor& a) { return chunk(a, 2, 0).at(0); }},
        {"softmax", [](const Tensor& a) { return softmax(a); }},
        {"log_softmax", [](const Tensor& a) { return log_softmax(a); }},
        {"logsumexp", [](const Tensor& a) { return logsumexp(a); }},
        {"binary_cross_entropy_with_logits", [=](const Tensor& a) { return binary_cross_entropy_with_logits(a, z23); }},
        {"binary_cross_entropy_with_logits", [=](const Tensor& a) { return binary_cross_entropy_with_logits(z23, a); }},
        {"cross_entropy", [](const Tensor& a) { return cross_entropy(a, Indices{0, 1}); }},
        {"gather", [](const Tensor& a) { return gather(a, 1, Indices{0, 1}); }},
        {"scatter_add", [=](const Tensor& a) { return scatter_add(a, 1, Indices{0, 1}, Tensor::ones({2, 1})); }},
        {"argmax", [](const Tensor& a) { return one_hot(argmax(a), 3); }},
        {"gumbel_softmax", [](const Tensor& a) { return gumbel_softmax(a); }},
        {"binary_concrete", [](const Tensor& a) { return binary_concrete(a); }},
        {"gumbel_max", [](const Tensor& a) { return gumbel_max(a); }},
        {"bernoulli_sample", [](const Tensor& a) { return bernoulli_sample(a); }},
        {"straight_through_bernoulli", [](const Tensor& a) { return straight_through_bernoulli(a); }},
        {"straight_through_categorical", [](const Tensor& a) { return straight_through_categorical(a); }},
        {"log_mean_exp", [](const Tensor& a) { return log_mean_exp(a); }},
        {"score_function_surrogate", [=](const Tensor& a) { return score_function_surrogate(a, z23); }},
    };
}

void generated_probes(std::vector<Probe>& p) {
    const Tensor z23 = Tensor::zeros({2, 3}), z45 = Tensor::zeros({4, 5});
    for (const auto& [name, op] : ops_of_one())
        p.push_back({name + " of a null tensor " + std::to_string(p.size()), name, [op = op] { return op(Tensor()); }});
    // shapes that do not fit together: refused naming the op
    const std::vector<std::pair<std::string, std::function<Tensor()>>> mismatched = {
        {"add", [=] { return add(z23, z45); }}, {"sub", [=] { return sub(z45, z23); }},
        {"mul", [=] { return mul(z23, Tensor::zeros({2})); }}, {"div", [=] { return div(z23, Tensor::zeros({3, 2})); }},
        {"where", [=] { return where(Tensor::zeros({4}), z23, z23); }},
        {"matmul", [=] { return matmul(z23, z23); }}, {"matmul", [=] { return matmul(Tensor::zeros({3}), z23); }},
        {"matmul", [=] { return matmul(Tensor::zeros({2, 2, 3}), Tensor::zeros({3, 2, 2})); }},
        {"linear", [=] { return linear(z23, z45); }}, {"linear", [=] { return linear(z23, Tensor::zeros({4, 3}), Tensor::zeros({5})); }},
        {"linear", [=] { return linear(Tensor::zeros({3}), Tensor::zeros({4, 2})); }},
        {"binary_cross_entropy_with_logits", [=] { return binary_cross_entropy_with_logits(z23, Tensor::zeros({3, 2})); }},
        {"cross_entropy", [=] { return cross_entropy(z23, Indices{0}); }},
        {"cross_entropy", [=] { return cross_entropy(z23, Indices{0, 3}); }},
        {"cross_entropy", [=] { return cross_entropy(Tensor::zeros({3}), Indices{0}); }},
        {"concat", [=] { return concat({z23, z45}, 0); }}, {"concat", [=] { return concat({}, 0); }},
        {"stack", [=] { return stack({z23, z45}, 0); }}, {"stack", [=] { return stack({}, 0); }},
        {"reshape", [=] { return reshape(z23, {7}); }}, {"reshape", [=] { return reshape(z23, {-1, -1}); }},
        {"reshape", [=] { return reshape(z23, {-2, 3}); }}, {"reshape", [=] { return reshape(z23, {-1, 4}); }},
        {"transpose", [=] { return transpose(z23, {0, 0}); }}, {"transpose", [=] { return transpose(z23, {0}); }},
        {"transpose", [=] { return transpose(z23, {0, 2}); }},
        {"slice", [=] { return slice(z23, 0, 2, 1); }}, {"slice", [=] { return slice(z23, 1, 0, 4); }},
        {"broadcast_to", [=] { return broadcast_to(z23, {4, 3}); }}, {"broadcast_to", [=] { return broadcast_to(z23, {3}); }},
        {"sum_to", [=] { return sum_to(z23, {4}); }}, {"sum_to", [=] { return sum_to(z23, {2, 3, 1}); }},
        {"repeat", [=] { return repeat(z23, {1}); }},
        {"split", [=] { return split(z23, 0, 0).at(0); }}, {"split", [=] { return split(z23, std::vector<std::size_t>{1, 2}, 0).at(0); }},
        {"chunk", [=] { return chunk(z23, 0, 0).at(0); }},
        {"gather", [=] { return gather(z23, 1, Indices{0, 3}); }}, {"gather", [=] { return gather(z23, 1, Indices{0}); }},
        {"scatter_add", [=] { return scatter_add(z23, 1, Indices{0, 3}, Tensor::ones({2, 1})); }},
        {"scatter_add", [=] { return scatter_add(z23, 1, Indices{0, 1}, Tensor::ones({3, 1})); }},
        {"one_hot", [=] { return one_hot(Indices{0, 3}, 3); }}, {"one_hot", [=] { return one_hot(Indices{0}, 0); }},
        {"score_function_surrogate", [=] { return score_function_surrogate(z23, z45); }},
        {"log_mean_exp", [=] { return log_mean_exp(Tensor::zeros({0, 3})); }},
        {"softmax", [=] { return softmax(Tensor::scalar(1.0f)); }},
        {"gumbel_softmax", [=] { return gumbel_softmax(z23, GumbelSoftmaxOptions().classes(4)); }},
    };
    for (const auto& [name, make] : mismatched)
        p.push_back({name + " of shapes that do not fit " + std::to_string(p.size()), name, make});
    // axes out of range, both signs
    const std::vector<std::pair<std::string, std::function<Tensor(int)>>> with_axis = {
        {"sum", [=](int ax) { return sum(z23, ax); }}, {"mean", [=](int ax) { return mean(z23, ax); }},
        {"max", [=](int ax) { return max(z23, ax); }}, {"softmax", [=](int ax) { return softmax(z23, ax); }},
        {"log_softmax", [=](int ax) { return log_softmax(z23, ax); }},
        {"logsumexp", [=](int ax) { return logsumexp(z23, ax); }}, {"slice", [=](int ax) { return slice(z23, ax, 0, 1); }},
        {"concat", [=](int ax) { return concat({z23, z23}, ax); }}, {"stack", [=](int ax) { return stack({z23, z23}, ax); }},
        {"split", [=](int ax) { return split(z23, 1, ax).at(0); }}, {"chunk", [=](int ax) { return chunk(z23, 1, ax).at(0); }},
        {"gather", [=](int ax) { return gather(z23, ax, Indices{0, 0}); }},
        {"scatter_add", [=](int ax) { return scatter_add(z23, ax, Indices{0, 0}, Tensor::ones({2, 1})); }},
        {"argmax", [=](int ax) { return one_hot(argmax(z23, ax), 3); }},
        {"repeat_interleave", [=](int ax) { return repeat_interleave(z23, 2, ax); }},
        {"log_mean_exp", [=](int ax) { return log_mean_exp(z23, ax); }},
        {"gumbel_softmax", [=](int ax) { return gumbel_softmax(z23, GumbelSoftmaxOptions().axis(ax)); }},
        {"gumbel_max", [=](int ax) { return gumbel_max(z23, GumbelSoftmaxOptions().axis(ax)); }},
        {"straight_through_categorical", [=](int ax) { return straight_through_categorical(z23, GumbelSoftmaxOptions().axis(ax)); }},
        {"Tensor::shape", [=](int ax) { return Tensor::scalar(float(z23.shape(ax))); }},
    };
    for (const auto& [name, make] : with_axis)
        for (int ax : {3, -4, 1 << 30})
            p.push_back({name + " axis " + std::to_string(ax), name, [make = make, ax] { return make(ax); }});
    // sizes whose element count overflows or cannot be allocated: refused before any allocation
    const std::size_t huge = std::size_t(1) << 62;
    const std::vector<std::pair<std::string, std::function<Tensor()>>> sizes = {
        {"Tensor::full", [] { return Tensor::zeros({std::size_t(1) << 40, std::size_t(1) << 40}); }},
        {"Tensor::full", [] { return Tensor::ones({SIZE_MAX, 2}); }},
        {"one_hot", [=] { return one_hot(Indices{0}, huge); }}, {"one_hot", [=] { return one_hot(Indices{1}, huge); }},
        {"Linear", [] { return nn::Linear(2, SIZE_MAX / 2 + 2).weight; }},
        {"Linear", [] { return nn::Linear(std::size_t(1) << 40, std::size_t(1) << 40).weight; }},
        {"repeat", [=] { return repeat(z23, {huge, 1}); }}, {"tile", [=] { return tile(z23, {huge, huge}); }},
        {"broadcast_to", [=] { return broadcast_to(z23, {huge, 2, 3}); }},
        {"repeat_interleave", [=] { return repeat_interleave(z23, huge, 0); }},
        {"reshape", [=] { return reshape(z23, {huge, huge, 0}); }},
    };
    for (const auto& [name, make] : sizes) p.push_back({name + " too large " + std::to_string(p.size()), name, make});
    // the tape: backward where it cannot run, gradients that are not there
    p.push_back({"backward of a non-scalar without a seed", "backward", [] {
                     const Tensor w(Array{{1.0f, 2.0f}}, true);
                     const Tensor y = w * 2.0f;
                     y.backward();
                     return w.grad_tensor();
                 }});
    p.push_back({"backward with a seed of another shape", "backward", [] {
                     const Tensor w(Array{{1.0f, 2.0f}}, true);
                     const Tensor y = w * 2.0f;
                     y.backward(Array{1.0f, 1.0f, 1.0f});
                     return w.grad_tensor();
                 }});
    p.push_back({"backward twice without retain", "backward", [] {
                     const Tensor w(Array{1.0f, 2.0f}, true);
                     const Tensor y = sum(w * w);
                     y.backward();
                     y.backward();
                     return w.grad_tensor();
                 }});
    p.push_back({"backward after Tape::clear", "Tape::clear", [] {
                     const Tensor w(Array{1.0f, 2.0f}, true);
                     const Tensor y = sum(w * w);
                     current_tape().clear();
                     y.backward();
                     return w.grad_tensor();
                 }});
    p.push_back({"backward of what requires no grad", "backward", [] {
                     const Tensor y = sum(Tensor(Array{1.0f, 2.0f}) * 2.0f);
                     y.backward();
                     return y;
                 }});
    p.push_back({"backward after a write to an input", "modified", [] {
                     Tensor w(Array{1.0f, 2.0f}, true);
                     const Tensor y = sum(w * w);
                     w.value() *= 10.0f;
                     y.backward();
                     return w.grad_tensor();
                 }});
    p.push_back({"backward after an optimizer step", "modified", [] {
                     Tensor w(Array{1.0f, 2.0f}, true);
                     optim::SGD sgd({w}, optim::SGDOptions{0.1f});
                     sum(w * w).backward();
                     const Tensor y = sum(w * w);
                     sgd.step();
                     y.backward();
                     return w.grad_tensor();
                 }});
    p.push_back({"grad of a tensor no backward reached", "Tensor::grad",
                 [] { return Tensor(Array{1.0f}, true).grad_tensor(); }});
    p.push_back({"item of a tensor of 6 elements", "item", [=] { return Tensor::scalar(z23.item()); }});
    p.push_back({"tg::grad of an unused input", "grad", [] {
                     const Tensor w(Array{1.0f, 2.0f}, true), v(Array{1.0f}, true);
                     return tg::grad({sum(w * w)}, {v}).at(0);
                 }});
    p.push_back({"tg::grad of an output that requires no grad", "grad", [] {
                     const Tensor w(Array{1.0f, 2.0f}, true);
                     return tg::grad({sum(Tensor(Array{1.0f}) * 2.0f)}, {w}).at(0);
                 }});
    p.push_back({"tg::grad with grad_outputs of another count", "grad", [] {
                     const Tensor w(Array{1.0f, 2.0f}, true);
                     return tg::grad({sum(w * w)}, {w}, {Tensor::scalar(1.0f), Tensor::scalar(1.0f)}).at(0);
                 }});
    // optimizer state of another size (the checkpoint loader's memory-safety bug)
    for (std::size_t n : {0, 2}) {
        p.push_back({"Adam::set_state with " + std::to_string(n) + " buffers for 1 parameter", "set_state", [n] {
                         const Tensor w(Array{1.0f, 2.0f}, true);
                         optim::Adam adam({w}, optim::AdamOptions{0.1f});
                         adam.set_state("m", std::vector<Array>(n, Array{0.0f, 0.0f}));
                         return w;
                     }});
    }
    p.push_back({"Adam::set_state with a buffer of another shape", "set_state", [] {
                     const Tensor w(Array{1.0f, 2.0f}, true);
                     optim::Adam adam({w}, optim::AdamOptions{0.1f});
                     adam.set_state("m", {Array{0.0f, 0.0f, 0.0f}});
                     return w;
                 }});
    p.push_back({"Adam::set_state of an unknown buffer", "set_state", [] {
                     const Tensor w(Array{1.0f, 2.0f}, true);
                     optim::Adam adam({w}, optim::AdamOptions{0.1f});
                     adam.set_state("momentum_of_the_moon", {Array{0.0f, 0.0f}});
                     return w;
                 }});
    // layers given inputs of the wrong width
    p.push_back({"Linear of an input of the wrong width", "linear", [=] { return nn::Linear(4, 2)(z23); }});
    p.push_back({"Linear of a null input", "linear", [] { return nn::Linear(4, 2)(Tensor()); }});
}

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
    generated_probes(p);
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
