#pragma once

namespace tg {

// Threads tapegrad computes with (autograd/parallel.hpp): the caller and n - 1 workers, which
// split large GEMMs and the optimizers' loops; OpenBLAS itself is kept single-threaded.
// Until it is called, OpenBLAS threads the GEMMs by itself, as many threads as it chose (num_threads()
// reports them). Results with a given count are repeatable bit for bit.
void set_num_threads(int n);
int num_threads();
// The kernel family OpenBLAS chose for this CPU ("SkylakeX", "Haswell"...). "Prescott" on an
// AVX-512 machine means OpenBLAS did not know the CPU and fell back to slow SSE3 kernels:
// set OPENBLAS_CORETYPE (e.g. SkylakeX) before the program starts.
const char* blas_core();

}  // namespace tg
