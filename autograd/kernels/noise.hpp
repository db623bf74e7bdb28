// The Gumbel-Softmax family's noise passes (layers/gumbel.cpp) in xsimd batches, over n floats.
// The uniforms u must be normal floats in (0, 1) (log_positive is exact only there); the
// results are within a few ulps of reference::gumbel / reference::logistic, and the same on
// every vector width.
#pragma once

#include <cstddef>

namespace tg::kernels {

// out := -log(-log u) and out := log(u / (1 - u)), out may be u.
// Bought: log_positive instead of xsimd::log, gumbel noise 4.5% -> 2.9% of the categorical step;
// the transform inlined into the pass (not called per batch), 4.0% -> 3.5%.
void gumbel_noise(const float* u, std::size_t n, float* out);
void logistic_noise(const float* u, std::size_t n, float* out);

// z := (logits + gumbel(z)) * scale and z := (logits + logistic(z)) * scale: z holds the
// uniforms on entry. Bought: the uniforms drawn straight into the output and the noise, logits
// and 1/tau in one pass instead of three arrays (part of the fused kernels' step 1.72 -> 1.40 ms).
void add_gumbel_noise(const float* logits, std::size_t n, float scale, float* z);
void add_logistic_noise(const float* logits, std::size_t n, float scale, float* z);

// z := sigmoid(z / tau) = 1 / (1 + exp(-z / tau)), and hard := (z > 0) before, if not null.
// Bought: the hard value and the sigmoid in the noise's pass over z (fused Binary Concrete).
void tempered_sigmoid(float* z, std::size_t n, float tau, float* hard);

}  // namespace tg::kernels
