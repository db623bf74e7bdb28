#include "layers/estimator_choice.hpp"

#include <stdexcept>

#include "autograd/ops.hpp"
#include "layers/gumbel.hpp"

namespace tg::estimators {

const std::vector<Info>& all() {
    static const std::vector<Info> list = {
        {"gs", Form::one_evaluation, true, true, false, "relaxed samples (Binary Concrete / Gumbel-Softmax) at tau"},
        {"st-gs", Form::one_evaluation, true, true, false, "straight-through Gumbel-Softmax: discrete forward, relaxed gradient"},
        {"st", Form::one_evaluation, true, true, false, "plain straight-through: the gradient of the probabilities"},
        {"slope-st", Form::one_evaluation, true, true, false, "straight-through with the gradient of sigmoid/softmax(slope * logits), slope annealed by the caller"},
        {"decoupled-st", Form::one_evaluation, true, true, false, "ST-GS with forward temperature tau and backward tau_backward"},
        {"gumbel-rao", Form::one_evaluation, true, true, false, "Gumbel-Rao GR-MCK: ST-GS averaged over K conditional draws"},
        {"reinmax", Form::one_evaluation, true, true, false, "ReinMax: second-order straight-through (tau >= 1)", 1.0f},
        {"darn", Form::one_evaluation, true, true, false, "DARN: Taylor control variate without its mean"},
        {"zgr", Form::one_evaluation, true, true, false, "ZGR: half ST, half DARN (Gumbel-Rao at tau -> 0)"},
        {"sf", Form::score, true, true, true, "score function (REINFORCE) with a moving-average baseline"},
        {"nvil", Form::score, true, true, true, "NVIL: centred by running mean (and a caller's baseline), variance-normalized"},
        {"rloo", Form::score, true, true, true, "REINFORCE leave-one-out over m >= 2 samples"},
        {"vimco", Form::score, true, true, true, "VIMCO: the m-sample bound -log mean exp(-f), leave-one-out signals"},
        {"muprop", Form::one_layer, true, true, true, "MuProp: Taylor control variate around the mean, its mean added back"},
        {"arm", Form::one_layer, true, false, true, "ARM: antithetic pair of Bernoulli samples"},
        {"disarm", Form::one_layer, true, false, true, "DisARM: ARM with the antithetic draws integrated out"},
        {"rebar", Form::one_layer, true, true, true, "REBAR with fixed eta and tau (conditional relaxed control variate)"},
        {"rebar-tuned", Form::one_layer, true, true, true, "REBAR with eta and tau learned on the estimate's variance"},
        {"relax", Form::one_layer, true, true, true, "RELAX: REBAR's control variate plus a network, learned on the variance"},
    };
    return list;
}

std::vector<std::string> names_for(Discrete kind) {
    std::vector<std::string> names;
    for (const Info& i : all())
        if (kind.is_bernoulli() ? i.bernoulli : i.categorical) names.emplace_back(i.name);
    return names;
}

const Info& find(const std::string& name) {
    std::string known;
    for (const Info& i : all()) {
        if (name == i.name) return i;
        known += known.empty() ? i.name : std::string(", ") + i.name;
    }
    throw std::invalid_argument("estimators: no estimator named '" + name + "'; the estimators are " + known);
}

Estimator::Estimator(const std::string& name, Settings settings)
    : info_(&find(name)), name_(name), settings_(settings), reinforce_(settings.decay), nvil_(settings.decay) {}

std::shared_ptr<nn::ControlVariate> Estimator::make_control_variate(Discrete kind, std::size_t units, Generator* init) {
    if (name_ != "rebar-tuned" && name_ != "relax") return nullptr;
    require(kind);
    const std::size_t hidden = name_ == "relax" ? settings_.hidden : 0;
    if (name_ == "relax" && hidden == 0) throw std::invalid_argument("estimator relax: its network needs hidden >= 1 units");
    control_variate_ = std::make_shared<nn::ControlVariate>(kind, units, hidden, 1.0f, 0.5f, init);
    return control_variate_;
}

void Estimator::require(Discrete kind) const {
    if (!applies_to(kind))
        throw std::invalid_argument("estimator " + name_ + " does not apply to " + kind.name() +
                                    " latents; those take " + [&] {
                                        std::string s;
                                        for (const std::string& n : names_for(kind)) s += (s.empty() ? "" : ", ") + n;
                                        return s;
                                    }());
}

Tensor Estimator::sample(const Tensor& logits, Discrete kind, Generator& gen) const {
    require(kind);
    const Settings& s = settings_;
    const std::string& n = name_;
    if (n == "gs" || n == "st-gs") {
        const bool hard = n == "st-gs";
        if (kind.is_bernoulli()) return binary_concrete(logits, BinaryConcreteOptions().tau(s.tau).hard(hard).generator(&gen));
        return gumbel_softmax(logits, GumbelSoftmaxOptions().tau(s.tau).hard(hard).classes(kind.classes()).generator(&gen));
    }
    // the others forward an exact sample (decoupled-st at tau 0): the hint for linear and matmul
    const auto exact = [](Tensor t) { return t.mark_discrete_sample(); };
    if (n == "st") return exact(slope_straight_through(logits, kind, 1.0f, gen));
    if (n == "slope-st") return exact(slope_straight_through(logits, kind, s.slope, gen));
    if (n == "decoupled-st") {
        Tensor z = decoupled_straight_through(logits, kind, s.tau, s.tau_backward, gen);
        return s.tau == 0.0f ? exact(z) : z;
    }
    if (n == "gumbel-rao") return exact(gumbel_rao(logits, kind, s.draws, s.tau, gen));
    if (n == "reinmax") return exact(reinmax(logits, kind, s.tau, gen));
    if (n == "darn") return exact(darn(logits, kind, gen));
    if (n == "zgr") return exact(zgr(logits, kind, gen));
    throw std::invalid_argument("estimator " + n + " needs the loss of each sample: use surrogate_of or surrogate, not sample");
}

Tensor Estimator::surrogate_of(const Tensor& f, const Tensor& log_q, const Tensor& input) {
    const std::string& n = name_;
    if (n == "rloo") return rloo_surrogate(f, log_q);
    if (n == "vimco") return vimco_surrogate(f, log_q);
    if (n != "sf" && n != "nvil")
        throw std::invalid_argument("estimator " + n + " is not a score-function estimator: surrogate_of takes sf, nvil, rloo, vimco");
    // one sample per example, or m summed into one (f the m-sample loss, log_q the sum)
    const bool several = f.dim() == 2;
    const Tensor total_log_q = several ? sum(log_q, 0) : log_q;
    const Tensor loss = several ? neg(log_mean_exp(neg(f), 0)) : f;
    if (n == "nvil") {
        if (!baseline_ || !input.defined()) return nvil_.surrogate(loss, total_log_q, Tensor::zeros(loss.shape()));
        const Tensor b = baseline_->forward(input);
        if (b.size() != loss.size())
            throw std::invalid_argument("estimator nvil: the baseline network gives " + shape_str(b.shape()) +
                                        " for the input " + shape_str(input.shape()) + ", not one value per example " +
                                        shape_str(loss.shape()));
        return nvil_.surrogate(loss, total_log_q, reshape(b, loss.shape()));
    }
    Tensor out = reinforce_.surrogate(loss, total_log_q);
    reinforce_.update(loss);
    return out;
}

Tensor Estimator::surrogate(const Tensor& logits, Discrete kind, const SampleLoss& f, Generator& gen, std::size_t samples,
                            const Tensor& input) {
    require(kind);
    const std::string& n = name_;
    if (n == "muprop") return muprop(logits, kind, f, gen);
    if (n == "arm") return arm(logits, f, gen);
    if (n == "disarm") return disarm(logits, f, gen);
    if (n == "rebar") return rebar(logits, kind, f, Tensor::scalar(settings_.eta), Tensor::scalar(settings_.tau), gen);
    if (n == "rebar-tuned" || n == "relax") {
        if (!control_variate_)
            throw std::invalid_argument("estimator " + n + " needs its control variate: make_control_variate(kind, units) "
                                        "first, registered in the model so that its optimizer trains it");
        if (control_variate_->kind().classes() != kind.classes())
            throw std::invalid_argument("estimator " + n + ": its control variate was made for " +
                                        control_variate_->kind().name() + " latents of " +
                                        std::to_string(control_variate_->kind().values()) + " values, not these");
        return control_variate_->surrogate(logits, f, gen);
    }
    if (n == "rloo") return rloo(logits, kind, f, samples, gen);
    if (n == "vimco") return vimco(logits, kind, f, samples, gen);
    if (form() == Form::score) {
        const Tensor z = discrete_sample(logits, kind, gen);
        return surrogate_of(f(z), discrete_log_prob(logits, z, kind), input);
    }
    return f(sample(logits, kind, gen));  // one evaluation
}

}  // namespace tg::estimators
