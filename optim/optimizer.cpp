#include "optim/optimizer.hpp"

#include <cmath>
#include <sstream>
#include <stdexcept>
#include <unordered_set>

namespace tg::optim {

void detail::check_option(bool ok, const char* who, const char* what, const char* rule, float v) {
    if (ok) return;
    std::ostringstream msg;
    msg << who << ": " << what << " must be " << rule << ", got " << v;
    throw std::invalid_argument(msg.str());
}

Optimizer::Optimizer(std::vector<Tensor> params, float lr, const char* who) : params_(std::move(params)) {
    if (params_.empty()) throw std::invalid_argument(std::string(who) + ": the parameter list is empty");
    std::unordered_set<const TensorImpl*> seen;
    for (std::size_t i = 0; i < params_.size(); ++i) {
        if (!params_[i].defined())
            throw std::invalid_argument(std::string(who) + ": parameter " + std::to_string(i) + " is a null tensor");
        // As in PyTorch: updating a tensor an op made would not change what it was made from.
        if (!params_[i].is_leaf())
            throw std::invalid_argument(std::string(who) + ": parameter " + std::to_string(i) +
                                        " was made by an op, and an optimizer can't optimize a non-leaf tensor "
                                        "(pass the tensors it was computed from)");
        // Its gradient would never arrive: an update that silently never happens.
        if (!params_[i].requires_grad())
            throw std::invalid_argument(std::string(who) + ": parameter " + std::to_string(i) +
                                        " does not require grad (make it with requires_grad = true, or "
                                        "set_requires_grad())");
        // Updating one tensor twice per step is never what the caller meant.
        if (!seen.insert(params_[i].impl()).second)
            throw std::invalid_argument(std::string(who) + ": parameter " + std::to_string(i) +
                                        " appears more than once in the list");
    }
    detail::check_option(lr >= 0.0f && std::isfinite(lr), who, "lr", "non-negative and finite", lr);
    lr_ = lr;
    steps_.assign(params_.size(), 0);
}

void Optimizer::zero_grad() {
    for (auto& p : params_) p.zero_grad();
}

void Optimizer::set_lr(float lr) {
    detail::check_option(lr >= 0.0f && std::isfinite(lr), kind(), "lr", "non-negative and finite", lr);
    lr_ = lr;
}

std::vector<Array>& Optimizer::state_buffer(const std::string& name) {
    std::string known;
    for (const std::string& n : state_names()) known += (known.empty() ? "'" : ", '") + n + "'";
    throw std::out_of_range(std::string(kind()) + ": state/set_state: no state named '" + name + "' (" +
                            (known.empty() ? std::string("it keeps none") : "it keeps " + known) + ")");
}

const std::vector<Array>& Optimizer::state(const std::string& name) const {
    return const_cast<Optimizer*>(this)->state_buffer(name);
}

void Optimizer::set_steps(std::vector<std::int64_t> steps) {
    const std::string who = std::string(kind()) + ": set_steps: ";
    if (steps.size() != params_.size())
        throw std::invalid_argument(who + std::to_string(steps.size()) + " step counts for " +
                                    std::to_string(params_.size()) + " parameters");
    for (std::size_t i = 0; i < steps.size(); ++i)
        if (steps[i] < 0)
            throw std::invalid_argument(who + "the step count of parameter " + std::to_string(i) + " is negative (" +
                                        std::to_string(steps[i]) + ")");
    steps_ = std::move(steps);
}

// step() indexes the buffers by parameter and writes p.size() elements into each it finds
// allocated, so a short list or a buffer of another shape would be written past its end.
void Optimizer::set_state(const std::string& name, std::vector<Array> buffers) {
    std::vector<Array>& state = state_buffer(name);  // an unknown name throws first
    const std::string who = std::string(kind()) + ": set_state('" + name + "'): ";
    if (buffers.size() != params_.size())
        throw std::invalid_argument(who + std::to_string(buffers.size()) + " buffers for " +
                                    std::to_string(params_.size()) + " parameters");
    const Shape unallocated{0};
    for (std::size_t i = 0; i < buffers.size(); ++i) {
        const Shape& s = buffers[i].shape();
        if (s != params_[i].shape() && s != unallocated)
            throw std::invalid_argument(who + "buffer " + std::to_string(i) + " has shape " + shape_str(s) +
                                        ", parameter " + std::to_string(i) + " has shape " +
                                        shape_str(params_[i].shape()) + " (a buffer not yet used has shape (0,))");
    }
    state = std::move(buffers);
}

float clip_grad_norm(const std::vector<Tensor>& params, float max_norm) {
    detail::check_option(max_norm >= 0.0f && std::isfinite(max_norm), "clip_grad_norm", "max_norm",
                         "non-negative and finite", max_norm);
    // Eight independent double accumulators: one would be a serial chain of additions
    // (~2 ns per element); these vectorize and still keep double precision.
    double acc[8] = {};
    for (const auto& p : params) {
        if (!p.has_grad()) continue;
        const Array& g = p.grad();
        const float* d = g.data();
        const std::size_t n = g.size();
        std::size_t i = 0;
        for (; i + 8 <= n; i += 8)
            for (std::size_t k = 0; k < 8; ++k) acc[k] += static_cast<double>(d[i + k]) * d[i + k];
        for (; i < n; ++i) acc[0] += static_cast<double>(d[i]) * d[i];
    }
    double sq = 0.0;
    for (double a : acc) sq += a;
    const double norm = std::sqrt(sq);
    const double factor = max_norm / (norm + 1e-6);
    if (factor < 1.0) {
        const float f = static_cast<float>(factor);
        for (Tensor p : params) {  // a copied handle aliases the same gradient
            if (!p.has_grad()) continue;
            Array& g = p.grad();
            float* d = g.data();
            for (std::size_t i = 0, n = g.size(); i < n; ++i) d[i] *= f;
        }
    }
    return static_cast<float>(norm);
}

}  // namespace tg::optim
