// The CUDA coder's per-thread lane bodies and its host-side framing (parse / plan / assemble),
// free of CUDA API calls: rans_cuda.cu's kernels and host code call them (and fuzz_driver.cpp
// runs all of that on the CPU under sanitizers, with emu/cuda_runtime.h standing in for CUDA).
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

#include "rans.hpp"

#if defined(__CUDACC__)
#define RANS_UNROLL _Pragma("unroll")
#else
#define RANS_UNROLL
#endif

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
// The table indexes of the next kIdxAhead symbols are loaded ahead: they do not depend on the lane
// state, so their memory latency overlaps the decode chain instead of starting every symbol's. With
// L1-resident tables a symbol's chain is on the order of 100 cycles, and a load from HBM takes
// several hundred: 8 symbols ahead covers it where 4 would not (38 registers, no spills, sm_90).
// With packed tables (`packed`: the table set allows them) a symbol costs two dependent loads.
constexpr int kIdxAhead = 8;
RANS_HD int decode_lane(const DecodeLane& L, const uint16_t* words, const int32_t* idx, int32_t* out,
                        const TableInfo* info, const uint32_t* cdf, const uint16_t* lut, uint32_t T,
                        const PackedView pk, bool packed) {
    const uint16_t* p = words + L.word_off;
    const uint16_t* end = p + L.count;
    uint32_t x = L.state;
    const int32_t* ip = idx + L.seg_start;
    int32_t* op = out + L.seg_start;
    uint32_t ahead[kIdxAhead];
RANS_UNROLL
    for (int a = 0; a < kIdxAhead; ++a) {
        const uint64_t ja = L.l + (uint64_t)a * L.k;
        ahead[a] = ja < L.seg_count ? (uint32_t)ip[ja] : 0u;
    }
    for (uint64_t j = L.l; j < L.seg_count; j += L.k) {
        const uint32_t t = ahead[0];
RANS_UNROLL
        for (int a = 0; a + 1 < kIdxAhead; ++a) ahead[a] = ahead[a + 1];
        const uint64_t jn = j + (uint64_t)kIdxAhead * L.k;
        ahead[kIdxAhead - 1] = jn < L.seg_count ? (uint32_t)ip[jn] : 0u;
        if (t >= T) return 2;
        int32_t v;
        const bool ok = packed ? dec_value_packed(x, p, t, pk, info, cdf, v) : dec_value(x, p, info[t], cdf, lut, v);
        if (!ok || p > end) return 1;  // escaped value out of range, or the lane ran out of words
        op[j] = v;
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
// Decoder framing, parsed where the payload lies (on the GPU): the host reads only the head
// (parse_head, rans.hpp: symbol count, segment size, segment lengths); one GPU thread per segment
// then parses the segment's lane table (seg_head, rans.hpp, then seg_lanes), a block per segment
// packs its words to 16-bit alignment (pack_word) and one thread per lane decodes (decode_lane).
// Every check and message is the CPU decoder's, applied in the same order, so the first failing
// segment gives the same error.
// ---------------------------------------------------------------------------------------------

// Symbols in segment s.
RANS_HD uint32_t seg_symbols(uint64_t s, uint64_t seg_n, uint64_t n) {
    const uint64_t rest = n - s * seg_n;
    return (uint32_t)(rest < seg_n ? rest : seg_n);
}

RANS_HD uint32_t load_u32le(const uint8_t* b) {
    return (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
}

// Stage 2 (one thread per segment whose head parsed): validates the lane states and word counts
// and writes the segment's k lanes to lanes[0, k). A failing segment gets empty lanes, so that the
// decode kernel stays in bounds. body_off is the body's offset in the payload; the segment's words
// (n_words of them, from payload byte words_byte) are packed to word (words_byte + 1) / 2, which
// keeps segments disjoint (their word regions are at least 6 header bytes apart).
RANS_HD int seg_lanes(const uint8_t* body, uint64_t body_off, uint32_t blen, uint64_t seg_start, uint32_t cnt,
                      uint32_t k, DecodeLane* lanes, uint64_t& words_byte, uint64_t& n_words) {
    size_t bp = 0;
    uint32_t kk = 0;
    read_varint(body, blen, bp, kk);  // checked by seg_head
    const size_t states = bp;
    bp += 4 * (size_t)k;
    uint64_t total = 0;
    int code = kSegOk;
    const size_t counts = bp;
    for (uint32_t l = 0; l < k && code == kSegOk; ++l) {
        uint32_t c = 0;
        const int st = read_varint(body, blen, bp, c);
        if (st) code = seg_varint_code(st);
        total += c;
    }
    if (code == kSegOk && bp + 2 * total != blen) code = kSegCountMismatch;
    for (uint32_t l = 0; l < k && code == kSegOk; ++l)
        if (load_u32le(body + states + 4 * (size_t)l) < kRansL) code = kSegBadState;
    words_byte = body_off + bp;
    n_words = code == kSegOk ? total : 0;
    uint64_t off = (words_byte + 1) / 2;
    size_t cp = counts;
    for (uint32_t l = 0; l < k; ++l) {
        DecodeLane L{};
        L.k = k;
        L.l = l;
        L.seg_start = seg_start;
        if (code == kSegOk) {
            uint32_t c = 0;
            read_varint(body, blen, cp, c);
            L.word_off = off;
            L.count = c;
            L.state = load_u32le(body + states + 4 * (size_t)l);
            L.seg_count = cnt;
            off += c;
        } else {
            L.state = kRansL;  // an empty lane: no symbols, no words
        }
        lanes[l] = L;
    }
    return code;
}

// Word i of a segment's words that start at payload byte words_byte (little endian, any alignment).
RANS_HD uint16_t pack_word(const uint8_t* payload, uint64_t words_byte, uint64_t i) {
    const uint8_t* b = payload + words_byte + 2 * i;
    return (uint16_t)(b[0] | b[1] << 8);
}

// Packed words of a len-byte payload: every segment's words plus kWordPad words of over-read room.
inline uint64_t packed_words(size_t len) { return (uint64_t)(len + 1) / 2 + 1 + kWordPad; }

// ---------------------------------------------------------------------------------------------
// Encoder, host side
// ---------------------------------------------------------------------------------------------

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
