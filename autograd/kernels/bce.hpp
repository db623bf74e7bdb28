// Binary cross-entropy with logits in one xsimd pass (binary_cross_entropy_with_logits).
#pragma once

#include <cstddef>

namespace tg::kernels {

// For the n logits x and targets t: the loss l = max(x, 0) - x t + log1p(exp(-|x|)) of each
// element into each_loss (if not null), else their sum returned (in double, float lanes summing
// a few hundred terms at most); sigmoid(x) - t into dx if not null (the gradient's factor, from
// the same exp). Within 2 ulps of reference::bce_with_logits.
// Bought: one pass instead of staged xtensor expressions, the exp shared with the backward and
// log1p(e) without xsimd::log1p's special cases: BCE forward+backward 0.12 -> 0.077 ms per step
// (callgrind 0.91M -> 0.55M instructions), then forward 3.9% -> 3.2% of the step.
double bce_with_logits(const float* x, const float* t, std::size_t n, float* each_loss, float* dx);

// The backward with the output gradient g (n values if each, else one value times scale):
// d := beta d + s g for the logits (s = sigmoid(x) - t, from the forward), and
// d := beta d - x g for the targets; beta is 0 or 1. Plain loops the compiler vectorizes,
// written straight into the gradient buffers (no temporary but the targets' when accumulating).
void bce_backward_logits(const float* s, const float* g, bool each, float scale, std::size_t n, float beta, float* d);
void bce_backward_targets(const float* x, const float* g, bool each, float scale, std::size_t n, float beta, float* d);

}  // namespace tg::kernels
