// Everything of tapegrad in one include.
#pragma once

#include "autograd/blas.hpp"
#include "autograd/gradcheck.hpp"
#include "autograd/ops.hpp"
#include "autograd/random.hpp"
#include "autograd/tensor.hpp"
#include "layers/activation.hpp"
#include "layers/gumbel.hpp"
#include "layers/linear.hpp"
#include "layers/module.hpp"
#include "layers/sequential.hpp"
#include "optim/adam.hpp"
#include "optim/checkpoint.hpp"
#include "optim/lr_schedule.hpp"
#include "optim/optimizer.hpp"
#include "optim/sgd.hpp"
