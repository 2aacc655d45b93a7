// ncodec rANS core: header-only lane encode/decode shared by the C++ (CPU) and CUDA coders.
//
// The format is defined by entropy/rans_ref.py (the Python reference). Parameters:
//   * 16-bit probability precision (PREC), CDFs run 0..65536;
//   * 32-bit lane states in [2^16, 2^32), one 16-bit word of renormalisation per op;
//   * encode: if x >= freq << 16 { emit x & 0xffff; x >>= 16 }  x = (x / freq << 16) + x % freq + start
//   * decode: slot = x & 0xffff; s: cdf[s] <= slot < cdf[s+1]; x = freq * (x >> 16) + slot - start;
//             if x < 2^16 { x = x << 16 | next word }
//   * a value outside its table's support codes the escape entry (the table's last), a 5-bit op
//     holding m, then the low m bits of e in <= 16-bit uniform chunks (LSB chunk first).
//
// Encoding is division free: q = x / freq is computed as the high half of a 32x64-bit product with
// rcp = ceil(2^64 / freq) (exact for every x < 2^32 because rcp * freq - 2^64 < freq <= 2^16), and
// freq == 1 uses ryg_rans' bias trick (rcp = 2^64 - 1 gives q = x - 1, compensated by the bias).
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#if defined(__CUDACC__)
#define RANS_HD __host__ __device__ __forceinline__
#elif defined(_MSC_VER)
#define RANS_HD __forceinline
#else
#define RANS_HD inline __attribute__((always_inline))
#endif

#ifndef NCODEC_LUT_EXTRA
#define NCODEC_LUT_EXTRA 4
#endif

namespace ncodec {
namespace rans {

constexpr uint32_t kPrec = 16;
constexpr uint32_t kMask = (1u << kPrec) - 1;
constexpr uint32_t kRansL = 1u << 16;
constexpr uint32_t kMaxLanes = 1024;
constexpr uint32_t kMaxTableSize = 4096;
constexpr int64_t kMaxTableOffset = int64_t(1) << 20;
constexpr int64_t kMaxSymbolMagnitude = int64_t(1) << 30;
constexpr uint64_t kAutoLaneBits = 16384;
constexpr uint32_t kAutoMaxLanes = 32;
constexpr uint32_t kMaxOpsPerSymbol = 4;  // escape symbol + 5-bit m + at most two chunks (m <= 31)
constexpr uint32_t kEscapeFlag = 0x80000000u;

// Error codes shared by every implementation (0 = ok).
enum Status : int { kOk = 0, kCorrupt = 1, kTruncated = 2 };

// ---------------------------------------------------------------------------------------------
// Prepared tables
// ---------------------------------------------------------------------------------------------

// Division-free encoder symbol (16 bytes).
struct EncSym {
    uint64_t rcp;    // ceil(2^64 / freq), or 2^64 - 1 for freq == 1
    uint32_t bias;   // start, or start + 2^16 - 1 for freq == 1
    uint16_t freq;   // 1..65535
    uint16_t cmpl;   // 2^16 - freq
};

// Per-table info (16 bytes). Entry s of table t lives at cdf[base + s] / enc[base + s].
struct TableInfo {
    uint32_t base;      // into cdf / enc (n + 1 entries per table)
    uint32_t lut_base;  // into lut (2^(16 - shift) entries per table)
    int32_t offset;     // value coded by entry 0
    uint16_t n;         // entries including the escape (2..4096)
    uint8_t shift;      // bucket = slot >> shift
    uint8_t pad;
};

RANS_HD EncSym make_enc_sym(uint32_t start, uint32_t freq) {
    EncSym s;
    s.freq = (uint16_t)freq;
    s.cmpl = (uint16_t)(65536u - freq);
    if (freq < 2) {
        s.rcp = ~0ull;
        s.bias = start + 65535u;
    } else {
        s.rcp = (~0ull) / freq + 1;  // == ceil(2^64 / freq)
        s.bias = start;
    }
    return s;
}

RANS_HD uint32_t mulhi_u32_u64(uint32_t x, uint64_t r) {
#if defined(__CUDA_ARCH__)
    return (uint32_t)__umul64hi((unsigned long long)x, (unsigned long long)r);
#elif defined(__SIZEOF_INT128__)
    return (uint32_t)(((unsigned __int128)x * r) >> 64);
#else
    uint64_t lo = (uint64_t)x * (uint32_t)r;
    uint64_t hi = (uint64_t)x * (uint32_t)(r >> 32);
    return (uint32_t)((hi + (lo >> 32)) >> 32);
#endif
}

RANS_HD uint32_t bit_length_u64(uint64_t v) {
#if defined(__CUDA_ARCH__)
    return 64u - (uint32_t)__clzll((long long)v);
#elif defined(__GNUC__)
    return v ? 64u - (uint32_t)__builtin_clzll(v) : 0u;
#else
    uint32_t b = 0;
    while (v) { ++b; v >>= 1; }
    return b;
#endif
}

// Integer cost estimate of an op for the auto-lane policy: PREC - floor(log2 freq).
RANS_HD uint32_t op_cost_bits(uint32_t freq) { return kPrec - (bit_length_u64(freq) - 1); }

// Auto lanes: largest power of two <= bits / 16384, clamped to 1..32 (constants.auto_lanes).
RANS_HD uint32_t auto_lanes(uint64_t estimated_bits) {
    uint64_t q = estimated_bits / kAutoLaneBits;
    if (q < 1) return 1;
    uint64_t p = 1ull << (bit_length_u64(q) - 1);
    return p < kAutoMaxLanes ? (uint32_t)p : kAutoMaxLanes;
}

// ---------------------------------------------------------------------------------------------
// Encoder (words are written backwards: *--p)
// ---------------------------------------------------------------------------------------------

// Encodes one op. Branchless renormalisation: p[-1] is always written, so the word before the
// lane's buffer must be writable scratch.
RANS_HD void enc_put(uint32_t& x, uint16_t*& p, const EncSym& s) {
    uint32_t x_max = (uint32_t)s.freq << 16;
    uint32_t r = x >= x_max ? 1u : 0u;
    p[-1] = (uint16_t)x;
    p -= r;
    x = r ? (x >> 16) : x;
    uint32_t q = mulhi_u32_u64(x, s.rcp);
    x = x + s.bias + q * (uint32_t)s.cmpl;
}

// Encodes a `bits`-bit uniform value (1 <= bits <= 16): start = v << (16 - bits), freq = 2^(16-bits).
RANS_HD void enc_uniform(uint32_t& x, uint16_t*& p, uint32_t value, uint32_t bits) {
    uint32_t sh = kPrec - bits;
    uint32_t freq = 1u << sh;
    uint32_t r = (x >> 16) >= freq ? 1u : 0u;  // x >= freq << 16 (freq << 16 may be 2^32)
    p[-1] = (uint16_t)x;
    p -= r;
    x = r ? (x >> 16) : x;
    x = ((x >> sh) << kPrec) + (x & (freq - 1)) + (value << sh);
}

// Zig-zagged escape code of a value outside table [offset, offset + n - 1): e = u + 1 and
// m = bit_length(e) - 1 (0..31).
RANS_HD void escape_code(int64_t v, int32_t offset, uint32_t n, uint64_t& e, uint32_t& m) {
    int64_t i = v - offset;
    uint64_t u = i < 0 ? 2ull * (uint64_t)((int64_t)offset - 1 - v)
                       : 2ull * (uint64_t)(v - ((int64_t)offset + n - 1)) + 1ull;
    e = u + 1;
    m = bit_length_u64(e) - 1;
}

// Encodes the ops of an escaped value (in reverse decode order): chunks, m, escape symbol.
RANS_HD void enc_escaped(uint32_t& x, uint16_t*& p, int64_t v, const TableInfo& ti, const EncSym* enc) {
    uint64_t e;
    uint32_t m;
    escape_code(v, ti.offset, ti.n, e, m);
    if (m > 16) enc_uniform(x, p, (uint32_t)(e >> 16) & ((1u << (m - 16)) - 1u), m - 16);
    if (m > 0) {
        uint32_t k = m < 16 ? m : 16;
        enc_uniform(x, p, (uint32_t)e & ((1u << k) - 1u), k);
    }
    enc_uniform(x, p, m, 5);
    enc_put(x, p, enc[ti.base + ti.n - 1]);
}

// ---------------------------------------------------------------------------------------------
// Decoder (words are read forwards: *p++)
// ---------------------------------------------------------------------------------------------

// Renormalisation. On the CPU it is branch-free: *p is always read, so the word buffer needs padding
// past every lane's end (the caller bounds how far a lane can overrun before it checks). On the GPU
// a word is loaded only when needed: a few threads of a warp at a time, not one load per symbol.
RANS_HD void dec_renorm(uint32_t& x, const uint16_t*& p) {
#if defined(__CUDA_ARCH__)
    if (x < kRansL) x = (x << 16) | *p++;
#else
    uint32_t w = *p;
    bool need = x < kRansL;
    x = need ? ((x << 16) | w) : x;
    p += need ? 1 : 0;
#endif
}

// Slot -> entry of table `ti`: bucket lookup, then a short forward scan.
RANS_HD uint32_t dec_find(uint32_t slot, const TableInfo& ti, const uint32_t* cdf, const uint16_t* lut,
                          uint32_t& start, uint32_t& freq) {
    const uint32_t* c = cdf + ti.base;
    uint32_t s = lut[ti.lut_base + (slot >> ti.shift)];
    s += slot >= c[s + 1] ? 1u : 0u;
    while (slot >= c[s + 1]) ++s;
    start = c[s];
    freq = c[s + 1] - start;
    return s;
}

RANS_HD uint32_t dec_uniform(uint32_t& x, const uint16_t*& p, uint32_t bits) {
    uint32_t sh = kPrec - bits;
    uint32_t slot = x & kMask;
    uint32_t value = slot >> sh;
    x = ((x >> 16) << sh) + (slot & ((1u << sh) - 1u));
    dec_renorm(x, p);
    return value;
}

// Decodes the bypass ops after an escape entry; returns the value (caller checks its magnitude).
RANS_HD int64_t dec_escaped(uint32_t& x, const uint16_t*& p, const TableInfo& ti) {
    uint32_t m = dec_uniform(x, p, 5);
    uint64_t e = 0;
    if (m > 0) {
        uint32_t k = m < 16 ? m : 16;
        e = dec_uniform(x, p, k);
        if (m > 16) e |= (uint64_t)dec_uniform(x, p, m - 16) << 16;
    }
    uint64_t u = (e | (1ull << m)) - 1ull;
    int64_t v = (u & 1ull) ? (int64_t)ti.offset + (int64_t)ti.n - 1 + (int64_t)(u >> 1)
                           : (int64_t)ti.offset - 1 - (int64_t)(u >> 1);
    return v;
}

// The value after an escape entry into `out` (wrapped to int32 when out of range); returns whether it
// is within +-kMaxSymbolMagnitude (if not, the payload is corrupt).
RANS_HD bool dec_escaped_value(uint32_t& x, const uint16_t*& p, const TableInfo& ti, int32_t& out) {
    const int64_t v = dec_escaped(x, p, ti);
    out = (int32_t)v;
    return v <= kMaxSymbolMagnitude && v >= -kMaxSymbolMagnitude;
}

// Decodes one value of table `ti` on a lane. Returns false if an escaped value is out of range.
RANS_HD bool dec_value(uint32_t& x, const uint16_t*& p, const TableInfo& ti, const uint32_t* cdf,
                       const uint16_t* lut, int32_t& out) {
    uint32_t slot = x & kMask, start, freq;
    uint32_t s = dec_find(slot, ti, cdf, lut, start, freq);
    x = freq * (x >> 16) + slot - start;
    dec_renorm(x, p);
    if (s + 1 == ti.n) return dec_escaped_value(x, p, ti, out);
    out = ti.offset + (int32_t)s;
    return true;
}

// Encoder-side entry of a value: base + i for an in-support value, or the escape entry with
// kEscapeFlag set (the op's cost is that of the escape entry).
RANS_HD uint32_t enc_entry(int64_t v, const TableInfo& ti) {
    int64_t i = v - ti.offset;
    if (i >= 0 && i < (int64_t)ti.n - 1) return ti.base + (uint32_t)i;
    return (ti.base + ti.n - 1) | kEscapeFlag;
}

// ---------------------------------------------------------------------------------------------
// Little helpers for the payload's framing (host side; read_varint also runs on the GPU)
// ---------------------------------------------------------------------------------------------

// Reads an unsigned LEB128 varint (< 2^32, at most 5 bytes) like entropy/varint.py.
RANS_HD Status read_varint(const uint8_t* buf, size_t len, size_t& pos, uint32_t& value) {
    uint64_t v = 0;
    for (int i = 0; i < 5; ++i) {
        if (pos + i >= len) return kTruncated;
        uint8_t b = buf[pos + i];
        v |= (uint64_t)(b & 0x7F) << (7 * i);
        if (!(b & 0x80)) {
            if (v >= (1ull << 32)) break;
            value = (uint32_t)v;
            pos += i + 1;
            return kOk;
        }
    }
    return kCorrupt;
}

inline void write_varint(std::vector<uint8_t>& out, uint32_t v) {
    while (v >= 0x80) {
        out.push_back((uint8_t)((v & 0x7F) | 0x80));
        v >>= 7;
    }
    out.push_back((uint8_t)v);
}

inline size_t varint_size(uint32_t v) {
    size_t n = 1;
    while (v >= 0x80) { v >>= 7; ++n; }
    return n;
}

inline size_t write_varint(uint8_t* out, uint32_t v) {
    size_t n = 0;
    while (v >= 0x80) {
        out[n++] = (uint8_t)((v & 0x7F) | 0x80);
        v >>= 7;
    }
    out[n++] = (uint8_t)v;
    return n;
}

// ---------------------------------------------------------------------------------------------
// The decoders' view of the payload framing, shared by the CPU decoder and the CUDA one (which runs
// seg_head on the GPU and parse_head on the host): the same checks in the same order, so every
// decoder gives a hostile stream the same error and message.
// ---------------------------------------------------------------------------------------------

struct DecError {
    int status = kOk;  // kOk, kCorrupt, kTruncated (or the CPU coder's kBadIndex, kNoMemory)
    const char* msg = "";
};

inline DecError dec_fail(int st, const char* m) { return DecError{st, m}; }

inline DecError varint_fail(int st) {
    return st == kTruncated ? dec_fail(st, "stream ends inside a length field")
                            : dec_fail(st, "malformed length field (varint)");
}

// A segment's body: byte offset in the payload and length.
struct SegSpan {
    uint64_t body;
    uint32_t len;
    uint32_t pad;
};

// Outcome of a segment's parse (seg_head / seg_lanes); seg_error gives the CPU decoder's error.
enum SegCode : int {
    kSegOk = 0,
    kSegVarintTruncated = 1,
    kSegVarintCorrupt = 2,
    kSegBadLanes = 3,
    kSegHeaderShort = 4,
    kSegCountMismatch = 5,
    kSegBadState = 6,
};

// The SegCode of a failed read_varint status.
RANS_HD int seg_varint_code(int st) { return st == kTruncated ? kSegVarintTruncated : kSegVarintCorrupt; }

inline DecError seg_error(int code) {
    switch (code) {
        case kSegOk:
            return DecError{};
        case kSegVarintTruncated:
            return varint_fail(kTruncated);
        case kSegVarintCorrupt:
            return varint_fail(kCorrupt);
        case kSegBadLanes:
            return dec_fail(kCorrupt, "segment declares an impossible number of lanes");
        case kSegHeaderShort:
            return dec_fail(kCorrupt, "segment header is cut short");
        case kSegCountMismatch:
            return dec_fail(kCorrupt, "segment word counts do not match its length");
        default:
            return dec_fail(kCorrupt, "rANS lane state out of range");
    }
}

// A segment body's head (one GPU thread per segment, or the CPU decoder): its number of lanes k
// (cnt = its symbols) and, in bp, the offset of the lane states; a SegCode.
RANS_HD int seg_head(const uint8_t* body, size_t blen, size_t cnt, uint32_t& k, size_t& bp) {
    bp = 0;
    k = 0;
    const int st = read_varint(body, blen, bp, k);
    if (st) return seg_varint_code(st);
    const size_t max_k = cnt < kMaxLanes ? cnt : kMaxLanes;
    if (k < 1 || k > max_k) return kSegBadLanes;
    if (bp + 4 * (size_t)k > blen) return kSegHeaderShort;
    return kSegOk;
}

// Bytes of the head the parse can need after the two sizes (each varint has at most 5 bytes).
constexpr size_t kHeadSizes = 10;

// Parses the head of a len-byte payload of n symbols from its first `avail` bytes (head). When
// avail < need on return (status ok), the caller supplies the first `need` bytes and calls again;
// otherwise the result is final: seg_n and one span per segment, or the CPU decoder's error.
inline DecError parse_head(const uint8_t* head, size_t avail, size_t len, size_t n, size_t& need, uint64_t& seg_n,
                             std::vector<SegSpan>& spans) {
    spans.clear();
    need = std::min(len, kHeadSizes);
    if (avail < need) return DecError{};
    size_t pos = 0;
    uint32_t n_stream = 0, seg = 0;
    int st = read_varint(head, avail, pos, n_stream);
    if (!st) st = read_varint(head, avail, pos, seg);
    if (st) return varint_fail(st);
    if (n_stream != n) return dec_fail(kCorrupt, "payload holds a different number of symbols than expected");
    if (seg < 1) return dec_fail(kCorrupt, "segment size is 0");
    seg_n = seg;
    const size_t n_seg = (size_t)((n + seg - 1) / seg);
    need = std::min(len, pos + 5 * n_seg);
    if (avail < need) return DecError{};
    uint64_t sum = 0;
    for (size_t s = 0; s < n_seg; ++s) {  // grows with the bytes actually parsed, not with n_seg
        uint32_t length;
        st = read_varint(head, avail, pos, length);
        if (st) return varint_fail(st);
        spans.push_back(SegSpan{sum, length, 0});
        sum += length;
    }
    if (pos + sum > len) return dec_fail(kTruncated, "rANS payload is shorter than its segment table says");
    if (pos + sum < len) return dec_fail(kCorrupt, "rANS payload has trailing bytes");
    for (auto& sp : spans) sp.body += pos;
    return DecError{};
}

// Host-side prepared tables (plain vectors; the CUDA module uploads them).
struct Prepared {
    uint32_t T = 0;
    std::vector<TableInfo> info;
    std::vector<uint32_t> cdf;  // n + 1 entries per table
    std::vector<EncSym> enc;    // same indexing as cdf (entry n unused)
    std::vector<uint16_t> lut;  // 2^(16 - shift) buckets per table: entry holding the bucket's first slot
    std::vector<uint8_t> cost;  // op_cost_bits of every entry (auto-lane estimate), same indexing as cdf
};

// Validates (like TableSet.validate: the tables may be untrusted) and prepares tables.
// Returns an empty string on success, else the reason.
inline std::string prepare_tables(const int32_t* cdf, int64_t T, int64_t W, const int32_t* sizes,
                                  const int32_t* offsets, Prepared& out) {
    if (T < 1) return "tables: need at least one table";
    if (T > (1 << 20)) return "tables: too many tables";
    int64_t max_size = 0;
    for (int64_t t = 0; t < T; ++t) {
        if (sizes[t] < 2 || sizes[t] > (int32_t)kMaxTableSize)
            return "tables: sizes must be in 2..4096 and fit the CDF width";
        if (sizes[t] > max_size) max_size = sizes[t];
    }
    if (W < max_size + 1) return "tables: sizes must be in 2..4096 and fit the CDF width";
    for (int64_t t = 0; t < T; ++t) {
        int64_t o = offsets[t];
        if (o > kMaxTableOffset || o < -kMaxTableOffset) return "tables: offsets must be within +-2**20";
    }
    for (int64_t t = 0; t < T; ++t) {
        const int32_t* c = cdf + t * W;
        if (c[0] != 0 || c[sizes[t]] != (1 << kPrec)) return "tables: every CDF must run from 0 to 2**16";
    }
    for (int64_t t = 0; t < T; ++t) {
        const int32_t* c = cdf + t * W;
        for (int32_t s = 0; s < sizes[t]; ++s)
            if (c[s + 1] <= c[s])
                return "tables: CDF " + std::to_string(t) + " is not strictly increasing (a zero frequency)";
    }
    out.T = (uint32_t)T;
    out.info.assign((size_t)T, TableInfo{});
    size_t total = 0, total_lut = 0;
    for (int64_t t = 0; t < T; ++t) {
        uint32_t n = (uint32_t)sizes[t];
        uint32_t kb = bit_length_u64(n - 1) + NCODEC_LUT_EXTRA;  // >= 16 buckets per entry
        if (kb > 12) kb = 12;
        TableInfo& ti = out.info[(size_t)t];
        ti.base = (uint32_t)total;
        ti.lut_base = (uint32_t)total_lut;
        ti.offset = offsets[t];
        ti.n = (uint16_t)n;
        ti.shift = (uint8_t)(kPrec - kb);
        ti.pad = 0;
        total += n + 1;
        total_lut += (size_t)1 << kb;
    }
    out.cdf.resize(total);
    out.enc.resize(total);
    out.lut.resize(total_lut);
    out.cost.resize(total);
    for (int64_t t = 0; t < T; ++t) {
        const TableInfo& ti = out.info[(size_t)t];
        const int32_t* c = cdf + t * W;
        for (uint32_t s = 0; s <= ti.n; ++s) out.cdf[ti.base + s] = (uint32_t)c[s];
        for (uint32_t s = 0; s < ti.n; ++s)
            out.enc[ti.base + s] = make_enc_sym((uint32_t)c[s], (uint32_t)(c[s + 1] - c[s]));
        out.enc[ti.base + ti.n] = make_enc_sym(0, 1);
        for (uint32_t s = 0; s < ti.n; ++s) out.cost[ti.base + s] = (uint8_t)op_cost_bits((uint32_t)(c[s + 1] - c[s]));
        out.cost[ti.base + ti.n] = 0;
        uint32_t buckets = 1u << (kPrec - ti.shift);
        uint32_t s = 0;
        for (uint32_t b = 0; b < buckets; ++b) {
            uint32_t slot = b << ti.shift;
            while ((uint32_t)c[s + 1] <= slot) ++s;
            out.lut[ti.lut_base + b] = (uint16_t)s;
        }
    }
    return std::string();
}

// ---------------------------------------------------------------------------------------------
// Packed decoder tables (the CPU's AVX2 rows and the GPU): fewer and independent loads per symbol
// ---------------------------------------------------------------------------------------------

// Raw pointers to packed tables (host or device memory).
struct PackedView {
    const uint32_t* lut_shift;
    const int32_t* value;
    const uint32_t* bucket;
    const uint32_t* entry;
};

// Structure-of-arrays copies of prepared tables, in packed forms that need every entry number (all
// tables together) below 2^16 and every bucket number below 2^27 (`usable`); larger table sets
// decode with the plain tables.
struct PackedTables {
    std::vector<uint32_t> lut_shift;  // per table: first bucket (in `bucket`) | bucket shift << 27
    std::vector<int32_t> value;       // per table: offset - base (value = entry number + value)
    std::vector<uint32_t> bucket;     // per bucket: entry number of its first entry s | (cdf[s + 1] - 1) << 16
    std::vector<uint32_t> entry;      // per entry: start | freq << 16 (freq <= 65535)
    bool usable = false;

    PackedView view() const { return PackedView{lut_shift.data(), value.data(), bucket.data(), entry.data()}; }
};

// Buckets per table are those of the prepared tables (up to 2^12), or 2^max_bucket_bits where that
// is fewer: coarser buckets make a smaller bucket array (for a GPU's L1: 64 tables of 2^8 buckets
// are 64 KiB) at the price of more second scan steps. Decoding gives the same symbols either way.
inline void build_packed_tables(const Prepared& P, PackedTables& S, uint32_t max_bucket_bits = 12) {
    const size_t T = P.info.size();
    auto bucket_bits = [&](const TableInfo& ti) { return std::min<uint32_t>(kPrec - ti.shift, max_bucket_bits); };
    S.lut_shift.assign(T, 0);
    S.value.assign(T, 0);
    S.bucket.clear();
    S.entry.assign(P.cdf.size(), 0);
    size_t total = 0;
    for (const TableInfo& ti : P.info) total += (size_t)1 << bucket_bits(ti);
    S.usable = P.cdf.size() <= (size_t(1) << 16) && total < (size_t(1) << 27);
    if (!S.usable) return;
    S.bucket.resize(total);
    uint32_t base = 0;
    for (size_t t = 0; t < T; ++t) {
        const TableInfo& ti = P.info[t];
        const uint32_t kb = bucket_bits(ti), shift = kPrec - kb;
        S.lut_shift[t] = base | shift << 27;
        S.value[t] = (int32_t)((uint32_t)ti.offset - ti.base);
        const uint32_t* c = P.cdf.data() + ti.base;
        for (uint32_t s = 0; s < ti.n; ++s) S.entry[ti.base + s] = c[s] | (c[s + 1] - c[s]) << 16;
        for (uint32_t b = 0; b < (1u << kb); ++b) {
            // The entry holding the bucket's first slot (a prepared bucket starts at that slot too).
            const uint32_t s = P.lut[ti.lut_base + ((b << shift) >> ti.shift)];
            S.bucket[base + b] = (ti.base + s) | (c[s + 1] - 1) << 16;
        }
        base += 1u << kb;
    }
}

// dec_value with packed tables: the bucket entry settles the first scan step, so a symbol costs two
// dependent loads (bucket, entry) instead of three or four. Same result as dec_value.
RANS_HD bool dec_value_packed(uint32_t& x, const uint16_t*& p, uint32_t t, const PackedView& pk,
                              const TableInfo* info, const uint32_t* cdf, int32_t& out) {
    const uint32_t slot = x & kMask;
    const uint32_t ls = pk.lut_shift[t];
    const uint32_t e = pk.bucket[(ls & ((1u << 27) - 1)) + (slot >> (ls >> 27))];
    uint32_t a = (e & kMask) + (slot > (e >> 16) ? 1u : 0u);
    uint32_t d = pk.entry[a];
    if (slot >= (d & kMask) + (d >> 16)) {  // rare (~0.3 %): another boundary inside the bucket
        while (slot >= cdf[a + 1]) ++a;
        d = pk.entry[a];
    }
    const uint32_t start = d & kMask, freq = d >> 16;
    x = freq * (x >> 16) + slot - start;
    dec_renorm(x, p);
    if (start + freq == (1u << kPrec)) return dec_escaped_value(x, p, info[t], out);  // the escape entry
    out = (int32_t)(a + (uint32_t)pk.value[t]);
    return true;
}

}  // namespace rans
}  // namespace ncodec
