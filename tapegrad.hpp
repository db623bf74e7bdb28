// Everything of tapegrad in one include.
#pragma once

#include "autograd/blas.hpp"
#include "autograd/gradcheck.hpp"
#include "autograd/ops.hpp"
#include "autograd/random.hpp"
#include "autograd/tensor.hpp"
#include "layers/gumbel.hpp"
