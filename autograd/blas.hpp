#pragma once

namespace tg {

// Threads of OpenBLAS's pool. Results with 1 thread are reproducible bit for bit; 2 threads
// differ from 1 in the last bits (a different summation order), but are repeatable.
void set_num_threads(int n);
int num_threads();
// The kernel family OpenBLAS chose for this CPU ("SkylakeX", "Haswell"...). "Prescott" on an
// AVX-512 machine means OpenBLAS did not know the CPU and fell back to slow SSE3 kernels:
// set OPENBLAS_CORETYPE (e.g. SkylakeX) before the program starts.
const char* blas_core();

}  // namespace tg
