// Gradients set aside while a backward of the library's own (an exact sum, a loss's slope) runs
// through a user's leaves, and put back afterwards: those calls change no gradient of theirs.
#pragma once

#include <utility>
#include <vector>

#include <xtensor/xbuilder.hpp>

#include "autograd/tensor.hpp"

namespace tg::detail {

class GradientStash {
public:
    // Saves the leaves' gradients and forgets them, so what a backward leaves can be read alone.
    explicit GradientStash(std::vector<Tensor> leaves) : leaves_(std::move(leaves)) {
        for (Tensor& t : leaves_) {
            saved_.emplace_back(t.has_grad(), t.has_grad() ? t.grad() : Array());
            t.zero_grad();
        }
    }
    // What leaf i gathered since (zeros if nothing reached it).
    Array gathered(std::size_t i) const {
        const Tensor& t = leaves_[i];
        return t.has_grad() ? t.grad() : Array(xt::zeros<float>(t.shape()));
    }
    ~GradientStash() {
        for (std::size_t i = 0; i < leaves_.size(); ++i) {
            leaves_[i].zero_grad();
            if (saved_[i].first) leaves_[i].accumulate_grad(saved_[i].second, "GradientStash");
        }
    }
    GradientStash(const GradientStash&) = delete;
    GradientStash& operator=(const GradientStash&) = delete;

private:
    std::vector<Tensor> leaves_;
    std::vector<std::pair<bool, Array>> saved_;
};

}  // namespace tg::detail
