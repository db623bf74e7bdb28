// How many threads tapegrad computes with, and which BLAS kernels run.
#pragma once

#include <cstddef>
#include <functional>

namespace tg {

// set_num_threads(n) splits large GEMMs (by rows or columns of the result) and the optimizers'
// updates into n parts run by tapegrad's pool (the calling thread and n - 1 workers,
// autograd/kernels/parallel.hpp), with OpenBLAS single-threaded inside each part. A second
// thread calling in while the pool is busy runs its parts itself, one after the other. Before
// the first call OpenBLAS threads the GEMMs by itself, with as many threads as it chose
// (num_threads() reports those). With the same thread count results repeat bit for bit;
// different counts may differ in the last bits (whether they do depends on OpenBLAS's kernel).
void set_num_threads(int n);
int num_threads();

// f(begin, end) over [0, n) cut into one piece per thread (borders on 16-float cache lines, so
// no two threads write one line), or whole when n < grain, where waking a worker costs more
// than it saves. The optimizers' elementwise updates use it.
void parallel_range(std::size_t n, std::size_t grain, const std::function<void(std::size_t, std::size_t)>& f);

// f(i) for i < count in contiguous blocks, one per thread: independent work (an evaluation's
// chunks), each f on its thread alone; f writes only its own results, draws from a generator
// seeded from i, and sets its own NoGradGuard (grad mode is per thread). Rethrows f's first throw.
void parallel_tasks(std::size_t count, const std::function<void(std::size_t)>& f);

// The kernel family OpenBLAS chose for this CPU ("SkylakeX", "Haswell"...). "Prescott" on an
// AVX-512 machine means OpenBLAS did not know the CPU and fell back to slow SSE3 kernels (a
// quarter of the speed): set OPENBLAS_CORETYPE=SkylakeX before the program starts. The first
// GEMM warns once on stderr when that happens.
const char* blas_core();

}  // namespace tg
