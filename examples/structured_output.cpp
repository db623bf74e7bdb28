// Structured output prediction on MNIST with discrete latent units (Jang et al. 2017, 4.1).
// The model, training and evaluation are in structured_output_lib; this is the command line.
//
//     scripts/fetch-mnist && build/examples/structured_output --epochs 10
//     build/examples/structured_output --help
#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <iostream>

#include "examples/structured_output_lib.hpp"

extern "C" char* openblas_get_corename(void);

namespace {

// OpenBLAS 0.3.21 does not know recent Intel CPUs (Sapphire and Emerald Rapids, family 6
// model 143/207) and falls back to its SSE3 "Prescott" kernels: SGEMM at ~30 GFLOP/s instead
// of ~140 with its AVX-512 ones. The kernels are chosen when the library loads, from
// OPENBLAS_CORETYPE, so the program sets it and starts itself again, once.
void use_avx512_blas_kernels(char** argv) {
    if (std::getenv("OPENBLAS_CORETYPE") || std::strcmp(openblas_get_corename(), "Prescott") != 0 ||
        !__builtin_cpu_supports("avx512f") || !__builtin_cpu_supports("avx512bw") ||
        !__builtin_cpu_supports("avx512dq") || !__builtin_cpu_supports("avx512vl"))
        return;
    setenv("OPENBLAS_CORETYPE", "SkylakeX", 1);
    execv("/proc/self/exe", argv);  // returns only on failure: then carry on with the slow kernels
}

volatile std::sig_atomic_t stop_requested = 0;

// The first signal asks the training loop to checkpoint and stop; a second one ends at once.
extern "C" void on_signal(int sig) {
    if (stop_requested) {
        std::signal(sig, SIG_DFL);
        std::raise(sig);
    }
    stop_requested = 1;
}

}  // namespace

int main(int argc, char** argv) {
    use_avx512_blas_kernels(argv);
    try {
        tg::structured::ParsedArgs args = tg::structured::parse_command_line(argc, argv, std::cout, std::cerr);
        if (!args.config) return args.exit_status;
        tg::structured::Config& config = *args.config;
        config.progress_tty = ::isatty(STDERR_FILENO);
        config.stop_requested = &stop_requested;
        std::signal(SIGINT, on_signal);
        std::signal(SIGTERM, on_signal);
        return tg::structured::run(config, std::cout, std::cerr);
    } catch (const std::exception& e) {
        std::cout.flush();
        std::cerr << "structured_output: " << e.what() << "\n";
        return 2;
    } catch (...) {
        std::cerr << "structured_output: unknown error\n";
        return 2;
    }
}
