// Thread-safety driver for the CPU coder's worker pool and parallel coding, meant to be built with
// ThreadSanitizer (tests/test_rans_robustness.py does):
//   g++ -std=c++17 -O1 -g -fsanitize=thread -I entropy/csrc entropy/csrc/pool_stress.cpp -o pool_stress
//   TSAN_OPTIONS=die_after_fork=0 ./pool_stress
// It covers what the fuzz driver does not: back-to-back calls (workers still polling), calls after
// the workers have parked, several callers at once (one gets the pool, the others their own
// threads), whole payloads coded from concurrent callers, and a pool in a forked child.
// Prints "ok" and exits 0, or names the failed check and exits 1.
#include <sys/wait.h>

#include <cstdio>

#include "rans_cpu.hpp"

using namespace ncodec::rans;

namespace {

// Every task runs exactly once.
bool tasks_once(unsigned threads, size_t n) {
    std::vector<int> hit(n, 0);
    parallel_for(n, threads, [&](size_t i, unsigned) { hit[i] += 1; });
    for (int h : hit)
        if (h != 1) return false;
    return true;
}

// Two tables (one wide, one narrow); symbols include escapes.
Prepared two_tables() {
    const int64_t W = 10;  // cdf row length: entries + 1
    std::vector<int32_t> cdf = {0, 2000, 9000, 30000, 50000, 60000, 64000, 65000, 65535, 65536,
                                0, 40000, 65535, 65536, 65536, 65536, 65536, 65536, 65536, 65536};
    std::vector<int32_t> sizes = {9, 3}, offsets = {-4, 0};
    Prepared p;
    const std::string e = prepare_tables(cdf.data(), 2, W, sizes.data(), offsets.data(), p);
    if (!e.empty()) {
        std::printf("bad tables: %s\n", e.c_str());
        std::exit(2);
    }
    return p;
}

// Encodes and decodes n symbols on `threads` threads, AVX2 rows where the CPU has them.
bool round_trip(const Prepared& P, const PackedTables& S, size_t n, unsigned threads, uint32_t seed) {
    std::vector<int32_t> sym(n), idx(n), out(n);
    uint32_t s = seed | 1;
    for (size_t j = 0; j < n; ++j) {
        s ^= s << 13, s ^= s >> 17, s ^= s << 5;
        idx[j] = (int32_t)(s & 1);
        sym[j] = (int32_t)((s >> 8) % 11) - 5 + (s % 97 == 0 ? 1000 : 0);
    }
    std::vector<uint8_t> payload;
    if (encode_payload(P, sym.data(), idx.data(), n, 8, 512, threads, payload, true) != kOk) return false;
    const DecError e = decode_payload(P, payload.data(), payload.size(), idx.data(), n, out.data(), threads, &S);
    return e.status == kOk && out == sym;
}

}  // namespace

int main() {
    const Prepared P = two_tables();
    PackedTables S;
    build_packed_tables(P, S);
    auto fail = [](const char* what) {
        std::printf("failed: %s\n", what);
        return 1;
    };
    for (int it = 0; it < 2000; ++it)  // back to back: the workers are still polling
        if (!tasks_once(1 + it % 5, 1 + it % 37)) return fail("back-to-back tasks");
    for (int it = 0; it < 40; ++it) {  // past the polling window: the workers have parked
        std::this_thread::sleep_for(std::chrono::microseconds(3 * WorkerPool::kSpinUs));
        if (!tasks_once(3, 9)) return fail("tasks after parking");
    }
    std::atomic<int> bad{0};
    std::vector<std::thread> callers;
    for (unsigned c = 0; c < 4; ++c)
        callers.emplace_back([&, c] {
            for (int it = 0; it < 200; ++it) bad += !tasks_once(2 + c % 3, 5 + it % 50);
            for (int it = 0; it < 20; ++it) bad += !round_trip(P, S, 3000 + 700 * c + it, 2 + c % 2, 17 * c + it);
        });
    for (auto& t : callers) t.join();
    if (bad) return fail("concurrent callers");
    if (!round_trip(P, S, 5000, 3, 99)) return fail("round trip");
    const pid_t pid = fork();
    if (pid == 0) {
        bool ok = true;
        for (int it = 0; it < 50; ++it) ok &= tasks_once(3, 17) && round_trip(P, S, 2000, 2, it);
        _exit(ok ? 0 : 1);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) return fail("pool in a forked child");
    std::printf("ok\n");
    return 0;
}
