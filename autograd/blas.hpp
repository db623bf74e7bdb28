#pragma once

namespace tg {

// Threads of OpenBLAS's pool. Results with 1 thread are reproducible bit for bit; 2 threads
// differ from 1 in the last bits (a different summation order), but are repeatable.
void set_num_threads(int n);
int num_threads();

}  // namespace tg
