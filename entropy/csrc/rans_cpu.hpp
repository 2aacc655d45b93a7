// ncodec rANS: the CPU payload coder (segments in parallel, lanes of a segment in lock-step).
// No Python here: rans.cpp binds it, fuzz_driver.cpp drives it under sanitizers.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstring>
#include <exception>
#include <string>
#include <thread>
#include <vector>

#include "rans.hpp"

#if defined(__BYTE_ORDER__) && (__BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__)
#error "ncodec's rANS coder assumes a little-endian host"
#endif

namespace ncodec {
namespace rans {

#ifndef NCODEC_TWO_PHASE
#define NCODEC_TWO_PHASE 1  // 1: bucket lookups of all lanes of a row first (more loads in flight)
#endif
#ifndef NCODEC_LANE_PAD
#define NCODEC_LANE_PAD 72  // words between lanes' encode buffers: avoids 4K aliasing of their stores
#endif

#if defined(__GNUC__) || defined(__clang__)
#define NCODEC_UNLIKELY(x) __builtin_expect(!!(x), 0)
#else
#define NCODEC_UNLIKELY(x) (x)
#endif

enum ExtraStatus : int { kBadIndex = 3, kBadSymbol = 4, kNoMemory = 5 };

// Runs f(task, worker) for task in [0, n_tasks) on up to `threads` threads (0 = all cores).
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
    std::vector<std::thread> pool;
    pool.reserve(threads - 1);
    for (unsigned w = 1; w < threads; ++w) pool.emplace_back(work, w);
    work(0);
    for (auto& th : pool) th.join();
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
};

// Encodes one segment into `body`. Returns kOk, kBadIndex or kBadSymbol.
inline int encode_segment(const Prepared& P, const int32_t* sym, const int32_t* idx, size_t n, uint32_t lanes,
                          EncScratch& sc, std::vector<uint8_t>& body) {
    const TableInfo* info = P.info.data();
    const EncSym* enc = P.enc.data();
    const uint8_t* costs = P.cost.data();
    const uint32_t T = P.T;
    sc.entry.resize(n);
    uint32_t* E = sc.entry.data();
    uint64_t cost = 0;
    uint32_t bad_idx = 0, bad_sym = 0, n_esc = 0;
    for (size_t j = 0; j < n; ++j) {  // branch-free: entry, cost, escape count, validity
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
    for (size_t r = rows; r-- > 0;) {
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
                          uint64_t seg_n, unsigned threads, std::vector<uint8_t>& out) {
    const size_t n_seg = n ? (size_t)((n + seg_n - 1) / seg_n) : 0;
    std::vector<std::vector<uint8_t>> bodies(n_seg);
    std::vector<int> status(n_seg, kOk);
    const unsigned workers = worker_count(n_seg, threads);
    std::vector<EncScratch> scratch(workers > 1 ? workers - 1 : 0);
    static thread_local EncScratch caller_scratch;  // the calling thread's, reused across calls
    parallel_for(n_seg, workers, [&](size_t s, unsigned w) {
        size_t s0 = (size_t)(s * seg_n);
        size_t cnt = (size_t)std::min<uint64_t>(seg_n, n - s0);
        try {
            EncScratch& sc = w ? scratch[w - 1] : caller_scratch;
            status[s] = encode_segment(P, sym + s0, idx + s0, cnt, lanes, sc, bodies[s]);
        } catch (const std::exception&) {
            status[s] = kNoMemory;
        }
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
constexpr size_t kWordPad = kMaxOpsPerSymbol * kCheckRows + 16;

struct DecScratch {
    std::vector<uint16_t> words;
    std::vector<uint32_t> x, s, v;
    std::vector<const uint16_t*> p, end;
};

struct DecError {
    int status = kOk;
    const char* msg = "";
};

inline DecError dec_fail(int st, const char* m) { return DecError{st, m}; }

// Decodes one segment body (bounds-checked: the input is untrusted).
inline DecError decode_segment(const Prepared& Pr, const uint8_t* body, size_t len, const int32_t* idx,
                               int32_t* out, size_t n, DecScratch& sc) {
    size_t pos = 0;
    uint32_t k;
    int st = read_varint(body, len, pos, k);
    if (st == kTruncated) return dec_fail(st, "stream ends inside a length field");
    if (st) return dec_fail(st, "malformed length field (varint)");
    if (k < 1 || k > std::min<size_t>(kMaxLanes, n))
        return dec_fail(kCorrupt, "segment declares an impossible number of lanes");
    if (pos + 4 * (size_t)k > len) return dec_fail(kCorrupt, "segment header is cut short");
    sc.x.resize(k);
    for (uint32_t l = 0; l < k; ++l) std::memcpy(&sc.x[l], body + pos + 4 * l, 4);
    pos += 4 * (size_t)k;
    sc.p.resize(k);
    sc.end.resize(k);
    std::vector<uint32_t> counts(k);
    uint64_t total = 0;
    for (uint32_t l = 0; l < k; ++l) {
        st = read_varint(body, len, pos, counts[l]);
        if (st == kTruncated) return dec_fail(st, "stream ends inside a length field");
        if (st) return dec_fail(st, "malformed length field (varint)");
        total += counts[l];
    }
    if (pos + 2 * total != len) return dec_fail(kCorrupt, "segment word counts do not match its length");
    for (uint32_t l = 0; l < k; ++l)
        if (sc.x[l] < kRansL) return dec_fail(kCorrupt, "rANS lane state out of range");
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

    const TableInfo* info = Pr.info.data();
    const uint32_t* cdf = Pr.cdf.data();
    const uint16_t* lut = Pr.lut.data();
    uint32_t* X = sc.x.data();
    const uint16_t** Pp = sc.p.data();
    const uint16_t* const* Ep = sc.end.data();
    const size_t rows = n / k, rem = n % k;
    sc.s.resize(k);
    sc.v.resize(k);
    uint32_t* S = sc.s.data();
    uint32_t* V = sc.v.data();
    bool ok = true;
    auto overrun = [&]() {
        for (uint32_t l = 0; l < k; ++l)
            if (Pp[l] > Ep[l]) return true;
        return false;
    };
    for (size_t r = 0; r < rows && ok;) {
        const size_t rend = std::min(rows, r + kCheckRows);
        for (; r < rend; ++r) {
            const size_t base = r * k;
            const int32_t* ib = idx + base;
            int32_t* ob = out + base;
#if NCODEC_TWO_PHASE
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
                    int64_t v = dec_escaped(x, Pp[l], info[ib[l]]);
                    ok &= v <= kMaxSymbolMagnitude && v >= -kMaxSymbolMagnitude;
                    ob[l] = (int32_t)v;
                } else {
                    ob[l] = (int32_t)(a + V[l]);
                }
                X[l] = x;
            }
#else
            for (uint32_t l = 0; l < k; ++l) ok &= dec_value(X[l], Pp[l], info[ib[l]], cdf, lut, ob[l]);
#endif
        }
        if (overrun()) return dec_fail(kCorrupt, "rANS lane ran out of words: the payload is corrupt");
    }
    if (!ok) return dec_fail(kCorrupt, "escaped symbol out of range: the payload is corrupt");
    for (uint32_t l = 0; l < rem; ++l)
        ok &= dec_value(X[l], Pp[l], info[idx[rows * k + l]], cdf, lut, out[rows * k + l]);
    if (overrun()) return dec_fail(kCorrupt, "rANS lane ran out of words: the payload is corrupt");
    if (!ok) return dec_fail(kCorrupt, "escaped symbol out of range: the payload is corrupt");
    for (uint32_t l = 0; l < k; ++l)
        if (X[l] != kRansL || Pp[l] != Ep[l])
            return dec_fail(kCorrupt, "rANS lane did not end in its initial state: the payload is corrupt");
    return DecError{};
}

// Decodes a whole payload into out[0..n). Checks the indexes first (kBadIndex).
inline DecError decode_payload(const Prepared& P, const uint8_t* data, size_t len, const int32_t* idx, size_t n,
                               int32_t* out, unsigned threads) {
    uint32_t bad = 0;
    const uint32_t T = P.T;
    for (size_t j = 0; j < n; ++j) bad |= (uint32_t)idx[j] >= T;
    if (bad) return dec_fail(kBadIndex, "table index out of range");
    size_t pos = 0;
    uint32_t n_stream, seg_n;
    int st = read_varint(data, len, pos, n_stream);
    if (!st) st = read_varint(data, len, pos, seg_n);
    if (st == kTruncated) return dec_fail(st, "stream ends inside a length field");
    if (st) return dec_fail(st, "malformed length field (varint)");
    if (n_stream != n) return dec_fail(kCorrupt, "payload holds a different number of symbols than expected");
    if (seg_n < 1) return dec_fail(kCorrupt, "segment size is 0");
    const size_t n_seg = (size_t)((n + seg_n - 1) / seg_n);
    std::vector<uint64_t> start(n_seg + 1);
    uint64_t sum = 0;
    for (size_t s = 0; s < n_seg; ++s) {
        uint32_t length;
        st = read_varint(data, len, pos, length);
        if (st == kTruncated) return dec_fail(st, "stream ends inside a length field");
        if (st) return dec_fail(st, "malformed length field (varint)");
        start[s] = sum;
        sum += length;
    }
    start[n_seg] = sum;
    if (pos + sum > len) return dec_fail(kTruncated, "rANS payload is shorter than its segment table says");
    if (pos + sum < len) return dec_fail(kCorrupt, "rANS payload has trailing bytes");
    const uint8_t* bodies = data + pos;
    std::vector<DecError> errs(n_seg);
    const unsigned workers = worker_count(n_seg, threads);
    std::vector<DecScratch> scratch(workers > 1 ? workers - 1 : 0);
    static thread_local DecScratch caller_scratch;
    std::atomic<size_t> first_bad{n_seg};
    parallel_for(n_seg, workers, [&](size_t s, unsigned w) {
        if (s > first_bad.load(std::memory_order_relaxed)) return;  // an earlier segment failed
        size_t s0 = (size_t)s * seg_n;
        size_t cnt = std::min<size_t>(seg_n, n - s0);
        try {
            errs[s] = decode_segment(P, bodies + start[s], (size_t)(start[s + 1] - start[s]), idx + s0, out + s0,
                                     cnt, w ? scratch[w - 1] : caller_scratch);
        } catch (const std::exception&) {
            errs[s] = dec_fail(kNoMemory, "out of memory");
        }
        if (errs[s].status) {
            size_t cur = first_bad.load();
            while (s < cur && !first_bad.compare_exchange_weak(cur, s)) {
            }
        }
    });
    for (auto& e : errs)
        if (e.status) return e;
    return DecError{};
}

}  // namespace rans
}  // namespace ncodec
