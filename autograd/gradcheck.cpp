#include "autograd/gradcheck.hpp"

#include <cmath>
#include <sstream>

#include "autograd/ops.hpp"
#include "autograd/random.hpp"

namespace tg {

namespace {
using Fn = std::function<Tensor(const std::vector<Tensor>&)>;

// The tape's gradient of <w, f(inputs)> against central differences of `values` (f's value,
// recorded or not). A constant f (its output requires no grad) has gradient zero when
// constant_ok, and fails otherwise.
GradCheckResult check(const Fn& f, const Fn& values, const std::vector<Tensor>& inputs, const GradCheckOptions& opt,
                      bool constant_ok) {
    Tape tape;
    TapeScope scope(tape);
    Generator gen(opt.seed);
    std::vector<Tensor> wrt;
    for (const Tensor& t : inputs)
        if (t.defined() && t.requires_grad()) wrt.push_back(t);
    const Tensor out = f(inputs);
    const Array weights = gen.normal(Shape(out.shape().begin(), out.shape().end()));
    GradCheckResult result;
    if (!out.requires_grad() && !constant_ok) {
        result.ok = false;
        result.message = "gradcheck: the output does not require grad";
        return result;
    }
    // tg::grad leaves the inputs' own gradients as the caller had them
    std::vector<Tensor> analytic(wrt.size());
    if (out.requires_grad()) analytic = grad({out}, wrt, {Tensor(weights)}, GradOptions().allow_unused(true));
    for (std::size_t k = 0, j = 0; k < inputs.size(); ++k) {
        Tensor t = inputs[k];
        if (!t.defined() || !t.requires_grad()) continue;
        const Array a_k = analytic[j].defined() ? analytic[j].value() : Array(xt::zeros<float>(t.shape()));
        ++j;
        Array& v = t.value();
        for (std::size_t i = 0; i < v.size(); ++i) {
            const float x0 = v.data()[i];
            // A central difference, and what float rounding of the outputs it moved can put in
            // it (a few units in the last place of each): added to the tolerance below.
            auto central = [&](float h, double& noise) {
                v.data()[i] = x0 + h;
                const Array plus = values(inputs).value();
                v.data()[i] = x0 - h;
                const Array minus = values(inputs).value();
                v.data()[i] = x0;
                const double step = double(x0 + h) - double(x0 - h);  // the steps as float stored them
                double diff = 0.0, moved = 0.0;
                const float* w = weights.data();
                for (std::size_t j = 0; j < plus.size(); ++j) {
                    diff += double(w[j]) * (double(plus.data()[j]) - double(minus.data()[j]));
                    if (plus.data()[j] != minus.data()[j])
                        moved += std::abs(double(w[j])) * (std::abs(plus.data()[j]) + std::abs(minus.data()[j]));
                }
                noise = 4.0 * 0x1p-24 * moved / step;
                return diff / step;
            };
            double noise_half, noise_full;
            const double half = central(opt.eps / 2, noise_half), full = central(opt.eps, noise_full);
            const double numeric = (4.0 * half - full) / 3.0, noise = (4.0 * noise_half + noise_full) / 3.0;
            const double a = a_k.data()[i];
            const double err = std::abs(a - numeric);
            result.max_abs_error = std::max(result.max_abs_error, float(err));
            if (err > opt.atol + opt.rtol * std::abs(numeric) + noise && result.ok) {
                result.ok = false;
                std::ostringstream msg;
                msg << "gradcheck: input " << k << " of shape " << shape_str(t.shape()) << ", element " << i
                    << ": analytic " << a << " vs numeric " << numeric;
                result.message = msg.str();
            }
        }
    }
    return result;
}
}  // namespace

GradCheckResult gradcheck(const Fn& f, const std::vector<Tensor>& inputs, const GradCheckOptions& opt) {
    return check(f, [&f](const std::vector<Tensor>& in) {
        NoGradGuard no_grad;
        return f(in);
    }, inputs, opt, false);
}

GradCheckResult gradgradcheck(const Fn& f, const std::vector<Tensor>& inputs, const GradCheckOptions& opt) {
    std::vector<Tensor> wrt;
    for (const Tensor& t : inputs)
        if (t.defined() && t.requires_grad()) wrt.push_back(t);
    Generator gen(opt.seed + 1);
    Array w;  // the projections of f's output and of each first-order gradient
    std::vector<Tensor> v;
    for (const Tensor& t : wrt) v.emplace_back(gen.normal(t.shape()));
    // <v, d<w, f>/d inputs>, recorded (create_graph) or as values only
    auto first_order = [&](const std::vector<Tensor>& in, bool create_graph) {
        const Tensor out = f(in);
        if (w.size() != out.size()) w = gen.normal(out.shape());
        const std::vector<Tensor> g =
            grad({sum(out * Tensor(w))}, wrt, {}, GradOptions().create_graph(create_graph).allow_unused(true));
        Tensor h = Tensor::scalar(0.0f);
        for (std::size_t k = 0; k < g.size(); ++k)
            if (g[k].defined()) h = h + sum(g[k] * v[k]);
        return h;
    };
    GradCheckResult r = check([&](const std::vector<Tensor>& in) { return first_order(in, true); },
                              [&](const std::vector<Tensor>& in) { return first_order(in, false); }, inputs, opt, true);
    if (!r.ok) r.message = "grad" + r.message + " (second order: the gradient of a first-order gradient)";
    return r;
}

}  // namespace tg
