// The CUDA coder's per-thread lane bodies and its host-side framing (parse / plan / assemble),
// kept free of CUDA API calls so that fuzz_driver.cpp can run the exact same logic on the CPU
// (an emulation of the kernels, one loop iteration per GPU thread) under sanitizers.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

#include "rans.hpp"

namespace ncodec {
namespace rans {
namespace gpu {

// One lane of a parsed payload (the host parses the framing, the GPU decodes the lanes).
struct DecodeLane {
    uint64_t word_off;   // first word of the lane in the packed word array
    uint64_t seg_start;  // first symbol of its segment
    uint32_t count;      // words of the lane
    uint32_t state;      // final encoder state
    uint32_t seg_count;  // symbols in the segment
    uint32_t k;          // lanes of the segment
    uint32_t l;          // this lane's number in the segment
    uint32_t pad;
};

// One lane to encode: its words go backwards into scratch[region_end - 4 * symbols, region_end),
// preceded by one slack word (enc_put always writes p[-1]).
struct EncodeLane {
    uint64_t seg_start;
    uint64_t region_end;
    uint32_t seg_count, k, l, pad;
};

constexpr size_t kWordPad = 16;  // words after the packed lanes: a lane reads <= 4 past its end

// Lane decode (one GPU thread). Returns 0, 1 (corrupt) or 2 (index out of range).
RANS_HD int decode_lane(const DecodeLane& L, const uint16_t* words, const int32_t* idx, int32_t* out,
                        const TableInfo* info, const uint32_t* cdf, const uint16_t* lut, uint32_t T) {
    const uint16_t* p = words + L.word_off;
    const uint16_t* end = p + L.count;
    uint32_t x = L.state;
    for (uint64_t j = L.l; j < L.seg_count; j += L.k) {
        const uint64_t gj = L.seg_start + j;
        const uint32_t t = (uint32_t)idx[gj];
        if (t >= T) return 2;
        int32_t v;
        const bool ok = dec_value(x, p, info[t], cdf, lut, v);
        if (!ok || p > end) return 1;  // escaped value out of range, or the lane ran out of words
        out[gj] = v;
    }
    return (x != kRansL || p != end) ? 1 : 0;
}

// Entry and auto-lane cost of symbol j (k_entries). err |= 1 for a bad index, 2 for a bad symbol.
RANS_HD uint32_t entry_and_cost(int32_t v, uint32_t t, const TableInfo* info, const uint8_t* cost, uint32_t T,
                                uint32_t& c, int& err) {
    if (t >= T) {
        err |= 1;
        t = 0;
    }
    if (v > (int32_t)kMaxSymbolMagnitude || v < -(int32_t)kMaxSymbolMagnitude) err |= 2;
    const uint32_t e = enc_entry(v, info[t]);
    c = cost[e & ~kEscapeFlag];
    return e;
}

// Lane encode (one GPU thread): final state and number of words written.
RANS_HD void encode_lane(const EncodeLane& L, const int32_t* sym, const int32_t* idx, const uint32_t* E,
                         const TableInfo* info, const EncSym* enc, uint16_t* scratch, uint32_t& state,
                         uint32_t& count) {
    uint16_t* end = scratch + L.region_end;
    uint16_t* p = end;
    uint32_t x = kRansL;
    const uint64_t cnt = (L.seg_count - L.l + L.k - 1) / L.k;
    for (uint64_t i = cnt; i-- > 0;) {
        const uint64_t j = L.seg_start + L.l + i * L.k;
        const uint32_t e = E[j];
        if (e & kEscapeFlag) {
            enc_escaped(x, p, sym[j], info[idx[j]], enc);
        } else {
            enc_put(x, p, enc[e]);
        }
    }
    state = x;
    count = (uint32_t)(end - p);
}

// ---------------------------------------------------------------------------------------------
// Host side
// ---------------------------------------------------------------------------------------------

struct ParseError {
    int status = kOk;  // kOk, kCorrupt or kTruncated
    const char* msg = "";
};

inline ParseError parse_fail(int st, const char* m) { return ParseError{st, m}; }

inline ParseError varint_fail(int st) {
    return st == kTruncated ? parse_fail(st, "stream ends inside a length field")
                            : parse_fail(st, "malformed length field (varint)");
}

// Parses a payload's framing with the CPU decoder's checks into a lane table and the packed words
// of every lane (words gets kWordPad zero words of padding at the end).
inline ParseError parse_payload(const uint8_t* data, size_t len, size_t n, std::vector<DecodeLane>& lanes,
                                std::vector<uint16_t>& words) {
    size_t pos = 0;
    uint32_t n_stream = 0, seg_n = 0;
    int st = read_varint(data, len, pos, n_stream);
    if (!st) st = read_varint(data, len, pos, seg_n);
    if (st) return varint_fail(st);
    if (n_stream != n) return parse_fail(kCorrupt, "payload holds a different number of symbols than expected");
    if (seg_n < 1) return parse_fail(kCorrupt, "segment size is 0");
    const size_t n_seg = (size_t)((n + seg_n - 1) / seg_n);
    std::vector<uint64_t> lengths(n_seg);
    uint64_t sum = 0;
    for (size_t s = 0; s < n_seg; ++s) {
        uint32_t length;
        st = read_varint(data, len, pos, length);
        if (st) return varint_fail(st);
        lengths[s] = length;
        sum += length;
    }
    if (pos + sum > len) return parse_fail(kTruncated, "rANS payload is shorter than its segment table says");
    if (pos + sum < len) return parse_fail(kCorrupt, "rANS payload has trailing bytes");
    lanes.clear();
    words.clear();
    words.reserve(len / 2 + kWordPad);
    for (size_t s = 0; s < n_seg; ++s) {
        const uint8_t* body = data + pos;
        const size_t blen = (size_t)lengths[s];
        pos += blen;
        const size_t s0 = s * (size_t)seg_n;
        const size_t cnt = std::min<size_t>(seg_n, n - s0);
        size_t bp = 0;
        uint32_t k;
        st = read_varint(body, blen, bp, k);
        if (st) return varint_fail(st);
        if (k < 1 || k > std::min<size_t>(kMaxLanes, cnt))
            return parse_fail(kCorrupt, "segment declares an impossible number of lanes");
        if (bp + 4 * (size_t)k > blen) return parse_fail(kCorrupt, "segment header is cut short");
        const size_t first = lanes.size();
        for (uint32_t l = 0; l < k; ++l) {
            DecodeLane L{};
            std::memcpy(&L.state, body + bp + 4 * l, 4);
            L.seg_start = s0;
            L.seg_count = (uint32_t)cnt;
            L.k = k;
            L.l = l;
            lanes.push_back(L);
        }
        bp += 4 * (size_t)k;
        uint64_t total = 0;
        for (uint32_t l = 0; l < k; ++l) {
            uint32_t c;
            st = read_varint(body, blen, bp, c);
            if (st) return varint_fail(st);
            lanes[first + l].count = c;
            total += c;
        }
        if (bp + 2 * total != blen) return parse_fail(kCorrupt, "segment word counts do not match its length");
        for (uint32_t l = 0; l < k; ++l)
            if (lanes[first + l].state < kRansL) return parse_fail(kCorrupt, "rANS lane state out of range");
        const size_t w0 = words.size();
        words.resize(w0 + (size_t)total);
        if (total) std::memcpy(words.data() + w0, body + bp, 2 * (size_t)total);
        uint64_t off = w0;
        for (uint32_t l = 0; l < k; ++l) {
            lanes[first + l].word_off = off;
            off += lanes[first + l].count;
        }
    }
    words.resize(words.size() + kWordPad, 0);
    return ParseError{};
}

// Lanes of every segment from the per-segment cost estimates; returns the scratch words needed.
inline uint64_t plan_encode(size_t n, uint64_t seg_n, uint32_t lanes, const std::vector<unsigned long long>& seg_cost,
                            std::vector<uint32_t>& seg_k, std::vector<EncodeLane>& tab) {
    const size_t n_seg = seg_cost.size();
    seg_k.resize(n_seg);
    tab.clear();
    uint64_t words = 0;
    for (size_t s = 0; s < n_seg; ++s) {
        const uint64_t s0 = s * seg_n;
        const uint32_t cnt = (uint32_t)std::min<uint64_t>(seg_n, n - s0);
        uint32_t k = lanes ? lanes : auto_lanes(seg_cost[s]);
        k = std::min<uint32_t>(k, cnt);
        seg_k[s] = k;
        for (uint32_t l = 0; l < k; ++l) {
            const uint64_t syms = (cnt - l + k - 1) / k;
            words += 1 + kMaxOpsPerSymbol * syms;
            tab.push_back(EncodeLane{s0, words, cnt, k, l, 0});
        }
    }
    return words;
}

// Offsets of each lane's words once packed; returns the total.
inline uint64_t pack_offsets(const std::vector<uint32_t>& count, std::vector<uint64_t>& out_off) {
    out_off.resize(count.size());
    uint64_t total = 0;
    for (size_t g = 0; g < count.size(); ++g) {
        out_off[g] = total;
        total += count[g];
    }
    return total;
}

// The payload bytes from the lanes' states, word counts and packed words (as the CPU coder).
inline void assemble(size_t n, uint64_t seg_n, const std::vector<uint32_t>& seg_k, const std::vector<uint32_t>& state,
                     const std::vector<uint32_t>& count, const std::vector<uint16_t>& words,
                     const std::vector<uint64_t>& out_off, std::vector<uint8_t>& out) {
    const size_t n_seg = seg_k.size();
    std::vector<size_t> body_len(n_seg);
    size_t g = 0;
    for (size_t s = 0; s < n_seg; ++s) {
        size_t len = varint_size(seg_k[s]) + 4 * (size_t)seg_k[s];
        for (uint32_t l = 0; l < seg_k[s]; ++l) len += varint_size(count[g + l]) + 2 * (size_t)count[g + l];
        body_len[s] = len;
        g += seg_k[s];
    }
    size_t total = varint_size((uint32_t)n) + varint_size((uint32_t)seg_n);
    for (size_t s = 0; s < n_seg; ++s) total += varint_size((uint32_t)body_len[s]) + body_len[s];
    out.resize(total);
    uint8_t* o = out.data();
    o += write_varint(o, (uint32_t)n);
    o += write_varint(o, (uint32_t)seg_n);
    for (size_t s = 0; s < n_seg; ++s) o += write_varint(o, (uint32_t)body_len[s]);
    g = 0;
    for (size_t s = 0; s < n_seg; ++s) {
        const uint32_t k = seg_k[s];
        o += write_varint(o, k);
        for (uint32_t l = 0; l < k; ++l) {
            std::memcpy(o, &state[g + l], 4);
            o += 4;
        }
        for (uint32_t l = 0; l < k; ++l) o += write_varint(o, count[g + l]);
        for (uint32_t l = 0; l < k; ++l) {
            if (count[g + l]) std::memcpy(o, words.data() + out_off[g + l], 2 * (size_t)count[g + l]);
            o += 2 * (size_t)count[g + l];
        }
        g += k;
    }
}

}  // namespace gpu
}  // namespace rans
}  // namespace ncodec
