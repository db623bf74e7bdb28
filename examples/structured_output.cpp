// Structured output prediction on MNIST with discrete latent units (Jang et al. 2017, 4.1).
// The model, training and evaluation are in structured_output_lib; this is the command line.
//
//     scripts/fetch-mnist && build/examples/structured_output --epochs 10
//     build/examples/structured_output --help
#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <iostream>
#include <new>
#include <optional>

#include "examples/structured_output_lib.hpp"

namespace {

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
    std::optional<tg::structured::Config> config;
    try {
        tg::structured::ParsedArgs args = tg::structured::parse_command_line(argc, argv, std::cout, std::cerr);
        if (!args.config) return args.exit_status;
        config = std::move(args.config);
        config->progress_tty = ::isatty(STDERR_FILENO);
        config->stop_requested = &stop_requested;
        std::signal(SIGINT, on_signal);
        std::signal(SIGTERM, on_signal);
        return tg::structured::run(*config, std::cout, std::cerr);
    } catch (const std::bad_alloc&) {
        // The loaders name what they allocate; elsewhere the flags tell how big the run is.
        std::cout.flush();
        std::cerr << "structured_output: out of memory"
                  << (config ? " (the flags " + tg::structured::describe_memory(*config) + ")" : std::string()) << "\n";
        return 2;
    } catch (const std::exception& e) {
        std::cout.flush();
        std::cerr << "structured_output: " << e.what() << "\n";
        return 2;
    } catch (...) {
        std::cerr << "structured_output: unknown error\n";
        return 2;
    }
}
