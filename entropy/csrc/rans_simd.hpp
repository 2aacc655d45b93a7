// AVX2 paths of the CPU coder, picked at run time (cpuid) by rans_cpu.hpp; the scalar code there is
// the fallback and the reference (same bytes, symbols, states, word pointers and error checks).
//
// Decoder: the lanes of a segment in groups of 8. Per group and row, five gathers (each eight scalar
// loads) from PackedTables (rans.hpp): the table's first bucket | shift and value offset, the bucket
// entry (first entry | its end - 1 << 16: the first scan step needs no CDF load), the entry's
// start | freq << 16, and the next word of every lane (issued before the state update, so it is off
// the dependency chain). Lanes whose slot lies past the first step's entry (several boundaries in
// one bucket) and escapes are rare and finished in scalar code.
// Encoder: the first pass over the symbols and the rows of lanes, 8 at a time.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

#include "rans.hpp"

#if (defined(__x86_64__) || defined(_M_X64)) && (defined(__GNUC__) || defined(__clang__)) && !defined(NCODEC_NO_AVX2)
#define NCODEC_HAVE_AVX2_PATH 1
#include <immintrin.h>
#else
#define NCODEC_HAVE_AVX2_PATH 0
#endif

namespace ncodec {
namespace rans {

#if NCODEC_HAVE_AVX2_PATH

inline bool cpu_has_avx2() {
    static const bool yes = __builtin_cpu_supports("avx2");
    return yes;
}

// Vector operations on a group of 8 lanes.
struct Vec8 {
    using T = __m256i;
    __attribute__((target("avx2"))) static T load(const void* p) {
        return _mm256_loadu_si256(static_cast<const T*>(p));
    }
    __attribute__((target("avx2"))) static void store(void* p, T v) { _mm256_storeu_si256(static_cast<T*>(p), v); }
    __attribute__((target("avx2"))) static T set1(int v) { return _mm256_set1_epi32(v); }
    // Scalar loads, not vpgatherdd: as fast here (AMD Zen 4), and immune to slow microcoded gathers
    // (Intel's Gather Data Sampling mitigation).
    template <int Scale>
    __attribute__((target("avx2"))) static T gather(const void* base, T i) {
        const char* b = static_cast<const char*>(base);
        const __m128i lo = _mm256_castsi256_si128(i), hi = _mm256_extracti128_si256(i, 1);
        auto ld = [b](int32_t j) {
            int32_t r;
            std::memcpy(&r, b + (ptrdiff_t)j * Scale, 4);
            return r;
        };
        return _mm256_setr_epi32(ld(_mm_cvtsi128_si32(lo)), ld(_mm_extract_epi32(lo, 1)), ld(_mm_extract_epi32(lo, 2)),
                                 ld(_mm_extract_epi32(lo, 3)), ld(_mm_cvtsi128_si32(hi)), ld(_mm_extract_epi32(hi, 1)),
                                 ld(_mm_extract_epi32(hi, 2)), ld(_mm_extract_epi32(hi, 3)));
    }
    __attribute__((target("avx2"))) static T add(T a, T b) { return _mm256_add_epi32(a, b); }
    __attribute__((target("avx2"))) static T sub(T a, T b) { return _mm256_sub_epi32(a, b); }
    __attribute__((target("avx2"))) static T band(T a, T b) { return _mm256_and_si256(a, b); }
    __attribute__((target("avx2"))) static T bor(T a, T b) { return _mm256_or_si256(a, b); }
    __attribute__((target("avx2"))) static T srlv(T a, T b) { return _mm256_srlv_epi32(a, b); }
    __attribute__((target("avx2"))) static T srli16(T a) { return _mm256_srli_epi32(a, 16); }
    __attribute__((target("avx2"))) static T slli16(T a) { return _mm256_slli_epi32(a, 16); }
    __attribute__((target("avx2"))) static T srli27(T a) { return _mm256_srli_epi32(a, 27); }
    __attribute__((target("avx2"))) static T mullo(T a, T b) { return _mm256_mullo_epi32(a, b); }
    __attribute__((target("avx2"))) static T cmpgt(T a, T b) { return _mm256_cmpgt_epi32(a, b); }
    __attribute__((target("avx2"))) static T cmpeq(T a, T b) { return _mm256_cmpeq_epi32(a, b); }
    __attribute__((target("avx2"))) static T ge_u(T a, T b) { return cmpeq(_mm256_max_epu32(a, b), a); }  // unsigned
    __attribute__((target("avx2"))) static T blend(T a, T b, T m) { return _mm256_blendv_epi8(a, b, m); }
    __attribute__((target("avx2"))) static int mask(T m) { return _mm256_movemask_ps(_mm256_castsi256_ps(m)); }
};

// The rows [r, rend) of one segment's k lanes (k a multiple of 8) for decode_block_avx2.
struct AvxRows {
    uint32_t k;
    size_t r, rend;
    uint32_t* X;            // lane states
    int32_t* P;             // lane word offsets into `words` (the caller checks they fit int32)
    const uint16_t* words;  // the segment's words, padded
    const int32_t* idx;     // the segment's table indexes and output
    int32_t* out;
    bool ok;         // false once an escaped value was out of range (the scalar loop's `ok`)
    bool bad_index;  // a table index >= T was met (decoding of this segment stops there)
};

// One row of one segment: all its lanes, in groups of 8.
__attribute__((target("avx2"), always_inline)) inline void decode_row_avx2(const Prepared& Pr, const PackedTables& S,
                                                                           AvxRows& u) {
    using V = Vec8;
    using T = V::T;
    constexpr int W = 8;
    const T low16 = V::set1(0xffff), low27 = V::set1((1 << 27) - 1);
    const T esc_end = V::set1(1 << 16), zero = V::set1(0);
    const uint32_t k = u.k;
    const int32_t* ib = u.idx + u.r * k;
    int32_t* ob = u.out + u.r * k;
    const uint16_t* words = u.words;

    const T tmax = V::set1((int)(Pr.T - 1));
    for (uint32_t g = 0; g < k; g += W) {
        const T t = V::load(ib + g);
        // Indexes are checked here, while they stream in, rather than in a pass of their own.
        if (__builtin_expect(V::mask(V::ge_u(tmax, t)) != 0xff, 0)) {
            u.bad_index = true;
            u.rend = u.r;
            return;
        }
        T x = V::load(u.X + g);
        T p = V::load(u.P + g);
        const T w = V::band(V::gather<2>(words, p), low16);  // next word, off the dependency chain
        const T slot = V::band(x, low16);
        const T ls = V::gather<4>(S.lut_shift.data(), t), tv = V::gather<4>(S.value.data(), t);
        const T e = V::gather<4>(S.bucket.data(), V::add(V::band(ls, low27), V::srlv(slot, V::srli27(ls))));
        // a = s + (slot >= cdf[s + 1]): cmpgt(slot, cdf[s + 1] - 1) is -1 where it is
        T a = V::sub(V::band(e, low16), V::cmpgt(slot, V::srli16(e)));
        T d = V::gather<4>(S.entry.data(), a);
        T start = V::band(d, low16), freq = V::srli16(d), end = V::add(start, freq);
        const int far = V::mask(V::cmpgt(end, slot)) ^ ((1 << W) - 1);  // slot >= end: more steps
        if (__builtin_expect(far != 0, 0)) {
            alignas(32) uint32_t sa[W], aa[W];
            V::store(sa, slot);
            V::store(aa, a);
            for (int l = 0; l < W; ++l)
                if (far >> l & 1)
                    while (sa[l] >= Pr.cdf[aa[l] + 1]) ++aa[l];
            a = V::load(aa);
            d = V::gather<4>(S.entry.data(), a);
            start = V::band(d, low16);
            freq = V::srli16(d);
            end = V::add(start, freq);
        }
        x = V::add(V::mullo(freq, V::srli16(x)), V::sub(slot, start));
        const T need = V::cmpeq(V::srli16(x), zero);  // x < 2^16
        x = V::blend(x, V::bor(V::slli16(x), w), need);
        p = V::sub(p, need);
        V::store(ob + g, V::add(a, tv));
        const int esc = V::mask(V::cmpeq(end, esc_end));
        if (__builtin_expect(esc != 0, 0)) {  // escapes: the bypass ops, lane by lane
            alignas(32) uint32_t xa[W];
            alignas(32) int32_t pa[W];
            V::store(xa, x);
            V::store(pa, p);
            for (int l = 0; l < W; ++l)
                if (esc >> l & 1) {
                    const uint16_t* pp = words + pa[l];
                    u.ok &= dec_escaped_value(xa[l], pp, Pr.info[ib[g + l]], ob[g + l]);
                    pa[l] = (int32_t)(pp - words);
                }
            x = V::load(xa);
            p = V::load(pa);
        }
        V::store(u.X + g, x);
        V::store(u.P + g, p);
    }
    ++u.r;
}

// Decodes rows [r, rend) of N segments, row by row in lock-step: with 8 lanes a segment's rows form
// a single dependency chain (two dependent gathers per row), and the other segments' rows fill the
// core meanwhile.
template <int N>
__attribute__((target("avx2"))) void decode_block_avx2(const Prepared& Pr, const PackedTables& S, AvxRows* u) {
    for (;;) {
        bool stepped = false;
        for (int i = 0; i < N; ++i)
            if (u[i].r < u[i].rend) {
                decode_row_avx2(Pr, S, u[i]);
                stepped = true;
            }
        if (!stepped) break;
    }
}

// Largest of n values taken as uint32 (0 if n == 0); a plain loop the compiler vectorises for AVX2.
__attribute__((target("avx2"))) inline uint32_t max_u32_avx2(const int32_t* v, size_t n) {
    uint32_t m = 0;
    for (size_t j = 0; j < n; ++j) m = std::max(m, (uint32_t)v[j]);
    return m;
}

// The encoder's first pass over symbols [0, n - n % 8), eight at a time: each symbol's entry (as
// encode_segment's scalar loop: kEscapeFlag on the escape entry), the estimated cost, the number of
// escapes and the validity flags (indexes out of range are looked up in table 0). Returns the
// symbols done.
__attribute__((target("avx2"))) inline size_t encode_entries_avx2(const Prepared& Pr, const int32_t* sym,
                                                                  const int32_t* idx, size_t n, uint32_t* E,
                                                                  uint64_t& cost, uint32_t& bad_idx,
                                                                  uint32_t& bad_sym, uint32_t& n_esc) {
    using V = Vec8;
    using T = V::T;
    const char* ib = reinterpret_cast<const char*>(Pr.info.data());
    static_assert(sizeof(TableInfo) == 16 && offsetof(TableInfo, base) == 0 && offsetof(TableInfo, offset) == 8 &&
                      offsetof(TableInfo, n) == 12,
                  "TableInfo layout");
    const uint8_t* costs = Pr.cost.data();
    const T tmax = V::set1((int)(Pr.T - 1)), big = V::set1((int)kMaxSymbolMagnitude);
    const T nbig = V::set1(-(int)kMaxSymbolMagnitude), low16 = V::set1(0xffff), one = V::set1(1);
    const T flag = V::set1((int)kEscapeFlag);
    T bi = V::set1(0), bs = V::set1(0);
    uint64_t c = 0;  // locals: the compiler would keep the references in memory
    uint32_t esc = 0;
    const size_t n8 = n - n % 8;
    for (size_t j = 0; j < n8; j += 8) {
        T t = V::load(idx + j);
        const T v = V::load(sym + j);
        const T ok_t = V::ge_u(tmax, t);  // t <= T - 1
        bi = V::bor(bi, _mm256_andnot_si256(ok_t, V::set1(-1)));
        bs = V::bor(bs, V::bor(V::cmpgt(v, big), V::cmpgt(nbig, v)));
        t = V::band(t, ok_t);  // out-of-range indexes look up table 0
        const T base = V::gather<16>(ib, t), off = V::gather<16>(ib + 8, t);
        const T nm1 = V::sub(V::band(V::gather<16>(ib + 12, t), low16), one);
        const T i = V::sub(v, off);
        const T in = V::cmpgt(_mm256_xor_si256(nm1, flag), _mm256_xor_si256(i, flag));  // i < n - 1 (unsigned)
        const T e = V::blend(V::bor(V::add(base, nm1), flag), V::add(base, i), in);
        V::store(E + j, e);
        esc += 8u - (uint32_t)__builtin_popcount((unsigned)V::mask(in));
        alignas(32) uint32_t ea[8];
        V::store(ea, V::band(e, V::set1((int)~kEscapeFlag)));
        for (int l = 0; l < 8; ++l) c += costs[ea[l]];
    }
    cost += c;
    n_esc += esc;
    bad_idx |= V::mask(bi) != 0;
    bad_sym |= V::mask(bs) != 0;
    return n8;
}

// Encodes rows [0, rows) of a segment's k lanes (k a multiple of 8), last row first, like the
// scalar loop: per lane enc_put's branch-free renormalisation (the word is always stored at p[-1])
// and division-free update x + bias + mulhi(x, rcp) * cmpl, eight lanes at a time. E: the
// segment's entries (kEscapeFlag on escapes: such a group of 8 is coded lane by lane in scalar).
// X: lane states; P: lane word offsets into W (int32; the caller checks they fit).
__attribute__((target("avx2"))) inline void encode_rows_avx2(const Prepared& Pr, uint32_t k, size_t rows,
                                                             const uint32_t* E, const int32_t* sym,
                                                             const int32_t* idx, uint32_t* X, int32_t* P,
                                                             uint16_t* W) {
    using V = Vec8;
    using T = V::T;
    const EncSym* enc = Pr.enc.data();
    const char* eb = reinterpret_cast<const char*>(enc);
    static_assert(sizeof(EncSym) == 16 && offsetof(EncSym, rcp) == 0 && offsetof(EncSym, bias) == 8 &&
                      offsetof(EncSym, freq) == 12,
                  "EncSym layout");
    const T low16 = V::set1(0xffff), esc_flag = V::set1((int)kEscapeFlag), lo32 = _mm256_set1_epi64x(0xffffffffLL);
    for (size_t r = rows; r-- > 0;) {
        const size_t base = r * k;
        for (uint32_t g = 0; g < k; g += 8) {
            const T e = V::load(E + base + g);
            if (__builtin_expect(V::mask(V::cmpeq(V::band(e, esc_flag), esc_flag)) != 0, 0)) {
                for (uint32_t l = g; l < g + 8; ++l) {  // a group with an escape: lane by lane
                    const size_t j = base + l;
                    uint16_t* p = W + P[l];
                    if (E[j] & kEscapeFlag)
                        enc_escaped(X[l], p, sym[j], Pr.info[idx[j]], enc);
                    else
                        enc_put(X[l], p, enc[E[j]]);
                    P[l] = (int32_t)(p - W);
                }
                continue;
            }
            T x = V::load(X + g);
            T p = V::load(P + g);
            const T fc = V::gather<16>(eb + 12, e);  // freq | cmpl << 16
            const T freq = V::band(fc, low16), cmpl = V::srli16(fc);
            const T x_max = V::slli16(freq);
            const T renorm = V::ge_u(x, x_max);  // x >= freq << 16
            alignas(32) uint32_t xs[8];
            alignas(32) int32_t ps[8];
            V::store(xs, x);
            V::store(ps, p);
            for (int l = 0; l < 8; ++l) W[ps[l] - 1] = (uint16_t)xs[l];
            p = V::add(p, renorm);
            x = V::blend(x, V::srli16(x), renorm);
            // q = (x * rcp) >> 64 = (x * rcp_hi + (x * rcp_lo >> 32)) >> 32, in even and odd lanes
            const T rl = V::gather<16>(eb, e), rh = V::gather<16>(eb + 4, e);
            const T xo = _mm256_srli_epi64(x, 32), rlo = _mm256_srli_epi64(rl, 32), rho = _mm256_srli_epi64(rh, 32);
            const T qe = _mm256_srli_epi64(
                _mm256_add_epi64(_mm256_mul_epu32(x, rh), _mm256_srli_epi64(_mm256_mul_epu32(x, rl), 32)), 32);
            const T qo = _mm256_srli_epi64(
                _mm256_add_epi64(_mm256_mul_epu32(xo, rho), _mm256_srli_epi64(_mm256_mul_epu32(xo, rlo), 32)), 32);
            const T q = V::bor(V::band(qe, lo32), _mm256_slli_epi64(qo, 32));
            const T bias = V::gather<16>(eb + 8, e);
            x = V::add(V::add(x, bias), V::mullo(q, cmpl));
            V::store(X + g, x);
            V::store(P + g, p);
        }
    }
}

#else
inline bool cpu_has_avx2() { return false; }
#endif  // NCODEC_HAVE_AVX2_PATH

}  // namespace rans
}  // namespace ncodec
