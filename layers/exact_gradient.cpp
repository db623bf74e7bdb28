#include "layers/exact_gradient.hpp"

#include <cmath>
#include <cstdio>
#include <stdexcept>
#include <string>
#include <utility>

#include "autograd/ops.hpp"
#include "layers/detail_gradient_stash.hpp"

namespace tg {

namespace {
std::string printed(double states) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.0f", states);
    return buf;
}
}  // namespace

ExactGradient exact_gradient(const std::vector<std::size_t>& values,
                             const std::function<StateTerms(const std::vector<std::size_t>& state)>& model,
                             const std::vector<Tensor>& params) {
    const char* op = "exact_gradient";
    double states = 1.0;
    for (std::size_t v : values) {
        if (v < 2) throw std::invalid_argument(std::string(op) + ": every variable needs at least 2 values, got " + std::to_string(v));
        states *= double(v);
    }
    if (states > double(exact_gradient_max_states))
        throw std::invalid_argument(std::string(op) + ": " + std::to_string(values.size()) + " variables have " +
                                    printed(states) + " states, more than the " +
                                    std::to_string(exact_gradient_max_states) +
                                    " it enumerates; check the estimator on a smaller model");
    for (const Tensor& p : params)
        if (!p.defined() || !p.is_leaf() || !p.requires_grad())
            throw std::invalid_argument(std::string(op) + ": every parameter must be a leaf tensor requiring gradients");
    const detail::GradientStash stash(params);
    ExactGradient out;
    std::vector<std::size_t> state(values.size(), 0);
    for (;;) {
        const StateTerms t = model(state);
        if (!t.log_q.defined() || !t.f.defined() || t.log_q.size() != 1 || t.f.size() != 1)
            throw std::invalid_argument(std::string(op) + ": the model must give one-element log_q and f for every state");
        const float q = std::exp(t.log_q.value().data()[0]);
        out.expectation += double(q) * double(t.f.value().data()[0]);
        // q (grad f + f grad log q), as the gradient of q (f + detach(f) log q) with q held constant
        const Tensor term = mul(add(t.f, mul(detach(t.f), t.log_q)), q);
        if (term.requires_grad()) sum(term).backward();
        ++out.states;
        std::size_t i = 0;
        while (i < state.size() && ++state[i] == values[i]) state[i++] = 0;
        if (i == state.size()) break;
    }
    for (std::size_t i = 0; i < params.size(); ++i) out.gradients.push_back(stash.gathered(i));
    return out;
}

ExactGradient exact_gradient(const Tensor& logits, Discrete kind, const std::function<Tensor(const Tensor& z)>& f,
                             const std::vector<Tensor>& params) {
    const char* op = "exact_gradient";
    if (!logits.defined()) throw std::invalid_argument(std::string(op) + ": logits is a null tensor");
    const std::size_t per = kind.is_bernoulli() ? 1 : kind.classes();
    if (logits.dim() == 0 || logits.shape().back() % per != 0)
        throw std::invalid_argument(std::string(op) + ": logits " + shape_str(logits.shape()) +
                                    " do not hold whole variables of " + std::to_string(per) + " classes");
    // every state's log q from a leaf copy of the logits (its graph is walked once per state);
    // the logits' own graph once at the end, seeded with the gradient the copy gathered
    const Tensor copy(logits.value(), true);
    std::vector<Tensor> all = params;
    all.push_back(copy);
    const std::vector<std::size_t> values(logits.size() / per, kind.values());
    ExactGradient out = exact_gradient(
        values,
        [&](const std::vector<std::size_t>& state) {
            Array z = xt::zeros<float>(logits.shape());
            for (std::size_t i = 0; i < state.size(); ++i) {
                if (kind.is_bernoulli()) z.data()[i] = float(state[i]);
                else z.data()[i * per + state[i]] = 1.0f;
            }
            const Tensor zt(std::move(z));
            return StateTerms{sum(discrete_log_prob(copy, zt, kind)), sum(f(zt))};
        },
        all);
    const Array through_logits = out.gradients.back();
    out.gradients.pop_back();
    if (!logits.requires_grad()) return out;
    // the logits' share: d E / d params = (d E / d logits) (d logits / d params), added by a backward
    const detail::GradientStash stash(params);
    if (!logits.is_leaf()) logits.backward(through_logits, true);
    for (std::size_t i = 0; i < params.size(); ++i)
        out.gradients[i] += params[i].same(logits) ? through_logits : stash.gathered(i);
    return out;
}

}  // namespace tg
