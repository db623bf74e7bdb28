#include "autograd/kernels/parallel.hpp"
#include "autograd/threads.hpp"

#include <cblas.h>  // OpenBLAS's own functions; kept apart from xtensor-blas (blas.cpp): they clash

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace tg::kernels {

namespace {

inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

// Waits for done() for about `us` microseconds, false if it stayed false. The first few
// microseconds spin; then each turn yields the core: when another program wants it (a busy
// machine) a spinning thread would take it from the thread it waits for.
template <class Done>
bool spin_for(Done done, int us) {
    using clock = std::chrono::steady_clock;
    const auto start = clock::now();
    for (unsigned k = 1; !done(); ++k) {
        if (k % 64 != 0) {
            cpu_relax();
            continue;
        }
        const auto waited = clock::now() - start;
        if (waited > std::chrono::microseconds(us)) return false;
        if (waited > std::chrono::microseconds(5)) std::this_thread::yield();
    }
    return true;
}

thread_local bool inside_part_flag = false;

// Parts are claimed, not assigned: whoever is free takes the next one, so a worker that the OS
// has not scheduled yet (on a busy machine) delays nothing; the caller runs the parts itself.
// Which thread runs a part never changes its result, so results stay deterministic.
class Pool {
public:
    ~Pool() { resize(1); }

    std::size_t threads() const { return threads_.load(); }
    std::size_t sleepers() const { return static_cast<std::size_t>(sleepers_.load()); }

    void resize(std::size_t n) {
        if (inside_part_flag) throw std::logic_error("set_num_threads: called from inside a parallel region");
        std::lock_guard<std::mutex> busy(submit_);
        if (n == threads()) return;
        {
            std::lock_guard<std::mutex> lock(mutex_);
            stop_.store(true);
            state_.store(next_generation() << 32);
        }
        cv_.notify_all();
        for (std::thread& t : workers_) t.join();
        workers_.clear();
        stop_.store(false);
        const std::uint64_t seen = generation(state_.load());
        try {
            for (std::size_t i = 1; i < n; ++i) workers_.emplace_back([this, seen] { work(seen); });
        } catch (...) {  // the system refused a thread: keep those we have
            threads_.store(workers_.size() + 1);
            throw;
        }
        threads_.store(n);
    }

    void run(std::size_t parts, void (*fn)(void*, std::size_t), void* ctx) {
        std::unique_lock<std::mutex> busy(submit_, std::try_to_lock);
        if (parts <= 1 || parts > 0xFFFF || inside_part_flag || !busy.owns_lock() || workers_.empty()) {
            if (busy.owns_lock()) busy.unlock();
            for (std::size_t p = 0; p < parts; ++p) fn(ctx, p);
            return;
        }
        fn_ = fn;
        ctx_ = ctx;
        error_ = nullptr;
        done_.store(0);
        const std::uint64_t gen = next_generation();
        state_.store(gen << 32 | parts << 16);  // seq_cst: publishes fn_ and ctx_, pairs with sleepers_
        if (sleepers_.load() > 0) {
            std::lock_guard<std::mutex> lock(mutex_);
            cv_.notify_all();
        }
        inside_part_flag = true;
        run_parts_of(gen);
        inside_part_flag = false;
        // The parts left run on workers: wait for them (yielding the core, see spin_for).
        const auto all_done = [&] { return done_.load(std::memory_order_acquire) == parts; };
        while (!spin_for(all_done, 1000)) {
        }
        if (error_) std::rethrow_exception(error_);
    }

private:
    static std::uint64_t generation(std::uint64_t state) { return state >> 32; }
    std::uint64_t next_generation() const { return (generation(state_.load()) + 1) & 0xFFFFFFFF; }

    // Runs parts of region `gen` while there are unclaimed ones.
    void run_parts_of(std::uint64_t gen) {
        std::uint64_t s = state_.load(std::memory_order_acquire);
        while (generation(s) == gen && (s & 0xFFFF) < (s >> 16 & 0xFFFF)) {
            if (!state_.compare_exchange_weak(s, s + 1, std::memory_order_acq_rel, std::memory_order_acquire))
                continue;
            try {
                fn_(ctx_, s & 0xFFFF);
            } catch (...) {
                std::lock_guard<std::mutex> lock(mutex_);
                if (!error_) error_ = std::current_exception();
            }
            done_.fetch_add(1, std::memory_order_acq_rel);
            s = state_.load(std::memory_order_acquire);
        }
    }

    void work(std::uint64_t seen) {
        inside_part_flag = true;  // a worker's part never fans out again
        // seq_cst, like run()'s store of state_ and load of sleepers_: either the caller sees this
        // worker among the sleepers, or the worker sees the new region before it sleeps.
        const auto new_region = [&] { return generation(state_.load()) != seen; };
        for (;;) {
            // A training step starts a region every ~0.1 ms: spin that long before sleeping.
            if (!spin_for(new_region, 200)) {
                std::unique_lock<std::mutex> lock(mutex_);
                sleepers_.fetch_add(1);
                cv_.wait(lock, new_region);
                sleepers_.fetch_sub(1);
            }
            // In this order: resize() sets stop_ before it starts a generation.
            seen = generation(state_.load());
            if (stop_) return;
            run_parts_of(seen);
        }
    }

    std::vector<std::thread> workers_;
    std::atomic<std::size_t> threads_{1};
    std::mutex submit_;  // one region at a time; held by the caller while it runs
    std::mutex mutex_;   // sleeping workers, error_
    std::condition_variable cv_;
    // The current region: generation (high 32 bits), number of parts (16), next unclaimed
    // part (low 16). One word, so that a claim checks the region is still current.
    std::atomic<std::uint64_t> state_{0};
    std::atomic<std::size_t> done_{0};  // parts finished
    std::atomic<int> sleepers_{0};
    std::atomic<bool> stop_{false};
    void (*fn_)(void*, std::size_t) = nullptr;
    void* ctx_ = nullptr;
    std::exception_ptr error_;
};

Pool& pool() {
    static Pool p;
    return p;
}

}  // namespace

std::size_t pool_threads() { return pool().threads(); }
std::size_t pool_sleepers() { return pool().sleepers(); }
void set_pool_threads(std::size_t n) { pool().resize(n < 1 ? 1 : n); }
void run_parts(std::size_t parts, void (*fn)(void*, std::size_t), void* ctx) { pool().run(parts, fn, ctx); }
bool inside_part() { return inside_part_flag; }

namespace {
std::mutex stripes[64];
}  // namespace
StripedLocks::StripedLocks(std::uint64_t mask) : mask_(mask) {
    for (unsigned i = 0; i < 64; ++i)
        if (mask_ >> i & 1) stripes[i].lock();
}
StripedLocks::~StripedLocks() {
    for (unsigned i = 0; i < 64; ++i)
        if (mask_ >> i & 1) stripes[i].unlock();
}

}  // namespace tg::detail

namespace tg {

void set_num_threads(int n) {
    if (n < 1) throw std::invalid_argument("set_num_threads: need at least 1 thread, got " + std::to_string(n));
    kernels::set_pool_threads(static_cast<std::size_t>(n));
    openblas_set_num_threads(1);  // parallel_for splits the GEMMs; OpenBLAS runs inside each part
}
// Before any set_num_threads, OpenBLAS's own default (its pool, sized by OPENBLAS_NUM_THREADS or
// the cores) does the threading.
int num_threads() {
    return kernels::pool_threads() > 1 ? static_cast<int>(kernels::pool_threads()) : openblas_get_num_threads();
}
const char* blas_core() { return openblas_get_corename(); }

void parallel_range(std::size_t n, std::size_t grain, const std::function<void(std::size_t, std::size_t)>& f) {
    kernels::parallel_range(n, grain, f);
}

void parallel_tasks(std::size_t count, const std::function<void(std::size_t)>& f) {
    const std::size_t parts = std::min(count, kernels::pool_threads());
    if (parts == 0) return;
    kernels::parallel_for(parts, [&](std::size_t p) {
        std::size_t begin, end;
        kernels::part_range(count, parts, p, 1, begin, end);
        for (std::size_t i = begin; i < end; ++i) f(i);
    });
}

}  // namespace tg
