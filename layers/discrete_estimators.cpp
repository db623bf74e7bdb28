#include "layers/discrete_estimators.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "autograd/ops.hpp"
#include "layers/detail_checks.hpp"

namespace tg {

namespace {

[[noreturn]] void fail(const char* op, const std::string& what) { throw std::invalid_argument(std::string(op) + ": " + what); }

void require_defined(const Tensor& t, const char* op, const char* what) {
    if (!t.defined()) fail(op, std::string(what) + " is a null tensor");
}

// [..., G * K] seen as [..., G, K]: the class axis of every variable last.
Shape grouped_shape(const Shape& shape, std::size_t classes, const char* op) {
    if (shape.empty()) fail(op, "categorical logits need a class axis, got a 0-d tensor");
    const std::size_t last = shape.back();
    if (last == 0 || last % classes != 0)
        fail(op, "the last axis of length " + std::to_string(last) + " does not hold whole variables of " +
                     std::to_string(classes) + " classes (logits " + shape_str(shape) + ")");
    Shape g(shape.begin(), shape.end() - 1);
    g.push_back(last / classes);
    g.push_back(classes);
    return g;
}
Tensor grouped(const Tensor& t, std::size_t classes, const char* op) {
    return reshape(t, grouped_shape(t.shape(), classes, op));
}

void check_uniforms(const Tensor& logits, const Array& u, const char* op, const char* name = "u") {
    require_defined(logits, op, "logits");
    if (u.shape() != logits.shape())
        fail(op, std::string("uniforms ") + name + " of shape " + shape_str(u.shape()) + " do not match logits of shape " +
                     shape_str(logits.shape()));
    for (std::size_t i = 0; i < u.size(); ++i) {
        const float v = u.data()[i];
        if (!(v >= std::numeric_limits<float>::min() && v < 1.0f))
            fail(op, std::string(name) + " must lie in the open interval (0, 1), got " + std::to_string(v) +
                         " at flat index " + std::to_string(i));
    }
}

Tensor constant(Array a) { return Tensor(std::move(a)); }
Array log_of(const Array& u) { return xt::eval(xt::log(u)); }
Array logit_of(const Array& u) { return xt::eval(xt::log(u) - xt::log(1.0f - u)); }
Array gumbel_of(const Array& u) { return xt::eval(-xt::log(-xt::log(u))); }
Array exponential_of(const Array& u) { return xt::eval(-xt::log(u)); }

// Sum over the last axis of each group's class axis: [..., G, K] -> [..., G, 1].
Tensor class_sum(const Tensor& g) { return sum(g, -1, true); }

// J(p) x = p x - p sum(p x) per group, with x = logits - detach(logits): zero in value, its
// gradient J(p) g, the straight-through Jacobian at probabilities p (grouped).
Tensor jacobian_surrogate(const Tensor& p, const Tensor& logits_grouped) {
    const Tensor x = grad_only(logits_grouped);
    const Tensor px = mul(p, x);
    return sub(px, mul(p, class_sum(px)));
}

void require_draws(std::size_t draws, const char* op) {
    if (draws == 0) fail(op, "needs at least one conditional draw, got 0");
}

float positive(float v, const char* op, const char* what) {
    return detail::require_positive_finite(v, std::string(op) + ": " + what);
}

}  // namespace

Discrete Discrete::categorical(std::size_t classes) {
    if (classes < 2)
        throw std::invalid_argument("Discrete::categorical: a categorical variable needs at least 2 classes, got " +
                                    std::to_string(classes));
    return Discrete(classes);
}

Tensor grad_only(const Tensor& x) { return sub(x, detach(x)); }

Tensor bernoulli_from_uniforms(const Tensor& logits, const Array& u) {
    check_uniforms(logits, u, "bernoulli_from_uniforms");
    Array b = xt::eval(xt::cast<float>(logits.value() + logit_of(u) > 0.0f));
    return Tensor(std::move(b)).mark_discrete_sample();
}

Tensor categorical_from_uniforms(const Tensor& logits, const Array& u, std::size_t classes) {
    const char* op = "categorical_from_uniforms";
    check_uniforms(logits, u, op);
    if (classes < 2) fail(op, "needs at least 2 classes, got " + std::to_string(classes));
    NoGradGuard no_grad;
    const Tensor z = grouped(Tensor(xt::eval(logits.value() + gumbel_of(u))), classes, op);
    return reshape(one_hot(argmax(z, -1), classes), logits.shape()).mark_discrete_sample();
}

Tensor discrete_sample(const Tensor& logits, Discrete kind, Generator& gen) {
    require_defined(logits, "discrete_sample", "logits");
    const Array u = gen.uniform_open(logits.shape());
    return kind.is_bernoulli() ? bernoulli_from_uniforms(logits, u) : categorical_from_uniforms(logits, u, kind.classes());
}

Tensor discrete_log_prob(const Tensor& logits, const Tensor& z, Discrete kind) {
    const char* op = "discrete_log_prob";
    require_defined(logits, op, "logits");
    require_defined(z, op, "the sample z");
    if (z.shape() != logits.shape())
        fail(op, "the sample " + shape_str(z.shape()) + " and the logits " + shape_str(logits.shape()) +
                     " must have the same shape");
    if (kind.is_bernoulli())
        return sum(add(mul(z, log_sigmoid(logits)), mul(rsub(1.0f, z), log_sigmoid(neg(logits)))), -1);
    const std::size_t k = kind.classes();
    const Tensor lp = mul(grouped(z, k, op), log_softmax(grouped(logits, k, op), -1));
    return sum(reshape(lp, logits.shape()), -1);
}

Tensor discrete_mean(const Tensor& logits, Discrete kind) {
    require_defined(logits, "discrete_mean", "logits");
    if (kind.is_bernoulli()) return sigmoid(logits);
    return reshape(softmax(grouped(logits, kind.classes(), "discrete_mean"), -1), logits.shape());
}

Tensor conditional_gumbel(const Tensor& logits, const Tensor& one_hot, const Array& exponentials, std::size_t classes) {
    const char* op = "conditional_gumbel";
    require_defined(one_hot, op, "the one-hot sample");
    if (one_hot.shape() != logits.shape())
        fail(op, "the one-hot sample " + shape_str(one_hot.shape()) + " must have the logits' shape " +
                     shape_str(logits.shape()));
    if (exponentials.shape() != logits.shape() || !xt::all(exponentials > 0.0f && xt::isfinite(exponentials)))
        fail(op, "the exponentials must be positive and finite, in the logits' shape " + shape_str(logits.shape()));
    if (classes < 2) fail(op, "needs at least 2 classes, got " + std::to_string(classes));
    const Tensor l = grouped(logits, classes, op), d = grouped(one_hot, classes, op);
    const Tensor log_e = grouped(constant(log_of(exponentials)), classes, op);
    const Tensor lse = logsumexp(l, -1, true);
    const Tensor log_e_top = class_sum(mul(log_e, d));  // log E_d of each group
    const Tensor top = sub(lse, log_e_top);
    // -log(E_j exp(-l_j) + E_d exp(-lse)), as a logsumexp of the two logs
    const Tensor both = stack({sub(log_e, l), sub(log_e_top, lse) + Tensor::zeros(l.shape())}, 0);
    const Tensor rest = neg(logsumexp(both, 0));
    return reshape(where(d, top + Tensor::zeros(l.shape()), rest), logits.shape());
}

Tensor conditional_logistic(const Tensor& logits, const Tensor& b, const Array& v) {
    const char* op = "conditional_logistic";
    check_uniforms(logits, v, op, "v");
    require_defined(b, op, "the sample b");
    if (b.shape() != logits.shape())
        fail(op, "the sample " + shape_str(b.shape()) + " must have the logits' shape " + shape_str(logits.shape()));
    const Tensor log_p = log_sigmoid(logits), log_not_p = log_sigmoid(neg(logits));
    const Tensor p = sigmoid(logits), not_p = sigmoid(neg(logits));
    const Tensor v_t = constant(v), one_minus_v = constant(xt::eval(1.0f - v));
    // b = 1: v' = 1 - p (1 - v), 1 - v' = p (1 - v); b = 0: v' = v (1 - p), 1 - v' = 1 - v (1 - p)
    const Tensor logit_one = sub(log1p(neg(mul(p, one_minus_v))), add(log_p, constant(log_of(1.0f - v))));
    const Tensor logit_zero = sub(add(constant(log_of(v)), log_not_p), log1p(neg(mul(v_t, not_p))));
    return add(logits, where(b, logit_one, logit_zero));
}

Tensor relax(const Tensor& z, const Tensor& tau, Discrete kind) {
    require_defined(tau, "relax", "the temperature tau");
    if (kind.is_bernoulli()) return sigmoid(div(z, tau));
    return reshape(softmax(grouped(div(z, tau), kind.classes(), "relax"), -1), z.shape());
}

Tensor relaxed_sample(const Tensor& logits, const Array& u, const Tensor& tau, Discrete kind) {
    check_uniforms(logits, u, "relaxed_sample");
    const Array noise = kind.is_bernoulli() ? logit_of(u) : gumbel_of(u);
    return relax(add(logits, constant(noise)), tau, kind);
}

Tensor gumbel_rao(const Tensor& logits, Discrete kind, std::size_t draws, float tau, Generator& gen) {
    const char* op = "gumbel_rao";
    require_draws(draws, op);
    const Tensor t = Tensor::scalar(positive(tau, op, "the temperature tau"));
    const Tensor d = discrete_sample(logits, kind, gen);
    Tensor s;
    for (std::size_t k = 0; k < draws; ++k) {
        const Array u = gen.uniform_open(logits.shape());
        Array noise;  // the conditional noise, held constant
        {
            NoGradGuard no_grad;
            const Tensor z = kind.is_bernoulli() ? conditional_logistic(logits, d, u)
                                                 : conditional_gumbel(logits, d, exponential_of(u), kind.classes());
            noise = xt::eval(z.value() - logits.value());
        }
        const Tensor y = relax(add(logits, constant(std::move(noise))), t, kind);
        s = s.defined() ? add(s, y) : y;
    }
    return add(d, grad_only(div(s, float(draws))));
}

Tensor reinmax(const Tensor& logits, Discrete kind, float tau, Generator& gen) {
    const char* op = "reinmax";
    if (!(tau >= 1.0f) || !std::isfinite(tau)) fail(op, "the temperature tau must be >= 1 and finite, got " + std::to_string(tau));
    const Tensor d = discrete_sample(logits, kind, gen);
    if (kind.is_bernoulli()) {  // the two-class case, J(p) = p (1 - p)
        const Tensor p = sigmoid(logits), p_d = mul(add(sigmoid(div(logits, tau)), d), 0.5f);
        const Tensor j = sub(mul(mul(p_d, rsub(1.0f, p_d)), 2.0f), mul(mul(p, rsub(1.0f, p)), 0.5f));
        return add(d, mul(detach(j), grad_only(logits)));
    }
    const std::size_t k = kind.classes();
    const Tensor l = grouped(logits, k, op), dg = grouped(d, k, op);
    const Tensor p = detach(softmax(l, -1));
    const Tensor p_d = detach(mul(add(softmax(div(l, tau), -1), dg), 0.5f));
    const Tensor s = sub(mul(jacobian_surrogate(p_d, l), 2.0f), mul(jacobian_surrogate(p, l), 0.5f));
    return add(d, reshape(s, logits.shape()));
}

namespace {

// log q of each variable's value, in the logits' shape (a group's value on each of its entries).
Tensor variable_log_prob(const Tensor& logits, const Tensor& d, Discrete kind, const char* op) {
    if (kind.is_bernoulli()) return add(mul(d, log_sigmoid(logits)), mul(rsub(1.0f, d), log_sigmoid(neg(logits))));
    const std::size_t k = kind.classes();
    const Tensor l = grouped(logits, k, op);
    const Tensor lq = class_sum(mul(grouped(d, k, op), log_softmax(l, -1)));
    return reshape(add(lq, Tensor::zeros(l.shape())), logits.shape());
}

// Zero in value; gradient (D - pi) <g, D - pi> per variable (Bernoulli: g (b - p)^2).
Tensor darn_term(const Tensor& logits, const Tensor& d, Discrete kind, const char* op) {
    const Tensor pi = detach(discrete_mean(logits, kind));
    return mul(sub(d, pi), grad_only(variable_log_prob(logits, d, kind, op)));
}

}  // namespace

Tensor darn(const Tensor& logits, Discrete kind, Generator& gen) {
    const Tensor d = discrete_sample(logits, kind, gen);
    if (kind.is_bernoulli())  // Jang's: g (b - 1/2) (b - p)
        return add(d, mul(add(d, -0.5f), grad_only(variable_log_prob(logits, d, kind, "darn"))));
    return add(d, darn_term(logits, d, kind, "darn"));
}

Tensor zgr(const Tensor& logits, Discrete kind, Generator& gen) {
    const Tensor d = discrete_sample(logits, kind, gen);
    const Tensor st = grad_only(discrete_mean(logits, kind));
    return add(d, mul(add(st, darn_term(logits, d, kind, "zgr")), 0.5f));
}

Tensor slope_straight_through(const Tensor& logits, Discrete kind, float slope, Generator& gen) {
    const Tensor sloped = mul(logits, positive(slope, "slope_straight_through", "the slope"));
    const Tensor d = discrete_sample(logits, kind, gen);
    return add(d, grad_only(discrete_mean(sloped, kind)));
}

Tensor decoupled_straight_through(const Tensor& logits, Discrete kind, float tau_forward, float tau_backward,
                                  Generator& gen) {
    const char* op = "decoupled_straight_through";
    require_defined(logits, op, "logits");
    if (!(tau_forward >= 0.0f) || !std::isfinite(tau_forward))
        fail(op, "the forward temperature must be >= 0 (0: the one-hot) and finite, got " + std::to_string(tau_forward));
    const Tensor t_back = Tensor::scalar(positive(tau_backward, op, "the backward temperature"));
    const Array u = gen.uniform_open(logits.shape());
    const Tensor z = add(logits, constant(kind.is_bernoulli() ? logit_of(u) : gumbel_of(u)));
    Tensor forward;
    {
        NoGradGuard no_grad;
        forward = tau_forward == 0.0f ? (kind.is_bernoulli() ? bernoulli_from_uniforms(logits, u)
                                                             : categorical_from_uniforms(logits, u, kind.classes()))
                                      : relax(z, Tensor::scalar(tau_forward), kind);
    }
    return add(Tensor(forward.value()), grad_only(relax(z, t_back, kind)));
}

// ---- Estimators that need the loss of each sample

namespace {

void require_losses(const Tensor& f, const Tensor& logits, const char* op) {
    require_defined(f, op, "the loss f(z)");
    if (logits.dim() == 0 || f.shape() != Shape(logits.shape().begin(), logits.shape().end() - 1))
        fail(op, "the loss must give one value per example, shape " +
                     shape_str(Shape(logits.shape().begin(), logits.shape().end() - (logits.dim() ? 1 : 0))) + ", got " +
                     shape_str(f.shape()));
}

void require_samples(const Tensor& f, const Tensor& log_q, const char* op) {
    require_defined(f, op, "f");
    require_defined(log_q, op, "log_q");
    if (f.shape() != log_q.shape())
        fail(op, "f " + shape_str(f.shape()) + " and log_q " + shape_str(log_q.shape()) + " must have the same shape");
    if (f.dim() == 0 || f.shape()[0] < 2)
        fail(op, "needs m >= 2 samples along axis 0, got f of shape " + shape_str(f.shape()));
}

}  // namespace

Array loss_gradient_at(const SampleLoss& f, const Array& z) {
    Tape tape;  // f's nodes end with this call
    TapeScope scope(tape);
    const Tensor at(z, true);
    const Tensor slope = grad({sum(f(at))}, {at}, {}, GradOptions().allow_unused(true))[0];
    return slope.defined() ? slope.value() : Array(xt::zeros<float>(z.shape()));
}

Tensor rloo_surrogate(const Tensor& f, const Tensor& log_q) {
    require_samples(f, log_q, "rloo_surrogate");
    const float m = float(f.shape()[0]);
    // f_i - mean of the others = (m f_i - sum f) / (m - 1)
    const Tensor signal = detach(div(sub(mul(f, m), sum(f, 0, true)), m - 1.0f));
    return mean(add(f, grad_only(mul(signal, log_q))), 0);
}

Tensor vimco_surrogate(const Tensor& f, const Tensor& log_q) {
    require_samples(f, log_q, "vimco_surrogate");
    const std::size_t m = f.shape()[0];
    const Tensor log_w = neg(f);
    const Tensor big_l = add(logsumexp(log_w, 0), -std::log(float(m)));
    Tensor signal;
    {
        NoGradGuard no_grad;
        // L^(-i): log w_i replaced by the mean of the others' log w
        const Tensor others = div(sub(sum(log_w, 0, true), log_w), float(m - 1));
        std::vector<Tensor> l_minus;
        for (std::size_t i = 0; i < m; ++i) {
            std::vector<Tensor> parts;
            for (std::size_t j = 0; j < m; ++j) parts.push_back(slice(j == i ? others : log_w, 0, j, j + 1));
            l_minus.push_back(add(logsumexp(concat(parts, 0), 0), -std::log(float(m))));
        }
        signal = Tensor(sub(big_l, stack(l_minus, 0)).value());
    }
    return sub(grad_only(neg(sum(mul(signal, log_q), 0))), big_l);
}

namespace {

// The m copies of logits [B, D] as [m * B, D], sample-major, and f and log q back as [m, B].
struct Repeated {
    Tensor f, log_q;
};
Repeated repeated_samples(const Tensor& logits, Discrete kind, const SampleLoss& f, std::size_t m, Generator& gen,
                          const char* op) {
    require_defined(logits, op, "logits");
    if (logits.dim() != 2) fail(op, "needs logits [B, D], got " + shape_str(logits.shape()));
    if (m < 2) fail(op, "needs m >= 2 samples, got " + std::to_string(m));
    const std::size_t b = logits.shape()[0];
    const Tensor all = concat(std::vector<Tensor>(m, logits), 0);
    const Tensor z = discrete_sample(all, kind, gen);
    const Tensor loss = f(z);
    require_losses(loss, all, op);
    return {reshape(loss, Shape{m, b}), reshape(discrete_log_prob(all, z, kind), Shape{m, b})};
}

}  // namespace

Tensor rloo(const Tensor& logits, Discrete kind, const SampleLoss& f, std::size_t m, Generator& gen) {
    const Repeated r = repeated_samples(logits, kind, f, m, gen, "rloo");
    return rloo_surrogate(r.f, r.log_q);
}

Tensor vimco(const Tensor& logits, Discrete kind, const SampleLoss& f, std::size_t m, Generator& gen) {
    const Repeated r = repeated_samples(logits, kind, f, m, gen, "vimco");
    return vimco_surrogate(r.f, r.log_q);
}

Tensor muprop(const Tensor& logits, Discrete kind, const SampleLoss& f, Generator& gen) {
    const char* op = "muprop";
    const Tensor d = discrete_sample(logits, kind, gen);
    const Tensor f_d = f(d);
    require_losses(f_d, logits, op);
    const Tensor mu = discrete_mean(logits, kind);
    const Array mu_value = mu.value();
    Array f_mu;
    {
        NoGradGuard no_grad;
        f_mu = f(Tensor(mu_value)).value();
    }
    const Array slope = loss_gradient_at(f, mu_value);
    // the control variate f(mu) + f'(mu) (D - mu), a constant; its mean f(mu) comes back through mu
    const Array cv = f_mu + xt::sum(slope * (d.value() - mu_value), {d.dim() - 1});
    const Tensor signal = detach(sub(f_d, constant(cv)));
    const Tensor mean_term = sum(mul(constant(slope), mu), -1);
    return add(f_d, grad_only(add(mul(signal, discrete_log_prob(logits, d, kind)), mean_term)));
}

namespace {

// The antithetic pair of ARM and DisARM and their losses.
struct Pair {
    Array u;
    Tensor b1, b2, f1, f2;
};
Pair antithetic(const Tensor& logits, const SampleLoss& f, Generator& gen, const char* op) {
    require_defined(logits, op, "logits");
    Pair p;
    p.u = gen.uniform_open(logits.shape());
    p.b1 = bernoulli_from_uniforms(logits, p.u);                  // u > sigmoid(-l)
    p.b2 = bernoulli_from_uniforms(logits, xt::eval(1.0f - p.u));  // u < sigmoid(l)
    p.f1 = f(p.b1);
    p.f2 = f(p.b2);
    require_losses(p.f1, logits, op);
    require_losses(p.f2, logits, op);
    return p;
}

// The pair's value (f1 + f2) / 2 (and its gradient for the loss's own parameters), with the
// gradient coeff for the logits.
Tensor antithetic_surrogate(const Tensor& logits, const Pair& p, const Array& coeff) {
    return add(mul(add(p.f1, p.f2), 0.5f), sum(mul(constant(coeff), grad_only(logits)), -1));
}

Array per_unit(const Tensor& per_example, const Tensor& logits) {
    Shape s = per_example.shape();
    s.push_back(1);
    return xt::eval(xt::reshape_view(per_example.value(), s) + xt::zeros<float>(logits.shape()));
}

}  // namespace

Tensor arm(const Tensor& logits, const SampleLoss& f, Generator& gen) {
    const Pair p = antithetic(logits, f, gen, "arm");
    const Array diff = per_unit(sub(p.f1, p.f2), logits);
    return antithetic_surrogate(logits, p, xt::eval(diff * (p.u - 0.5f)));
}

Tensor disarm(const Tensor& logits, const SampleLoss& f, Generator& gen) {
    const Pair p = antithetic(logits, f, gen, "disarm");
    const Array diff = per_unit(sub(p.f1, p.f2), logits);
    const Array& b1 = p.b1.value();
    const Array& b2 = p.b2.value();
    const Array sign = xt::eval(xt::where(b2 > 0.5f, -1.0f, 1.0f) * xt::cast<float>(xt::not_equal(b1, b2)));
    const Array sig_abs = xt::eval(1.0f / (1.0f + xt::exp(-xt::abs(logits.value()))));
    return antithetic_surrogate(logits, p, xt::eval(0.5f * diff * sign * sig_abs));
}

namespace {

// RELAX's draw: the perturbed logits z, the sample D = H(z) and z~ drawn given D.
struct RelaxDraw {
    Tensor z, d, z_tilde;
};
RelaxDraw relax_draw(const Tensor& logits, Discrete kind, Generator& gen, const char* op) {
    require_defined(logits, op, "logits");
    const Array u = gen.uniform_open(logits.shape()), v = gen.uniform_open(logits.shape());
    const bool bern = kind.is_bernoulli();
    RelaxDraw r;
    r.z = add(logits, constant(bern ? logit_of(u) : gumbel_of(u)));
    r.d = bern ? bernoulli_from_uniforms(logits, u) : categorical_from_uniforms(logits, u, kind.classes());
    r.z_tilde = bern ? conditional_logistic(logits, r.d, v) : conditional_gumbel(logits, r.d, exponential_of(v), kind.classes());
    return r;
}

SampleLoss rebar_control(Discrete kind, const SampleLoss& f, const Tensor& eta, const Tensor& tau, const char* op) {
    require_defined(eta, op, "eta");
    require_defined(tau, op, "the temperature tau");
    return [=](const Tensor& z) { return mul(eta, f(relax(z, tau, kind))); };
}

}  // namespace

Tensor relax_estimator(const Tensor& logits, Discrete kind, const SampleLoss& f, const SampleLoss& c, Generator& gen) {
    const char* op = "relax_estimator";
    const RelaxDraw r = relax_draw(logits, kind, gen, op);
    const Tensor f_d = f(r.d);
    require_losses(f_d, logits, op);
    const Tensor c_z = c(r.z), c_zt = c(r.z_tilde);
    require_losses(c_z, logits, op);
    const Tensor score = mul(sub(detach(f_d), detach(c_zt)), discrete_log_prob(logits, r.d, kind));
    return add(f_d, grad_only(add(score, sub(c_z, c_zt))));
}

Tensor rebar(const Tensor& logits, Discrete kind, const SampleLoss& f, const Tensor& eta, const Tensor& tau,
             Generator& gen) {
    return relax_estimator(logits, kind, f, rebar_control(kind, f, eta, tau, "rebar"), gen);
}

ControlledEstimate relax_gradient(const Tensor& logits, Discrete kind, const SampleLoss& f, const SampleLoss& c,
                                  Generator& gen) {
    const char* op = "relax_gradient";
    require_defined(logits, op, "logits");
    if (!logits.requires_grad()) fail(op, "the logits must require grad (the estimate is d E f / d logits)");
    if (!grad_enabled()) fail(op, "differentiates f and c, which it cannot under NoGradGuard");
    const RelaxDraw r = relax_draw(logits, kind, gen, op);
    ControlledEstimate out;
    out.value = f(r.d);
    require_losses(out.value, logits, op);
    const Tensor c_z = c(r.z), c_zt = c(r.z_tilde);
    require_losses(c_z, logits, op);
    // Each example's log q and c depend on its own row of logits only, so one grad of their sums
    // gives every row's slope. The graphs stay: the caller's backward from the logits still runs.
    const GradOptions keep = GradOptions().retain_graph(true).allow_unused(true);
    const Tensor score = grad({sum(discrete_log_prob(logits, r.d, kind))}, {logits}, {}, keep)[0];
    const Tensor slope = grad({sum(sub(c_z, c_zt))}, {logits}, {}, GradOptions(keep).create_graph(true))[0];
    Shape per_example = out.value.shape();
    per_example.push_back(1);
    // c(z~) stays differentiable in c's parameters here: the variance's gradient flows through it
    out.gradient = mul(reshape(sub(detach(out.value), c_zt), per_example), score);
    if (slope.defined()) out.gradient = add(out.gradient, slope);
    return out;
}

ControlledEstimate rebar_gradient(const Tensor& logits, Discrete kind, const SampleLoss& f, const Tensor& eta,
                                  const Tensor& tau, Generator& gen) {
    return relax_gradient(logits, kind, f, rebar_control(kind, f, eta, tau, "rebar_gradient"), gen);
}

}  // namespace tg

namespace tg::nn {

Nvil::Nvil(float decay, bool normalize) : decay_(decay), normalize_(normalize) {
    if (!(decay >= 0.0f && decay < 1.0f))
        throw std::invalid_argument("Nvil: decay must be in [0, 1), got " + std::to_string(decay));
}

float Nvil::scale() const { return normalize_ ? std::max(1.0f, std::sqrt(var_)) : 1.0f; }

Array Nvil::state() const { return Array{started_ ? 1.0f : 0.0f, mean_, var_}; }

void Nvil::set_state(const Array& state) {
    const float* s = state.data();
    if (state.size() != 3 || !(s[0] == 0.0f || s[0] == 1.0f) || !std::isfinite(s[1]) || !std::isfinite(s[2]) ||
        s[2] < 0.0f)
        fail("Nvil::set_state", "expects {started 0 or 1, a finite mean, a finite variance >= 0}, got " +
                                    std::to_string(state.size()) + " values");
    started_ = s[0] == 1.0f;
    mean_ = s[1];
    var_ = s[2];
}

Tensor Nvil::surrogate(const Tensor& f, const Tensor& log_q, const Tensor& baseline) {
    const char* op = "Nvil::surrogate";
    require_defined(f, op, "f");
    require_defined(log_q, op, "log_q");
    require_defined(baseline, op, "the baseline prediction");
    if (f.shape() != log_q.shape() || f.shape() != baseline.shape())
        fail(op, "f " + shape_str(f.shape()) + ", log_q " + shape_str(log_q.shape()) + " and the baseline " +
                     shape_str(baseline.shape()) + " must have the same shape (one entry per example)");
    // the signal with the statistics of earlier batches, so the estimate stays unbiased
    const Tensor centered = detach(add(f, -mean_));
    const Tensor signal = div(sub(centered, detach(baseline)), scale());
    const Tensor fit = square(sub(baseline, centered));
    Tensor out = add(f, grad_only(add(mul(signal, log_q), fit)));
    double s = 0.0, s2 = 0.0;
    for (float x : f.value()) s += x;
    const float batch_mean = float(s / double(f.size()));
    const Array l = signal.value() * scale();
    for (std::size_t i = 0; i < l.size(); ++i) s2 += double(l.data()[i]) * l.data()[i];
    const float batch_var = float(s2 / double(l.size()));
    mean_ = started_ ? decay_ * mean_ + (1.0f - decay_) * batch_mean : batch_mean;
    var_ = started_ ? decay_ * var_ + (1.0f - decay_) * batch_var : batch_var;
    started_ = true;
    return out;
}

ControlVariate::ControlVariate(Discrete kind, std::size_t units, std::size_t hidden, float eta, float tau, Generator* init)
    : kind_(kind), units_(units) {
    const char* op = "ControlVariate";
    if (units == 0) fail(op, "needs the number of units (the logits' last axis), got 0");
    if (!std::isfinite(eta)) fail(op, "eta must be finite, got " + std::to_string(eta));
    eta_ = register_parameter("eta", Tensor::scalar(eta));
    log_tau_ = register_parameter("log_tau", Tensor::scalar(std::log(positive(tau, op, "the temperature tau"))));
    if (hidden > 0) {
        LinearOptions o;
        o.generator = init;
        hidden_ = register_module("hidden", std::make_shared<Linear>(units, hidden, o));
        out_ = register_module("out", std::make_shared<Linear>(hidden, 1, o));
    }
}

float ControlVariate::tau() const { return std::exp(log_tau_.item()); }

SampleLoss ControlVariate::of(const SampleLoss& f) const {
    // copies of the handles: c outlives nothing it needs
    const Tensor eta = eta_, log_tau = log_tau_;
    const Discrete kind = kind_;
    const std::shared_ptr<Linear> hidden = hidden_, out = out_;
    const std::size_t units = units_;
    return [=](const Tensor& z) {
        Tensor c = mul(eta, f(relax(z, exp(log_tau), kind)));
        if (!hidden) return c;
        if (z.dim() != 2 || z.shape()[1] != units)
            fail("ControlVariate", "its network takes perturbed logits [B, " + std::to_string(units) + "], got " +
                                       shape_str(z.shape()));
        return add(c, reshape(out->forward(tanh(hidden->forward(z))), Shape{z.shape()[0]}));
    };
}

ControlledEstimate ControlVariate::estimate(const Tensor& logits, const SampleLoss& f, Generator& gen) const {
    return relax_gradient(logits, kind_, f, of(f), gen);
}

std::vector<Tensor> ControlVariate::variance_gradient(const ControlledEstimate& e, bool retain) const {
    require_defined(e.gradient, "ControlVariate", "the estimate");
    const Tensor g = e.gradient;
    const Tensor per_example = g.dim() > 1 ? sum(square(g), -1) : square(g);
    return grad({mean(per_example)}, parameters(), {}, GradOptions().allow_unused(true).retain_graph(retain));
}

void ControlVariate::variance_backward(const ControlledEstimate& e) {
    const std::vector<Tensor> params = parameters();
    const std::vector<Tensor> d = variance_gradient(e, false);
    for (std::size_t i = 0; i < params.size(); ++i) {
        Tensor p = params[i];
        p.zero_grad();
        if (d[i].defined()) p.accumulate_grad(d[i].value(), "ControlVariate::variance_backward");
    }
}

Tensor ControlVariate::surrogate(const Tensor& logits, const SampleLoss& f, Generator& gen) const {
    const ControlledEstimate e = estimate(logits, f, gen);
    // the logits' graph stays for the model's backward, which then frees the estimate's too
    const std::vector<Tensor> d = variance_gradient(e, true);
    const std::vector<Tensor> params = parameters();
    // <d, params> in every example: the batch mean's gradient is d, as Nvil's fit term
    Tensor tuning = Tensor::scalar(0.0f);
    for (std::size_t i = 0; i < params.size(); ++i)
        if (d[i].defined()) tuning = add(tuning, sum(mul(detach(d[i]), params[i])));
    const Tensor taken = sum(mul(detach(e.gradient), logits), -1);  // [B]: each row's estimate to its logits
    return add(e.value, grad_only(add(taken, tuning)));
}

}  // namespace tg::nn

