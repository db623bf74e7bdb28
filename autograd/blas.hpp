#pragma once

namespace tg {

// Threads tapegrad computes with. set_num_threads(n) gives the pool of autograd/parallel.hpp
// the caller and n - 1 workers, which split large GEMMs (by rows or columns of the result) and
// the optimizers' updates; OpenBLAS runs single-threaded inside each piece. Before the first
// call OpenBLAS threads the GEMMs by itself, with as many threads as it chose (num_threads()
// reports those). With the same thread count results repeat bit for bit; different counts may
// differ in the last bits (whether they do depends on OpenBLAS's kernel).
void set_num_threads(int n);
int num_threads();
// The kernel family OpenBLAS chose for this CPU ("SkylakeX", "Haswell"...). "Prescott" on an
// AVX-512 machine means OpenBLAS did not know the CPU and fell back to slow SSE3 kernels:
// set OPENBLAS_CORETYPE (e.g. SkylakeX) before the program starts.
const char* blas_core();

}  // namespace tg
