#pragma once

namespace tg {

// Threads tapegrad computes with. set_num_threads(n) gives the pool of autograd/kernels/parallel.hpp
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

// OpenBLAS 0.3.21 does not know recent Intel CPUs (Sapphire and Emerald Rapids, family 6 model
// 143/207) and falls back to its SSE3 "Prescott" kernels: SGEMM at ~30 GFLOP/s instead of ~140
// with its AVX-512 ones. The kernels are chosen when the library loads, from OPENBLAS_CORETYPE,
// so this sets it to SkylakeX and starts the program again (execv of /proc/self/exe with argv),
// once: call it first thing in main(). It does nothing when the variable is set, the kernels are
// not Prescott or the CPU lacks AVX-512, and returns (slow kernels) if the restart fails.
void use_avx512_blas_kernels(char** argv);

}  // namespace tg
