// Standalone robustness driver for the rANS coders, meant to be built with sanitizers:
//   g++ -std=c++17 -O1 -g -fsanitize=address,undefined -fno-sanitize-recover=all
//       -I entropy/csrc/emu -I entropy/csrc entropy/csrc/fuzz_driver.cpp -o fuzz_driver -lpthread
//   ./fuzz_driver [iterations] [seed]
// Encodes random symbols with random tables, checks the round trip, then decodes thousands of
// truncated, bit-flipped, spliced and random streams: each must return a status, never crash or
// touch memory out of bounds. The CUDA coder (rans_cuda.cu itself: its host code and kernels, on
// the CPU stand-in for the CUDA runtime in emu/, each kernel's threads run one after another) must
// give the CPU coder's bytes, symbols and verdicts (status, and the message of a framing error),
// from host bytes and from a payload left on the "device". Exits 0 on success, 1 on a mismatch.
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "rans_cpu.hpp"
// The CUDA coder's host code and kernels, compiled for the CPU against emu/cuda_runtime.h (its
// directory comes first on the include path): each kernel's threads run one after another.
#include "rans_cuda.cu"

using namespace ncodec::rans;

namespace {

struct Rng {
    uint64_t s;
    uint64_t next() {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        return s;
    }
    uint32_t below(uint32_t n) { return n ? (uint32_t)(next() % n) : 0; }
};

Prepared random_tables(Rng& r, uint32_t& T_out) {
    const uint32_t T = 1 + r.below(4);
    const uint32_t W = 2 + r.below(r.below(4) == 0 ? 600 : 40);
    std::vector<int32_t> cdf((size_t)T * (W + 1), 1 << 16), sizes(T), offsets(T);
    for (uint32_t t = 0; t < T; ++t) {
        uint32_t n = 2 + r.below(W - 1);
        sizes[t] = (int32_t)n;
        offsets[t] = (int32_t)r.below(1 << 21) - (1 << 20);
        if (r.below(2)) offsets[t] = -(int32_t)(n / 2);
        // n - 1 distinct cut points in 1..65535
        std::vector<int32_t> cuts;
        while (cuts.size() < n - 1) {
            int32_t c = 1 + (int32_t)r.below(65535);
            if (r.below(3) == 0) c = 1 + (int32_t)r.below(64);  // tiny frequencies too
            bool dup = false;
            for (int32_t x : cuts) dup |= x == c;
            if (!dup) cuts.push_back(c);
        }
        std::sort(cuts.begin(), cuts.end());
        int32_t* c = cdf.data() + (size_t)t * (W + 1);
        c[0] = 0;
        for (uint32_t s = 0; s + 1 < n; ++s) c[s + 1] = cuts[s];
        c[n] = 1 << 16;
    }
    Prepared p;
    std::string e = prepare_tables(cdf.data(), T, W + 1, sizes.data(), offsets.data(), p);
    if (!e.empty()) {
        std::fprintf(stderr, "table generation bug: %s\n", e.c_str());
        std::exit(2);
    }
    T_out = T;
    return p;
}

// The CUDA encoder: rans_cuda.cu's host code and kernels on the emulated runtime.
std::vector<uint8_t> gpu_emulated_encode(gpu::DeviceTables* t, const std::vector<int32_t>& sym,
                                         const std::vector<int32_t>& idx, uint32_t lanes, uint64_t seg_n) {
    std::vector<uint8_t> out;
    std::string err;
    const int st = gpu::encode(t, sym.data(), idx.data(), sym.size(), lanes, seg_n, 0, out, err);
    if (st != gpu::kGpuOk) {
        std::fprintf(stderr, "GPU (emulated) encoder: status %d %s\n", st, err.c_str());
        std::exit(1);
    }
    return out;
}

// The CUDA decoder (rans_cuda.cu on the emulated runtime), from host bytes or from a "device"
// payload (whose head the host reads in pieces). Returns the framing error (status and the CPU
// decoder's message) or, for a lane error, kCorrupt with an empty message.
DecError gpu_emulated_decode(gpu::DeviceTables* t, const uint8_t* data, size_t len, const std::vector<int32_t>& idx,
                             std::vector<int32_t>& out, bool device_payload) {
    const size_t n = idx.size();
    out.assign(std::max<size_t>(n, 1), 0);
    DecError pe;
    std::string err;
    const int st = gpu::decode(t, device_payload ? data : nullptr, device_payload ? nullptr : data, len, idx.data(),
                               out.data(), n, 0, pe, err);
    switch (st) {
        case gpu::kGpuOk:
            return DecError{};
        case gpu::kGpuParse:
            return pe;
        case gpu::kGpuCorrupt:
            return dec_fail(kCorrupt, "");
        case gpu::kGpuBadIndex:
            return bad_index_error();
        default:
            std::fprintf(stderr, "GPU (emulated) decoder: status %d %s\n", st, err.c_str());
            std::exit(1);
    }
}

// Runs the emulated GPU decoder and checks its verdict against the CPU decoder's (`cpu`): the same
// status, and the same message for a framing error. Returns true if the stream was accepted.
bool gpu_decode_checked(gpu::DeviceTables* t, const uint8_t* data, size_t len, const std::vector<int32_t>& idx,
                        const DecError& cpu, std::vector<int32_t>& out, bool device_payload) {
    const DecError got = gpu_emulated_decode(t, data, len, idx, out, device_payload);
    if (got.status != cpu.status || (*got.msg && std::strcmp(got.msg, cpu.msg) != 0)) {
        std::fprintf(stderr, "GPU (emulated) decoder says %d '%s', the CPU decoder %d '%s'\n", got.status, got.msg,
                     cpu.status, cpu.msg);
        std::exit(1);
    }
    return got.status == kOk;
}

}  // namespace

int main(int argc, char** argv) {
    const int iters = argc > 1 ? std::atoi(argv[1]) : 300;
    Rng r{argc > 2 ? (uint64_t)std::strtoull(argv[2], nullptr, 10) * 2654435761ull + 1 : 88172645463325252ull};
    size_t decoded = 0, rejected = 0;
    for (int it = 0; it < iters; ++it) {
        uint32_t T;
        Prepared P = random_tables(r, T);
        // Mostly small; now and then over 4,096 symbols, enough lanes for k_decode's large blocks.
        const size_t n = r.below(8) == 0 ? r.below(3) : r.below(64) == 0 ? 4096 + r.below(2000) : r.below(600);
        std::vector<int32_t> sym(n), idx(n);
        for (size_t j = 0; j < n; ++j) {
            uint32_t t = r.below(T);
            idx[j] = (int32_t)t;
            const TableInfo& ti = P.info[t];
            int64_t v = ti.offset + (int64_t)r.below(ti.n - 1);
            uint32_t k = r.below(20);
            if (k == 0) v = (int64_t)r.below(1u << 31) - (1 << 30);
            if (k == 1) v = ti.offset - 1 - r.below(50);
            if (k == 2) v = ti.offset + ti.n - 1 + r.below(50);
            if (v > kMaxSymbolMagnitude) v = kMaxSymbolMagnitude;
            if (v < -kMaxSymbolMagnitude) v = -kMaxSymbolMagnitude;
            sym[j] = (int32_t)v;
        }
        static const uint32_t lane_opts[] = {0, 0, 1, 2, 3, 8, 16, 32, 1024};
        static const uint32_t seg_opts[] = {1, 7, 64, 65536};
        const uint32_t lanes = lane_opts[r.below(9)];
        const uint32_t seg = seg_opts[r.below(4)];
        std::vector<uint8_t> payload;
        if (encode_payload(P, sym.data(), idx.data(), n, lanes, seg, 1 + r.below(2), payload) != kOk) {
            std::fprintf(stderr, "encode failed\n");
            return 1;
        }
        if (n) {  // a bad index or symbol anywhere: the same error from the scalar and AVX2 encoders
            std::vector<int32_t> bi = idx, bs = sym;
            bi[r.below((uint32_t)n)] = r.below(2) ? (int32_t)T : -1 - (int32_t)r.below(5);
            const int32_t big = (int32_t)kMaxSymbolMagnitude;
            bs[r.below((uint32_t)n)] = r.below(2) ? big + 1 : -big - 1;
            auto both_say = [&](const std::vector<int32_t>& s, const std::vector<int32_t>& i, int want) {
                std::vector<uint8_t> junk;
                const int a = encode_payload(P, s.data(), i.data(), n, lanes, seg, 1, junk, false);
                const int b = encode_payload(P, s.data(), i.data(), n, lanes, seg, 1, junk, true);
                if (a == want && b == want) return true;
                std::fprintf(stderr, "encoders disagree on bad input: %d vs %d (iteration %d)\n", a, b, it);
                return false;
            };
            if (!both_say(sym, bi, kBadIndex) || !both_say(bs, idx, kBadSymbol)) return 1;
        }
        PackedTables S;  // the AVX2 rows' tables, with buckets as prepared or coarser (more scan steps)
        build_packed_tables(P, S, r.below(3) ? 12 : 4 + r.below(8));
        if (n) {  // a bad index, with a good or a damaged stream: kBadIndex from both decoders
            std::vector<int32_t> bi = idx;
            bi[r.below((uint32_t)n)] = (int32_t)T + (int32_t)r.below(3);
            std::vector<uint8_t> damaged = payload;
            if (r.below(2) && !damaged.empty()) damaged[r.below((uint32_t)damaged.size())] ^= 0x40;
            std::vector<int32_t> o1(n), o2(n);
            const DecError a = decode_payload(P, damaged.data(), damaged.size(), bi.data(), n, o1.data(), 1);
            const DecError b = decode_payload(P, damaged.data(), damaged.size(), bi.data(), n, o2.data(), 2, &S);
            if (a.status != kBadIndex || b.status != kBadIndex) {
                std::fprintf(stderr, "a bad index gave %d / %d (iteration %d)\n", a.status, b.status, it);
                return 1;
            }
        }
        std::vector<uint8_t> vpayload;  // the AVX2 encoder (where the CPU has it): the same bytes
        if (encode_payload(P, sym.data(), idx.data(), n, lanes, seg, 1 + r.below(2), vpayload, true) != kOk ||
            vpayload != payload) {
            std::fprintf(stderr, "AVX2 and scalar encoders disagree (iteration %d)\n", it);
            return 1;
        }
        std::vector<int32_t> out(n + 1);
        DecError e = decode_payload(P, payload.data(), payload.size(), idx.data(), n, out.data(), 1 + r.below(2), &S);
        if (e.status != kOk || !std::equal(sym.begin(), sym.end(), out.begin())) {
            std::fprintf(stderr, "round trip failed (iteration %d): %s\n", it, e.msg);
            return 1;
        }
        std::string up_err;
        gpu::DeviceTables* dt = gpu::upload_tables(P, up_err, 4 + r.below(9));
        if (!dt) {
            std::fprintf(stderr, "upload_tables: %s\n", up_err.c_str());
            return 1;
        }
        // The decode kernel with packed tables (where the table set allows them) or plain ones, and
        // payloads from host bytes or left on the "device".
        dt->packed = dt->packed && it % 2 == 0;
        const bool device_payload = it % 4 < 2;
        if (gpu_emulated_encode(dt, sym, idx, lanes, seg) != payload) {
            std::fprintf(stderr, "GPU (emulated) bytes differ from the CPU's (iteration %d)\n", it);
            return 1;
        }
        if (n) {  // a bad index in a good stream: the GPU decoder says so too
            std::vector<int32_t> bi = idx, bo;
            bi[r.below((uint32_t)n)] = (int32_t)T + (int32_t)r.below(3);
            if (gpu_emulated_decode(dt, payload.data(), payload.size(), bi, bo, device_payload).status != kBadIndex) {
                std::fprintf(stderr, "GPU (emulated) decoder missed a bad index (iteration %d)\n", it);
                return 1;
            }
        }
        std::vector<int32_t> gout;
        if (!gpu_decode_checked(dt, payload.data(), payload.size(), idx, e, gout, device_payload) ||
            !std::equal(sym.begin(), sym.end(), gout.begin())) {
            std::fprintf(stderr, "GPU (emulated) decode failed (iteration %d)\n", it);
            return 1;
        }
        // Hostile variants. Each decodes from its own exactly-sized heap copy so ASan sees overreads.
        for (int v = 0; v < 12; ++v) {
            std::vector<uint8_t> bad = payload;
            switch (r.below(6)) {
                case 0:  // truncation
                    bad.resize(bad.empty() ? 0 : r.below((uint32_t)bad.size()));
                    break;
                case 1:  // bit flips
                    for (uint32_t f = 0, m = 1 + r.below(8); f < m && !bad.empty(); ++f)
                        bad[r.below((uint32_t)bad.size())] ^= (uint8_t)(1u << r.below(8));
                    break;
                case 2:  // random bytes overwritten
                    for (uint32_t f = 0, m = 1 + r.below(16); f < m && !bad.empty(); ++f)
                        bad[r.below((uint32_t)bad.size())] = (uint8_t)r.next();
                    break;
                case 3:  // extra / removed bytes
                    if (r.below(2) || bad.empty())
                        bad.insert(bad.begin() + r.below((uint32_t)bad.size() + 1), (uint8_t)r.next());
                    else
                        bad.erase(bad.begin() + r.below((uint32_t)bad.size()));
                    break;
                case 4: {  // garbage of random length, with a plausible header
                    bad.assign(r.below(400), 0);
                    for (auto& b : bad) b = (uint8_t)r.next();
                    if (bad.size() > 2) {
                        size_t pos = 0;
                        bad[pos++] = (uint8_t)(n & 0x7f);
                        if (n >= 128) bad[0] |= 0x80, bad[pos++] = (uint8_t)(n >> 7);
                        bad[pos] = (uint8_t)(1 + r.below(127));
                    }
                    break;
                }
                default:  // lane states / counts smashed (header region)
                    for (uint32_t f = 0, m = 1 + r.below(4); f < m && !bad.empty(); ++f)
                        bad[r.below((uint32_t)std::min<size_t>(bad.size(), 24))] = (uint8_t)r.next();
            }
            std::vector<uint8_t> exact(bad.begin(), bad.end());
            uint8_t* buf = exact.empty() ? nullptr : new uint8_t[exact.size()];
            if (buf) std::memcpy(buf, exact.data(), exact.size());
            std::vector<int32_t> o(n ? n : 1);
            DecError d = decode_payload(P, buf, exact.size(), idx.data(), n, o.data(), 1 + r.below(2));
            std::vector<int32_t> vo(n ? n : 1);  // the AVX2 rows (where the CPU has them): same verdict
            const DecError dv = decode_payload(P, buf, exact.size(), idx.data(), n, vo.data(), 1 + r.below(2), &S);
            if (dv.status != d.status || std::strcmp(dv.msg, d.msg) != 0 || (d.status == kOk && vo != o)) {
                std::fprintf(stderr, "AVX2 and scalar decoders disagree on a hostile stream (iteration %d)\n", it);
                return 1;
            }
            std::vector<int32_t> go;
            const bool gpu_ok = gpu_decode_checked(dt, buf, exact.size(), idx, d, go, device_payload);
            delete[] buf;
            if (gpu_ok != (d.status == kOk) || (gpu_ok && !std::equal(o.begin(), o.begin() + n, go.begin()))) {
                std::fprintf(stderr, "GPU (emulated) and CPU decoders disagree on a hostile stream (iteration %d)\n",
                             it);
                return 1;
            }
            if (d.status == kOk)
                ++decoded;
            else if (d.status == kCorrupt || d.status == kTruncated)
                ++rejected;
            else {
                std::fprintf(stderr, "unexpected status %d\n", d.status);
                return 1;
            }
        }
        gpu::release_tables(dt);
    }
    std::printf("ok: %d iterations, %zu hostile streams rejected, %zu decoded to garbage\n", iters, rejected, decoded);
    return 0;
}
