// ncodec rANS: the CPU payload coder (segments in parallel, lanes of a segment in lock-step).
// No Python here: rans.cpp binds it, fuzz_driver.cpp drives it under sanitizers.
#pragma once

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstring>
#include <exception>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <type_traits>
#include <vector>

#include "rans.hpp"

#if !defined(_WIN32)
#include <unistd.h>
#endif
#if defined(__x86_64__) || defined(_M_X64) || defined(__i386__)
#include <immintrin.h>
#define NCODEC_CPU_RELAX() _mm_pause()
#else
#define NCODEC_CPU_RELAX() std::this_thread::yield()
#endif

#if defined(__BYTE_ORDER__) && (__BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__)
#error "ncodec's rANS coder assumes a little-endian host"
#endif

#if defined(__GNUC__) || defined(__clang__)
#define NCODEC_UNLIKELY(x) __builtin_expect(!!(x), 0)
#else
#define NCODEC_UNLIKELY(x) (x)
#endif

#include "rans_simd.hpp"  // uses NCODEC_UNLIKELY

namespace ncodec {
namespace rans {

#ifndef NCODEC_TWO_PHASE
#define NCODEC_TWO_PHASE 1  // 1: bucket lookups of all lanes of a row first (more loads in flight)
#endif
#ifndef NCODEC_LANE_PAD
#define NCODEC_LANE_PAD 72  // words between lanes' encode buffers: avoids 4K aliasing of their stores
#endif

enum ExtraStatus : int { kBadIndex = 3, kBadSymbol = 4, kNoMemory = 5 };

// Polls ready() for up to `us` microseconds; true as soon as it holds.
template <class F>
inline bool spin_until(F&& ready, int us) {
    const auto until = std::chrono::steady_clock::now() + std::chrono::microseconds(us);
    for (;;) {
        for (int i = 0; i < 64; ++i) {
            if (ready()) return true;
            NCODEC_CPU_RELAX();
        }
        if (std::chrono::steady_clock::now() >= until) return ready();
    }
}

// Process-wide parked worker threads for parallel_for: starting threads on every call costs tens of
// microseconds each, as much as coding a segment, and would cap the speed-up of small payloads.
// Waking a parked thread costs tens of microseconds too (in a VM it is an interrupt to an idle
// vCPU), so a worker polls for the next job for kSpinUs before it parks, and the caller polls for
// the workers' end before it sleeps: back-to-back calls (segments, chunks, frames) then hand work
// over without a wake-up. With more threads than cores nobody polls. One parallel_for uses the
// pool at a time (a concurrent one starts its own threads); after a fork() the child gets a fresh
// pool (the parent's threads do not exist there).
class WorkerPool {
public:
    static constexpr int kSpinUs = 50;

    static WorkerPool& get() {
        static std::mutex m;
        static WorkerPool* pool = nullptr;
        std::lock_guard<std::mutex> lk(m);
        const long pid = current_pid();
        if (!pool || pool->pid_ != pid) pool = new WorkerPool(pid);  // never destroyed: threads are detached
        return *pool;
    }

    // Runs work(w) for w in [1, helpers] on pool threads and work(0) on the caller; returns when
    // all are done, or false (nothing run) if the pool is busy or cannot start its threads.
    bool run(unsigned helpers, const std::function<void(unsigned)>& work) {
        std::unique_lock<std::mutex> busy(busy_, std::try_to_lock);
        if (!busy.owns_lock()) return false;
        {
            std::lock_guard<std::mutex> lk(m_);
            try {
                while (n_threads_ < helpers) {
                    std::thread(&WorkerPool::loop, this, n_threads_ + 1, gen_.load()).detach();
                    ++n_threads_;
                }
            } catch (const std::exception&) {
                if (n_threads_ < helpers) return false;
            }
            job_ = &work;
            active_ = helpers;
            pending_ = helpers;
            // Polling only pays while every thread has a core: oversubscribed, it takes time from
            // the threads still working.
            spin_us_.store(helpers < std::max(1u, std::thread::hardware_concurrency()) ? kSpinUs : 0);
            gen_.fetch_add(1);
        }
        cv_.notify_all();
        work(0);
        const int spin = spin_us_.load();
        if (!spin_until([this] { return pending_.load(std::memory_order_acquire) == 0; }, spin)) {
            std::unique_lock<std::mutex> lk(m_);
            done_.wait(lk, [this] { return pending_.load() == 0; });
        }
        std::lock_guard<std::mutex> lk(m_);
        job_ = nullptr;
        return true;
    }

private:
    explicit WorkerPool(long pid) : pid_(pid) {}

    static long current_pid() {
#if defined(_WIN32)
        return 0;
#else
        return (long)getpid();
#endif
    }

    void loop(unsigned id, uint64_t seen) {
        for (;;) {
            // A new generation (gen_ changes under m_, so the checks below see its job).
            if (!spin_until([&] { return gen_.load(std::memory_order_acquire) != seen; }, spin_us_.load())) {
                std::unique_lock<std::mutex> lk(m_);
                cv_.wait(lk, [&] { return gen_.load() != seen; });
            }
            const std::function<void(unsigned)>* job;
            {
                std::lock_guard<std::mutex> lk(m_);
                seen = gen_.load();
                if (id > active_) continue;
                job = job_;
            }
            (*job)(id);
            std::lock_guard<std::mutex> lk(m_);
            if (pending_.fetch_sub(1) == 1) done_.notify_one();
        }
    }

    const long pid_;
    std::mutex busy_, m_;
    std::condition_variable cv_, done_;
    unsigned n_threads_ = 0, active_ = 0;
    std::atomic<unsigned> pending_{0};
    std::atomic<uint64_t> gen_{0};
    std::atomic<int> spin_us_{kSpinUs};  // polling time of the last call (0: oversubscribed)
    const std::function<void(unsigned)>* job_ = nullptr;
};

// Runs f(task, worker) for task in [0, n_tasks) on up to `threads` threads (0 = all cores). f must
// not throw.
template <class F>
inline void parallel_for(size_t n_tasks, unsigned threads, F&& f) {
    if (threads == 0) threads = std::max(1u, std::thread::hardware_concurrency());
    if (threads > n_tasks) threads = (unsigned)n_tasks;
    if (threads <= 1) {
        for (size_t i = 0; i < n_tasks; ++i) f(i, 0u);
        return;
    }
    std::atomic<size_t> next{0};
    auto work = [&](unsigned w) {
        for (;;) {
            size_t i = next.fetch_add(1, std::memory_order_relaxed);
            if (i >= n_tasks) break;
            f(i, w);
        }
    };
    const std::function<void(unsigned)> job = work;
    if (WorkerPool::get().run(threads - 1, job)) return;
    std::vector<std::thread> pool;  // the pool is busy (a concurrent call): threads of our own
    pool.reserve(threads - 1);
    for (unsigned w = 1; w < threads; ++w) pool.emplace_back(work, w);
    work(0);
    for (auto& th : pool) th.join();
}

// Keeps a thread's reusable scratch from holding on to the memory of an unusually large call.
template <class V>
inline void trim(V& v, size_t max_bytes = size_t(64) << 20) {
    if (v.capacity() * sizeof(typename V::value_type) > max_bytes) V().swap(v);
}

inline unsigned worker_count(size_t n_tasks, unsigned threads) {
    if (threads == 0) threads = std::max(1u, std::thread::hardware_concurrency());
    return (unsigned)std::max<size_t>(1, std::min<size_t>(threads, n_tasks));
}

// ---------------------------------------------------------------------------------------------
// Encoder
// ---------------------------------------------------------------------------------------------

struct EncScratch {
    std::vector<uint32_t> entry;    // per symbol: enc entry (kEscapeFlag for escapes)
    std::vector<uint32_t> lane_esc, lane_end;
    std::vector<uint16_t> words;
    std::vector<uint32_t> x;
    std::vector<uint16_t*> p;
    std::vector<int32_t> po;  // word offsets of the lanes (AVX2 rows)
};

// Encodes one segment into `body`. Returns kOk, kBadIndex or kBadSymbol.
inline int encode_segment(const Prepared& P, const int32_t* sym, const int32_t* idx, size_t n, uint32_t lanes,
                          EncScratch& sc, std::vector<uint8_t>& body, bool simd = false) {
    const TableInfo* info = P.info.data();
    const EncSym* enc = P.enc.data();
    const uint8_t* costs = P.cost.data();
    const uint32_t T = P.T;
    sc.entry.resize(n);
    uint32_t* E = sc.entry.data();
    uint64_t cost = 0;
    uint32_t bad_idx = 0, bad_sym = 0, n_esc = 0;
    size_t j0 = 0;
#if NCODEC_HAVE_AVX2_PATH
    if (simd && cpu_has_avx2()) j0 = encode_entries_avx2(P, sym, idx, n, E, cost, bad_idx, bad_sym, n_esc);
#else
    (void)simd;
#endif
    for (size_t j = j0; j < n; ++j) {  // branch-free: entry, cost, escape count, validity
        uint32_t t = (uint32_t)idx[j];
        int32_t v = sym[j];
        bad_idx |= t >= T;
        bad_sym |= (v > (int32_t)kMaxSymbolMagnitude) | (v < -(int32_t)kMaxSymbolMagnitude);
        t = t < T ? t : 0;
        const TableInfo& ti = info[t];
        uint32_t i = (uint32_t)v - (uint32_t)ti.offset;  // |v|, |offset| <= 2^30: no wrap into range
        uint32_t in = i < (uint32_t)ti.n - 1u;
        uint32_t e = in ? ti.base + i : ((ti.base + ti.n - 1u) | kEscapeFlag);
        E[j] = e;
        n_esc += 1u - in;
        cost += costs[e & ~kEscapeFlag];
    }
    if (bad_idx) return kBadIndex;
    if (bad_sym) return kBadSymbol;
    uint32_t k = lanes ? lanes : auto_lanes(cost);
    if (k > n) k = (uint32_t)n;

    // Lane l's words go backwards into [begin_l, end_l); one slack word precedes each region
    // because enc_put always writes p[-1].
    sc.lane_esc.assign(k, 0);
    if (n_esc)
        for (size_t j = 0; j < n; ++j) sc.lane_esc[j % k] += E[j] >> 31;
    sc.lane_end.resize(k);
    size_t total = 0;
    for (uint32_t l = 0; l < k; ++l) {
        size_t syms = (n - l + k - 1) / k;
        total += 1 + syms + (size_t)(kMaxOpsPerSymbol - 1) * sc.lane_esc[l] + NCODEC_LANE_PAD;
        sc.lane_end[l] = (uint32_t)total;
    }
    sc.words.resize(total);
    sc.x.assign(k, kRansL);
    sc.p.resize(k);
    uint16_t* W = sc.words.data();
    for (uint32_t l = 0; l < k; ++l) sc.p[l] = W + sc.lane_end[l];
    uint32_t* X = sc.x.data();
    uint16_t** Pp = sc.p.data();

    const size_t rows = n / k, rem = n % k;
    auto put = [&](size_t j, uint32_t l) {
        uint32_t e = E[j];
        if (NCODEC_UNLIKELY((e & kEscapeFlag) != 0)) {
            enc_escaped(X[l], Pp[l], sym[j], info[idx[j]], enc);
        } else {
            enc_put(X[l], Pp[l], enc[e]);
        }
    };
    for (uint32_t l = 0; l < rem; ++l) put(rows * k + l, l);
    size_t rows_left = rows;
#if NCODEC_HAVE_AVX2_PATH
    if (simd && k % 8 == 0 && rows && total < (size_t(1) << 31) && cpu_has_avx2()) {
        sc.po.resize(k);
        for (uint32_t l = 0; l < k; ++l) sc.po[l] = (int32_t)(Pp[l] - W);
        encode_rows_avx2(P, k, rows, E, sym, idx, X, sc.po.data(), W);
        for (uint32_t l = 0; l < k; ++l) Pp[l] = W + sc.po[l];
        rows_left = 0;
    }
#endif
    for (size_t r = rows_left; r-- > 0;) {
        const size_t base = r * k;
        for (uint32_t l = 0; l < k; ++l) put(base + l, l);
    }

    // Body: varint K, K u32 LE states, K varint word counts, each lane's words.
    size_t n_words = 0;
    for (uint32_t l = 0; l < k; ++l) n_words += (size_t)((W + sc.lane_end[l]) - Pp[l]);
    body.resize(5 + 4 * (size_t)k + 5 * (size_t)k + 2 * n_words);
    uint8_t* o = body.data();
    o += write_varint(o, k);
    for (uint32_t l = 0; l < k; ++l) {
        uint32_t x = X[l];
        std::memcpy(o, &x, 4);
        o += 4;
    }
    for (uint32_t l = 0; l < k; ++l) o += write_varint(o, (uint32_t)((W + sc.lane_end[l]) - Pp[l]));
    for (uint32_t l = 0; l < k; ++l) {
        size_t c = (size_t)((W + sc.lane_end[l]) - Pp[l]);
        std::memcpy(o, Pp[l], 2 * c);
        o += 2 * c;
    }
    body.resize((size_t)(o - body.data()));
    return kOk;
}

// Encodes a whole payload. Returns kOk, kBadIndex or kBadSymbol (or kNoMemory).
inline int encode_payload(const Prepared& P, const int32_t* sym, const int32_t* idx, size_t n, uint32_t lanes,
                          uint64_t seg_n, unsigned threads, std::vector<uint8_t>& out, bool simd = false) {
    const size_t n_seg = n ? (size_t)((n + seg_n - 1) / seg_n) : 0;
    std::vector<std::vector<uint8_t>> bodies(n_seg);
    std::vector<int> status(n_seg, kOk);
    const unsigned workers = worker_count(n_seg, threads);

    parallel_for(n_seg, workers, [&](size_t s, unsigned) {
        size_t s0 = (size_t)(s * seg_n);
        size_t cnt = (size_t)std::min<uint64_t>(seg_n, n - s0);
        static thread_local EncScratch sc;  // each thread's, reused across calls (pool threads persist)
        try {
            status[s] = encode_segment(P, sym + s0, idx + s0, cnt, lanes, sc, bodies[s], simd);
        } catch (const std::exception&) {
            status[s] = kNoMemory;
        }
        trim(sc.entry);
        trim(sc.words);
    });
    for (int st : status)
        if (st == kBadIndex) return st;
    for (int st : status)
        if (st != kOk) return st;
    size_t total = varint_size((uint32_t)n) + varint_size((uint32_t)seg_n);
    for (auto& b : bodies) total += varint_size((uint32_t)b.size()) + b.size();
    out.resize(total);
    uint8_t* o = out.data();
    o += write_varint(o, (uint32_t)n);
    o += write_varint(o, (uint32_t)seg_n);
    for (auto& b : bodies) o += write_varint(o, (uint32_t)b.size());
    for (auto& b : bodies) {
        if (!b.empty()) std::memcpy(o, b.data(), b.size());
        o += b.size();
    }
    return kOk;
}

// ---------------------------------------------------------------------------------------------
// Decoder
// ---------------------------------------------------------------------------------------------

constexpr size_t kCheckRows = 16;  // lanes' word pointers are checked every this many rows
constexpr size_t kMaxGroup = 8;    // segments of one decoding task (decoded in lock-step)
constexpr size_t kWordPad = kMaxOpsPerSymbol * kCheckRows + 16;

struct DecScratch {
    std::vector<uint16_t> words;
    std::vector<uint32_t> x, s, v;
    std::vector<int32_t> po;  // word offsets of the lanes (AVX2 rows)
    std::vector<const uint16_t*> p, end;
};

inline DecError bad_index_error() { return dec_fail(kBadIndex, "table index out of range"); }

// Whether every table index is in range (branch-free).
inline bool indexes_valid(const Prepared& P, const int32_t* idx, size_t n) {
#if NCODEC_HAVE_AVX2_PATH
    if (cpu_has_avx2()) return n == 0 || max_u32_avx2(idx, n) < P.T;
#endif
    uint32_t bad = 0;
    for (size_t j = 0; j < n; ++j) bad |= (uint32_t)idx[j] >= P.T;
    return !bad;
}

// One segment being decoded: its lanes' states and word pointers live in the scratch.
struct SegRun {
    DecScratch* sc = nullptr;
    const int32_t* idx = nullptr;
    int32_t* out = nullptr;
    size_t n = 0, rows = 0, rem = 0, r = 0;  // symbols, full rows, lanes of the last partial row, rows done
    uint32_t k = 0;
    bool ok = true;        // no escaped value out of range so far
    bool overrun = false;  // a lane read past its words
    bool simd = false;     // rows by decode_block_avx2 (words addressed by sc->po offsets)
    bool bad_index = false;        // the AVX2 rows met a table index out of range
    bool indexes_checked = false;  // every index of the segment was checked before decoding
};

// Parses a segment body's lane table (bounds-checked: the input is untrusted) and sets up its lanes.
inline DecError segment_begin(const uint8_t* body, size_t len, const int32_t* idx, int32_t* out, size_t n,
                              DecScratch& sc, const PackedTables* simd, SegRun& run) {
    size_t pos = 0;
    uint32_t k;
    if (const int code = seg_head(body, len, n, k, pos)) return seg_error(code);
    sc.x.resize(k);
    for (uint32_t l = 0; l < k; ++l) std::memcpy(&sc.x[l], body + pos + 4 * l, 4);
    pos += 4 * (size_t)k;
    sc.p.resize(k);
    sc.end.resize(k);
    std::vector<uint32_t> counts(k);
    uint64_t total = 0;
    for (uint32_t l = 0; l < k; ++l) {
        if (const int st = read_varint(body, len, pos, counts[l])) return varint_fail(st);
        total += counts[l];
    }
    if (pos + 2 * total != len) return seg_error(kSegCountMismatch);
    for (uint32_t l = 0; l < k; ++l)
        if (sc.x[l] < kRansL) return seg_error(kSegBadState);
    sc.words.resize((size_t)total + kWordPad);
    uint16_t* W = sc.words.data();
    if (total) std::memcpy(W, body + pos, 2 * (size_t)total);
    std::memset(W + total, 0, kWordPad * sizeof(uint16_t));
    size_t off = 0;
    for (uint32_t l = 0; l < k; ++l) {
        sc.p[l] = W + off;
        off += counts[l];
        sc.end[l] = W + off;
    }
    sc.s.resize(k);
    sc.v.resize(k);
    run = SegRun{};
    run.sc = &sc;
    run.idx = idx;
    run.out = out;
    run.n = n;
    run.k = k;
    run.rows = n / k;
    run.rem = n % k;
#if NCODEC_HAVE_AVX2_PATH
    // AVX2 rows when the lanes form groups of 8 and the word offsets fit int32 (fewer lanes per
    // group were measured slower than the scalar rows).
    run.simd = simd && simd->usable && k % 8 == 0 && run.rows && total + kWordPad < (uint64_t(1) << 31) &&
               cpu_has_avx2();
    if (run.simd) {
        sc.po.resize(k);
        for (uint32_t l = 0; l < k; ++l) sc.po[l] = (int32_t)(sc.p[l] - W);
    }
#else
    (void)simd;
#endif
    return DecError{};
}

// One scalar row (all k lanes at symbol row r) of a segment; false if an escaped value was out of
// range. K > 0 is the lane count known at compile time (the loops then unroll: segments of 1, 2 or
// 4 lanes spend most of a row on loop overhead otherwise); K = 0 takes run.k. With `pk` (packed
// tables, build_packed_tables) a symbol needs fewer loads, which is what a row of few lanes waits
// on; without, the plain tables (the reference path).
template <uint32_t K>
inline bool scalar_row_k(const Prepared& Pr, const PackedView* pk, SegRun& run, size_t r) {
    const TableInfo* info = Pr.info.data();
    const uint32_t* cdf = Pr.cdf.data();
    const uint16_t* lut = Pr.lut.data();
    DecScratch& sc = *run.sc;
    const uint32_t k = K ? K : run.k;
    uint32_t* X = sc.x.data();
    const uint16_t** Pp = sc.p.data();
    const int32_t* ib = run.idx + r * k;
    int32_t* ob = run.out + r * k;
    bool ok = true;
    if (pk) {
        for (uint32_t l = 0; l < k; ++l) ok &= dec_value_packed(X[l], Pp[l], (uint32_t)ib[l], *pk, info, cdf, ob[l]);
        return ok;
    }
#if NCODEC_TWO_PHASE
    uint32_t* S = sc.s.data();
    uint32_t* V = sc.v.data();
    // Phase 1: every lane's bucket lookup (independent loads, many in flight).
    for (uint32_t l = 0; l < k; ++l) {
        const TableInfo& ti = info[ib[l]];
        uint32_t slot = X[l] & kMask;
        uint32_t a = ti.base + lut[ti.lut_base + (slot >> ti.shift)];
        a += slot >= cdf[a + 1] ? 1u : 0u;  // first scan step, branch-free
        S[l] = a;
        V[l] = (uint32_t)ti.offset - ti.base;  // value = entry index + V (mod 2^32)
    }
    // Phase 2: finish the (rare) longer scans, advance the states, renormalise.
    for (uint32_t l = 0; l < k; ++l) {
        uint32_t x = X[l], slot = x & kMask, a = S[l];
        while (slot >= cdf[a + 1]) ++a;
        uint32_t start = cdf[a], end = cdf[a + 1], freq = end - start;
        x = freq * (x >> 16) + slot - start;
        dec_renorm(x, Pp[l]);
        if (NCODEC_UNLIKELY(end == (1u << kPrec))) {  // the last entry: escape
            ok &= dec_escaped_value(x, Pp[l], info[ib[l]], ob[l]);
        } else {
            ob[l] = (int32_t)(a + V[l]);
        }
        X[l] = x;
    }
#else
    for (uint32_t l = 0; l < k; ++l) ok &= dec_value(X[l], Pp[l], info[ib[l]], cdf, lut, ob[l]);
#endif
    return ok;
}

// f(std::integral_constant<uint32_t, K>{}) with K = k for 1, 2 and 4 lanes, else K = 0.
template <class F>
inline bool with_lanes(uint32_t k, F&& f) {
    switch (k) {
        case 1:
            return f(std::integral_constant<uint32_t, 1>{});
        case 2:
            return f(std::integral_constant<uint32_t, 2>{});
        case 4:
            return f(std::integral_constant<uint32_t, 4>{});
        default:
            return f(std::integral_constant<uint32_t, 0>{});
    }
}

inline bool scalar_row(const Prepared& Pr, const PackedView* pk, SegRun& run, size_t r) {
    return with_lanes(run.k, [&](auto K) { return scalar_row_k<K()>(Pr, pk, run, r); });
}

// Scalar rows of up to kMaxGroup segments in lock-step (a row of each in turn, so that segments of
// few lanes still keep several independent decode chains in flight), block by block: kCheckRows
// rows of each segment, then an overrun check of its lanes. Every segment stops at the block where
// it failed, exactly as if it were decoded alone.
inline void segment_rows_scalar(const Prepared& Pr, const PackedTables* packed, SegRun* const* runs, int n_runs) {
    const PackedView view = packed ? packed->view() : PackedView{};
    const PackedView* pk = packed && packed->usable ? &view : nullptr;
    size_t rend[kMaxGroup];
    for (;;) {
        bool any = false;
        for (int i = 0; i < n_runs; ++i) {
            const SegRun& run = *runs[i];
            const bool active = run.r < run.rows && run.ok && !run.overrun;
            rend[i] = active ? std::min(run.rows, run.r + kCheckRows) : run.r;
            any |= active;
        }
        if (!any) break;
        for (size_t step = 0; step < kCheckRows; ++step)
            for (int i = 0; i < n_runs; ++i) {
                SegRun& run = *runs[i];
                if (run.r < rend[i]) {
                    run.ok &= scalar_row(Pr, pk, run, run.r);
                    ++run.r;
                }
            }
        for (int i = 0; i < n_runs; ++i) {
            SegRun& run = *runs[i];
            const uint16_t* const* Pp = run.sc->p.data();
            const uint16_t* const* Ep = run.sc->end.data();
            for (uint32_t l = 0; l < run.k; ++l) run.overrun |= Pp[l] > Ep[l];
        }
    }
}

constexpr size_t kLockstep = 2;  // AVX2 rows: segments in lock-step (4 was slower)

#if NCODEC_HAVE_AVX2_PATH
// AVX2 rows of up to kLockstep segments (decoded in lock-step), block by block: the same blocks,
// checks and stopping points per segment as segment_rows_scalar.
inline void segment_rows_avx2(const Prepared& Pr, const PackedTables& S, SegRun* const* runs, int n_runs) {
    AvxRows u[kLockstep];
    for (int i = 0; i < n_runs; ++i) {
        DecScratch& sc = *runs[i]->sc;
        u[i] = AvxRows{runs[i]->k,    0,           0, sc.x.data(), sc.po.data(), sc.words.data(), runs[i]->idx,
                       runs[i]->out, true, false};
    }
    for (;;) {
        bool any = false;
        for (int i = 0; i < n_runs; ++i) {
            SegRun& run = *runs[i];
            const bool active = run.r < run.rows && run.ok && !run.overrun && !run.bad_index;
            u[i].r = run.r;
            u[i].rend = active ? std::min(run.rows, run.r + kCheckRows) : run.r;
            any |= active;
        }
        if (!any) break;
        if (n_runs == 2)
            decode_block_avx2<2>(Pr, S, u);
        else
            decode_block_avx2<1>(Pr, S, u);
        for (int i = 0; i < n_runs; ++i) {
            SegRun& run = *runs[i];
            run.r = u[i].r;
            run.ok &= u[i].ok;
            run.bad_index |= u[i].bad_index;
            const uint16_t* W = run.sc->words.data();
            for (uint32_t l = 0; l < run.k; ++l) run.overrun |= W + run.sc->po[l] > run.sc->end[l];
        }
    }
    for (int i = 0; i < n_runs; ++i)
        for (uint32_t l = 0; l < runs[i]->k; ++l) runs[i]->sc->p[l] = runs[i]->sc->words.data() + runs[i]->sc->po[l];
}
#endif

// The remainder row and the final checks of a segment whose rows are done.
inline DecError segment_finish(const Prepared& Pr, SegRun& run) {
    if (run.bad_index) return bad_index_error();
    if (!run.indexes_checked && !indexes_valid(Pr, run.idx + run.rows * run.k, run.rem)) return bad_index_error();
    if (run.overrun) return dec_fail(kCorrupt, "rANS lane ran out of words: the payload is corrupt");
    if (!run.ok) return dec_fail(kCorrupt, "escaped symbol out of range: the payload is corrupt");
    DecScratch& sc = *run.sc;
    const uint32_t k = run.k;
    uint32_t* X = sc.x.data();
    const uint16_t** Pp = sc.p.data();
    const uint16_t* const* Ep = sc.end.data();
    bool ok = true;
    const size_t base = run.rows * k;
    for (uint32_t l = 0; l < run.rem; ++l)
        ok &= dec_value(X[l], Pp[l], Pr.info[run.idx[base + l]], Pr.cdf.data(), Pr.lut.data(), run.out[base + l]);
    for (uint32_t l = 0; l < k; ++l)
        if (Pp[l] > Ep[l]) return dec_fail(kCorrupt, "rANS lane ran out of words: the payload is corrupt");
    if (!ok) return dec_fail(kCorrupt, "escaped symbol out of range: the payload is corrupt");
    for (uint32_t l = 0; l < k; ++l)
        if (X[l] != kRansL || Pp[l] != Ep[l])
            return dec_fail(kCorrupt, "rANS lane did not end in its initial state: the payload is corrupt");
    return DecError{};
}

// Decodes segments [s, s + count) (count <= kMaxGroup) of a payload, checking their indexes first
// (the AVX2 rows check them as they load them); the AVX2 ones decode in lock-step pairs, the others
// all together in scalar lock-step. errs[i] is segment s + i's result, exactly as if it were decoded
// alone.
inline void decode_segments(const Prepared& P, const PackedTables* simd, const uint8_t* data,
                            const SegSpan* spans, size_t s, size_t count, const int32_t* idx, int32_t* out,
                            size_t n, uint64_t seg_n, DecScratch* sc, DecError* errs) {
    SegRun runs[kMaxGroup];
    bool begun[kMaxGroup] = {};
    for (size_t i = 0; i < count; ++i) {
        const size_t s0 = (size_t)((s + i) * seg_n);
        const size_t cnt = std::min<size_t>(seg_n, n - s0);
        errs[i] = segment_begin(data + spans[s + i].body, spans[s + i].len, idx + s0, out + s0, cnt, sc[i], simd,
                                runs[i]);
        begun[i] = errs[i].status == kOk;
        // The AVX2 rows check indexes as they read them; otherwise check them all first. A bad index
        // is reported ahead of a stream error.
        if (!begun[i] || !runs[i].simd) {
            if (!indexes_valid(P, idx + s0, cnt)) {
                errs[i] = bad_index_error();
                begun[i] = false;
            }
            runs[i].indexes_checked = true;
        }
    }
    SegRun* scalar[kMaxGroup];
    int n_scalar = 0;
#if NCODEC_HAVE_AVX2_PATH
    SegRun* vec[kMaxGroup];
    int n_vec = 0;
    for (size_t i = 0; i < count; ++i)
        if (begun[i] && runs[i].simd) vec[n_vec++] = &runs[i];
    for (int i = 0; i < n_vec; i += (int)kLockstep)
        segment_rows_avx2(P, *simd, vec + i, std::min(n_vec - i, (int)kLockstep));
#endif
    for (size_t i = 0; i < count; ++i)
        if (begun[i] && !runs[i].simd) scalar[n_scalar++] = &runs[i];
    if (n_scalar) segment_rows_scalar(P, simd, scalar, n_scalar);
    for (size_t i = 0; i < count; ++i) {
        if (!begun[i]) continue;
        errs[i] = segment_finish(P, runs[i]);
        if (errs[i].status && !runs[i].indexes_checked && !indexes_valid(P, runs[i].idx, runs[i].n))
            errs[i] = bad_index_error();  // a bad index among the rows left undecoded wins
    }
}

// Lanes of a segment from its head (0 if unreadable; the decoder reports that later).
inline uint32_t peek_lanes(const uint8_t* data, const SegSpan& span) {
    size_t pos = 0;
    uint32_t k = 0;
    return read_varint(data + span.body, span.len, pos, k) ? 0 : k;
}

// Decodes a whole payload into out[0..n). A bad table index anywhere is reported first (kBadIndex),
// before any stream error; each task checks its segments' indexes (in parallel, while they are in
// cache). With `simd` (tables from build_packed_tables) and an AVX2 CPU, segments of 8, 16, ... lanes
// decode with AVX2.
inline DecError decode_payload(const Prepared& P, const uint8_t* data, size_t len, const int32_t* idx, size_t n,
                               int32_t* out, unsigned threads, const PackedTables* simd = nullptr) {
    std::vector<SegSpan> spans;
    uint64_t seg_n = 0;
    size_t need = 0;
    const DecError head = parse_head(data, len, len, n, need, seg_n, spans);
    if (head.status) return indexes_valid(P, idx, n) ? head : bad_index_error();  // a bad index wins
    const size_t n_seg = spans.size();
    std::vector<DecError> errs(n_seg);
    // Tasks of several segments, decoded in lock-step: pairs where the AVX2 rows take them (judged
    // by the first segment's lanes), up to kMaxGroup where the scalar rows do (segments of few lanes
    // have few decode chains each). One thread takes them all in as few tasks as that allows;
    // several threads keep at least two tasks each, for balance.
    bool avx_rows = false;
#if NCODEC_HAVE_AVX2_PATH
    avx_rows = simd && simd->usable && n_seg && cpu_has_avx2() && peek_lanes(data, spans[0]) % 8 == 0;
#endif
    const size_t cap = avx_rows ? kLockstep : kMaxGroup;
    const size_t w = worker_count(n_seg, threads);
    size_t per = 1;
    while (per < cap && (w == 1 ? per < n_seg : n_seg >= 2 * per * w)) per *= 2;
    const size_t n_tasks = (n_seg + per - 1) / per;
    const unsigned workers = worker_count(n_tasks, threads);

    std::atomic<size_t> first_bad{n_seg};
    std::atomic<bool> any_bad_index{false};
    parallel_for(n_tasks, workers, [&](size_t task, unsigned) {
        static thread_local std::array<DecScratch, kMaxGroup> scratch;  // each thread's (pool threads persist)
        const size_t s = task * per;
        const size_t count = std::min(per, n_seg - s);
        if (any_bad_index.load(std::memory_order_relaxed)) return;  // the result is kBadIndex
        if (s > first_bad.load(std::memory_order_relaxed)) {  // an earlier segment failed: indexes only
            const size_t s0 = (size_t)(s * seg_n);
            if (!indexes_valid(P, idx + s0, std::min<size_t>(count * seg_n, n - s0))) any_bad_index = true;
            return;
        }
        try {
            decode_segments(P, simd, data, spans.data(), s, count, idx, out, n, seg_n,
                            scratch.data(), errs.data() + s);
        } catch (const std::exception&) {
            for (size_t i = 0; i < count; ++i) errs[s + i] = dec_fail(kNoMemory, "out of memory");
        }
        for (auto& sc : scratch) trim(sc.words);
        for (size_t i = 0; i < count; ++i)
            if (errs[s + i].status == kBadIndex) any_bad_index = true;
        for (size_t i = 0; i < count; ++i)
            if (errs[s + i].status) {
                size_t cur = first_bad.load();
                while (s + i < cur && !first_bad.compare_exchange_weak(cur, s + i)) {
                }
                break;
            }
    });
    if (any_bad_index) return bad_index_error();
    for (auto& e : errs)
        if (e.status) return e;
    return DecError{};
}

}  // namespace rans
}  // namespace ncodec
