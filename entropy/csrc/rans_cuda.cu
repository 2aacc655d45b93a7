// CUDA rANS coder: one GPU thread per lane, using the lane logic of rans.hpp (shared with the CPU).
//
// Decode (the payload may already be on the GPU): the host reads only the payload's head (a few
//   bytes per segment); k_seg_head and k_seg_lanes parse each segment's lane table on the GPU
//   (one thread per segment), k_pack aligns each segment's words, and k_decode runs one thread per
//   lane over symbols seg_start + l, + K, ... with table lookups.
// Encode: k_entries maps symbols to table entries and sums each segment's cost estimate (auto
//   lanes); the host picks each segment's lanes; k_encode runs one thread per lane writing its words
//   backwards into a per-lane scratch region (<= 4 words per symbol); k_compact packs them; the host
//   assembles exactly the bytes of the CPU coder.
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "rans.hpp"
#include "rans_cuda.hpp"

// Kernel launches go through NCODEC_LAUNCH(kernel, grid, block, stream)(args...) so that the fuzz
// driver can run this file on the CPU (emu/cuda_runtime.h defines it there).
#ifndef NCODEC_LAUNCH
#define NCODEC_LAUNCH(kernel, grid, block, stream) kernel<<<(grid), (block), 0, (stream)>>>
#endif

namespace ncodec {
namespace rans {
namespace gpu {

namespace {

constexpr int kThreads = 128;
bool check(cudaError_t e, std::string& err, const char* what) {
    if (e == cudaSuccess) return true;
    err = std::string(what) + ": " + cudaGetErrorString(e);
    return false;
}

// Stream-ordered device scratch, carved into aligned arrays (one allocation per phase). It comes
// from the device's pool of our own (device_pool) when there is one, else from the device's default
// pool, else from cudaMalloc.
struct Scratch {
    char* base = nullptr;
    cudaStream_t stream = nullptr;
    bool pooled = false;
    ~Scratch() {
        if (!base) return;
        if (pooled)
            cudaFreeAsync(base, stream);
        else
            cudaFree(base);
    }
    bool alloc(size_t bytes, cudaStream_t s, cudaMemPool_t pool, std::string& err) {
        stream = s;
        bytes = std::max<size_t>(bytes, 1);
        void** out = reinterpret_cast<void**>(&base);
        cudaError_t e = pool ? cudaMallocFromPoolAsync(out, bytes, pool, s) : cudaMallocAsync(out, bytes, s);
        pooled = e == cudaSuccess;
        if (!pooled) {
            cudaGetLastError();  // memory pools unsupported: fall back to cudaMalloc
            e = cudaMalloc(out, bytes);
        }
        return check(e, err, "cudaMalloc");
    }
};

// One device array in a Scratch of its own.
template <class T>
struct DevBuf {
    Scratch s;
    T* p = nullptr;
    bool alloc(size_t n, cudaStream_t stream, cudaMemPool_t pool, std::string& err) {
        if (!s.alloc(n * sizeof(T), stream, pool, err)) return false;
        p = reinterpret_cast<T*>(s.base);
        return true;
    }
};

// Device memory a pool keeps between calls. The default pool's release threshold is 0: it returns
// its free memory to the driver at every synchronisation, so every call would map its scratch (tens
// of MB for 10^8 symbols) afresh.
constexpr uint64_t kPoolKeep = uint64_t(256) << 20;

// The coder's memory pool on `device` (one per device, shared by every table set, kept for the life
// of the process), which keeps up to kPoolKeep bytes; nullptr where pools are unsupported.
cudaMemPool_t device_pool(int device) {
    static std::mutex mu;
    static std::map<int, cudaMemPool_t> pools;
    std::lock_guard<std::mutex> lock(mu);
    auto it = pools.find(device);
    if (it != pools.end()) return it->second;
    cudaMemPool_t pool = nullptr;
    int supported = 0;
    cudaMemPoolProps props{};
    props.allocType = cudaMemAllocationTypePinned;
    props.location.type = cudaMemLocationTypeDevice;
    props.location.id = device;
    if (cudaDeviceGetAttribute(&supported, cudaDevAttrMemoryPoolsSupported, device) == cudaSuccess && supported &&
        cudaMemPoolCreate(&pool, &props) == cudaSuccess) {
        uint64_t keep = kPoolKeep;
        cudaMemPoolSetAttribute(pool, cudaMemPoolAttrReleaseThreshold, &keep);  // best effort
    } else {
        pool = nullptr;
    }
    cudaGetLastError();  // a failure above only means no pool of our own
    pools[device] = pool;
    return pool;
}

// Sizes and places the arrays of a Scratch: plan with `add`, allocate, then `at` gives each array.
struct Layout {
    size_t total = 0;
    template <class T>
    size_t add(size_t n) {
        const size_t off = (total + 255) & ~size_t(255);
        total = off + std::max<size_t>(n, 1) * sizeof(T);
        return off;
    }
    template <class T>
    static T* at(const Scratch& s, size_t off) {
        return reinterpret_cast<T*>(s.base + off);
    }
};

__global__ void k_seg_head(const uint8_t* __restrict__ data, const SegSpan* __restrict__ spans, uint32_t n_seg,
                           uint64_t seg_n, uint64_t n, uint32_t* __restrict__ k, int* __restrict__ code) {
    const uint32_t s = blockIdx.x * blockDim.x + threadIdx.x;
    if (s >= n_seg) return;
    const SegSpan sp = spans[s];
    size_t bp;
    code[s] = seg_head(data + sp.body, sp.len, seg_symbols(s, seg_n, n), k[s], bp);
}

__global__ void k_seg_lanes(const uint8_t* __restrict__ data, const SegSpan* __restrict__ spans, uint32_t n_seg,
                            uint64_t seg_n, uint64_t n, const uint32_t* __restrict__ k,
                            const uint64_t* __restrict__ lane_base, DecodeLane* __restrict__ lanes,
                            uint64_t* __restrict__ wbyte, uint64_t* __restrict__ nw, int* __restrict__ code) {
    const uint32_t s = blockIdx.x * blockDim.x + threadIdx.x;
    if (s >= n_seg) return;
    const SegSpan sp = spans[s];
    code[s] = seg_lanes(data + sp.body, sp.body, sp.len, (uint64_t)s * seg_n, seg_symbols(s, seg_n, n), k[s],
                        lanes + lane_base[s], wbyte[s], nw[s]);
}

// Blocks stride over the segments; a block's threads copy one segment's words.
__global__ void k_pack(const uint8_t* __restrict__ data, uint32_t n_seg, const uint64_t* __restrict__ wbyte,
                       const uint64_t* __restrict__ nw, uint16_t* __restrict__ words) {
    for (uint32_t s = blockIdx.x; s < n_seg; s += gridDim.x) {
        const uint64_t wb = wbyte[s], c = nw[s];
        uint16_t* dst = words + (wb + 1) / 2;
        for (uint64_t i = threadIdx.x; i < c; i += blockDim.x) dst[i] = pack_word(data, wb, i);
    }
}

__global__ void k_decode(const DecodeLane* __restrict__ lanes, uint64_t n_lanes, const uint16_t* __restrict__ words,
                         const int32_t* __restrict__ idx, int32_t* __restrict__ out,
                         const TableInfo* __restrict__ info, const uint32_t* __restrict__ cdf,
                         const uint16_t* __restrict__ lut, uint32_t T, PackedView pk, bool packed, int* err,
                         unsigned long long* first_bad) {
    const uint64_t g = (uint64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (g >= n_lanes) return;
    const DecodeLane L = lanes[g];
    const int r = decode_lane(L, words, idx, out, info, cdf, lut, T, pk, packed);
    if (r) atomicOr(err, r);
    if (r == 1) atomicMin(first_bad, (unsigned long long)L.seg_start);  // the CPU reports the first bad segment
}

__global__ void k_entries(const int32_t* __restrict__ sym, const int32_t* __restrict__ idx, size_t n, uint64_t seg_n,
                          const TableInfo* __restrict__ info, const uint8_t* __restrict__ cost, uint32_t T,
                          uint32_t* __restrict__ E, unsigned long long* seg_cost, int* err) {
    const size_t j = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    uint32_t c = 0;
    unsigned long long seg = (unsigned long long)((n - 1) / seg_n);
    if (j < n) {
        int e = 0;
        E[j] = entry_and_cost(sym[j], (uint32_t)idx[j], info, cost, T, c, e);
        if (e) atomicOr(err, e);
        seg = (unsigned long long)(j / seg_n);
    }
#if defined(NCODEC_CUDA_EMULATION)  // threads run one at a time there: no warp collectives
    if (j < n && c) atomicAdd(seg_cost + seg, (unsigned long long)c);
#else
    // One atomic per warp when the warp lies in one segment (the usual case).
    const unsigned full = 0xffffffffu;
    const unsigned long long seg0 = __shfl_sync(full, seg, 0);
    if (__all_sync(full, seg == seg0)) {
        for (int o = 16; o > 0; o >>= 1) c += __shfl_down_sync(full, c, o);
        if ((threadIdx.x & 31) == 0 && c) atomicAdd(seg_cost + seg0, (unsigned long long)c);
    } else if (j < n && c) {
        atomicAdd(seg_cost + seg, (unsigned long long)c);
    }
#endif
}

__global__ void k_encode(const EncodeLane* __restrict__ lanes, uint32_t n_lanes, const int32_t* __restrict__ sym,
                         const int32_t* __restrict__ idx, const uint32_t* __restrict__ E,
                         const TableInfo* __restrict__ info, const EncSym* __restrict__ enc, uint16_t* scratch,
                         uint32_t* state_out, uint32_t* count_out) {
    const uint32_t g = blockIdx.x * blockDim.x + threadIdx.x;
    if (g >= n_lanes) return;
    encode_lane(lanes[g], sym, idx, E, info, enc, scratch, state_out[g], count_out[g]);
}

// One warp per lane: copies the lane's words (the end of its region) to their packed position.
__global__ void k_compact(const EncodeLane* __restrict__ lanes, uint32_t n_lanes, const uint16_t* scratch,
                          const uint32_t* __restrict__ count, const uint64_t* __restrict__ out_off,
                          uint16_t* __restrict__ out) {
    const uint32_t g = (blockIdx.x * blockDim.x + threadIdx.x) >> 5;
    const uint32_t lane = threadIdx.x & 31;
    if (g >= n_lanes) return;
    const uint32_t c = count[g];
    const uint16_t* src = scratch + lanes[g].region_end - c;
    uint16_t* dst = out + out_off[g];
    for (uint32_t i = lane; i < c; i += 32) dst[i] = src[i];
}

}  // namespace

int device_count() {
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess) {
        cudaGetLastError();  // clear the sticky "no device / no driver" error
        return 0;
    }
    return n;
}

struct DeviceTables {
    int device = 0;
    int sms = 1;  // streaming multiprocessors (block size of k_decode)
    uint32_t T = 0;
    TableInfo* info = nullptr;
    uint32_t* cdf = nullptr;
    uint16_t* lut = nullptr;
    EncSym* enc = nullptr;
    uint8_t* cost = nullptr;
    bool packed = false;  // the packed decoder tables below are there (PackedTables::usable)
    uint32_t* lut_shift = nullptr;
    int32_t* value = nullptr;
    uint32_t* bucket = nullptr;
    uint32_t* entry = nullptr;
    cudaMemPool_t pool = nullptr;  // the device's scratch pool (device_pool); nullptr: the default pool
};

void release_tables(DeviceTables* t) {
    if (!t) return;
    int prev = 0;
    bool switched = cudaGetDevice(&prev) == cudaSuccess && prev != t->device && cudaSetDevice(t->device) == cudaSuccess;
    cudaFree(t->info);
    cudaFree(t->cdf);
    cudaFree(t->lut);
    cudaFree(t->enc);
    cudaFree(t->cost);
    cudaFree(t->lut_shift);
    cudaFree(t->value);
    cudaFree(t->bucket);
    cudaFree(t->entry);
    if (switched) cudaSetDevice(prev);
    delete t;
}

int tables_device(const DeviceTables* t) { return t->device; }

template <class T>
static bool upload_vec(T*& dst, const std::vector<T>& v, std::string& err) {
    if (!check(cudaMalloc(reinterpret_cast<void**>(&dst), std::max<size_t>(v.size(), 1) * sizeof(T)), err,
               "cudaMalloc"))
        return false;
    return v.empty() || check(cudaMemcpy(dst, v.data(), v.size() * sizeof(T), cudaMemcpyHostToDevice), err,
                              "cudaMemcpy");
}

// Buckets per table of the GPU's packed tables: at most 2^8 (kGpuBucketBits), or
// NCODEC_CUDA_BUCKET_BITS (4..12) to compare. On the benchmark's Gaussian tables 2^8 shrinks the
// bucket array from 520 to 56 KiB, small enough to stay in an SM's L1, while the share of symbols
// that need a second scan step only goes from 0.20 % to 0.30 % (on the CPU both decode as fast).
constexpr uint32_t kGpuBucketBits = 8;
static uint32_t env_bucket_bits() {
    const char* v = std::getenv("NCODEC_CUDA_BUCKET_BITS");
    const long b = v ? std::strtol(v, nullptr, 10) : (long)kGpuBucketBits;
    return (uint32_t)std::min(12L, std::max(4L, b));
}

DeviceTables* upload_tables(const Prepared& p, std::string& err, uint32_t bucket_bits) {
    auto* t = new DeviceTables();
    t->T = p.T;
    if (!check(cudaGetDevice(&t->device), err, "cudaGetDevice") ||
        !check(cudaDeviceGetAttribute(&t->sms, cudaDevAttrMultiProcessorCount, t->device), err, "SM count") ||
        !upload_vec(t->info, p.info, err) ||
        !upload_vec(t->cdf, p.cdf, err) || !upload_vec(t->lut, p.lut, err) || !upload_vec(t->enc, p.enc, err) ||
        !upload_vec(t->cost, p.cost, err)) {
        release_tables(t);
        return nullptr;
    }
    t->pool = device_pool(t->device);
    PackedTables pk;
    build_packed_tables(p, pk, bucket_bits ? bucket_bits : env_bucket_bits());
    t->packed = pk.usable;
    if (pk.usable && (!upload_vec(t->lut_shift, pk.lut_shift, err) || !upload_vec(t->value, pk.value, err) ||
                      !upload_vec(t->bucket, pk.bucket, err) || !upload_vec(t->entry, pk.entry, err))) {
        release_tables(t);
        return nullptr;
    }
    return t;
}

int decode(const DeviceTables* t, const uint8_t* d_data, const uint8_t* h_data, size_t len, const int32_t* d_idx,
           int32_t* d_out, size_t n, uintptr_t stream_handle, DecError& pe, std::string& err) {
    cudaStream_t stream = reinterpret_cast<cudaStream_t>(stream_handle);
    pe = DecError{};
    Scratch payload;
    if (!d_data) {  // host bytes: one upload, then the same path as a device-resident payload
        if (!payload.alloc(len, stream, t->pool, err) ||
            (len && !check(cudaMemcpyAsync(payload.base, h_data, len, cudaMemcpyHostToDevice, stream), err,
                           "cudaMemcpy")))
            return kGpuError;
        d_data = reinterpret_cast<const uint8_t*>(payload.base);
    }

    // The head: from the host copy if there is one, else a few bytes at a time from the device.
    std::vector<SegSpan> spans;
    std::vector<uint8_t> head;
    uint64_t seg_n = 0;
    size_t need = 0, avail = h_data ? len : 0;
    for (;;) {
        pe = parse_head(h_data ? h_data : head.data(), avail, len, n, need, seg_n, spans);
        if (pe.status) return kGpuParse;
        if (avail >= need) break;
        head.resize(need);
        if (!check(cudaMemcpyAsync(head.data(), d_data, need, cudaMemcpyDeviceToHost, stream), err, "cudaMemcpy") ||
            !check(cudaStreamSynchronize(stream), err, "head"))
            return kGpuError;
        avail = need;
    }
    const size_t n_seg = spans.size();
    if (n_seg == 0) return kGpuOk;

    // Stage 1: every segment's lane count.
    Layout L1;
    const size_t o_spans = L1.add<SegSpan>(n_seg), o_k = L1.add<uint32_t>(n_seg), o_code = L1.add<int>(n_seg),
                 o_base = L1.add<uint64_t>(n_seg), o_wb = L1.add<uint64_t>(n_seg), o_nw = L1.add<uint64_t>(n_seg),
                 o_err = L1.add<int>(1), o_first = L1.add<unsigned long long>(1);
    Scratch meta;
    if (!meta.alloc(L1.total, stream, t->pool, err)) return kGpuError;
    auto* d_spans = Layout::at<SegSpan>(meta, o_spans);
    auto* d_k = Layout::at<uint32_t>(meta, o_k);
    auto* d_code = Layout::at<int>(meta, o_code);
    auto* d_base = Layout::at<uint64_t>(meta, o_base);
    auto* d_wb = Layout::at<uint64_t>(meta, o_wb);
    auto* d_nw = Layout::at<uint64_t>(meta, o_nw);
    auto* d_err = Layout::at<int>(meta, o_err);
    auto* d_first = Layout::at<unsigned long long>(meta, o_first);
    const uint32_t ns = (uint32_t)n_seg;
    const unsigned seg_blocks = (unsigned)((n_seg + kThreads - 1) / kThreads);
    std::vector<uint32_t> k(n_seg);
    std::vector<int> code1(n_seg);
    if (!check(cudaMemcpyAsync(d_spans, spans.data(), n_seg * sizeof(SegSpan), cudaMemcpyHostToDevice, stream), err,
               "cudaMemcpy"))
        return kGpuError;
    NCODEC_LAUNCH(k_seg_head, seg_blocks, kThreads, stream)(d_data, d_spans, ns, seg_n, n, d_k, d_code);
    if (!check(cudaGetLastError(), err, "k_seg_head launch") ||
        !check(cudaMemcpyAsync(k.data(), d_k, n_seg * 4, cudaMemcpyDeviceToHost, stream), err, "cudaMemcpy") ||
        !check(cudaMemcpyAsync(code1.data(), d_code, n_seg * sizeof(int), cudaMemcpyDeviceToHost, stream), err,
               "cudaMemcpy") ||
        !check(cudaStreamSynchronize(stream), err, "k_seg_head"))
        return kGpuError;

    // Stage 2 on the segments before the first failing head: lane tables and word spans.
    size_t s1 = 0;
    std::vector<uint64_t> base(n_seg + 1, 0);
    for (; s1 < n_seg && code1[s1] == kSegOk; ++s1) base[s1 + 1] = base[s1] + k[s1];
    const uint64_t n_lanes = base[s1];
    Layout L2;
    const size_t o_lanes = L2.add<DecodeLane>(n_lanes), o_words = L2.add<uint16_t>(packed_words(len));
    Scratch work;
    if (!work.alloc(L2.total, stream, t->pool, err)) return kGpuError;
    auto* d_lanes = Layout::at<DecodeLane>(work, o_lanes);
    auto* d_words = Layout::at<uint16_t>(work, o_words);
    std::vector<int> code2(s1);
    if (s1) {
        if (!check(cudaMemcpyAsync(d_base, base.data(), s1 * 8, cudaMemcpyHostToDevice, stream), err, "cudaMemcpy"))
            return kGpuError;
        NCODEC_LAUNCH(k_seg_lanes, (unsigned)((s1 + kThreads - 1) / kThreads), kThreads, stream)(
            d_data, d_spans, (uint32_t)s1, seg_n, n, d_k, d_base, d_lanes, d_wb, d_nw, d_code);
        if (!check(cudaGetLastError(), err, "k_seg_lanes launch")) return kGpuError;
    }

    // Stages 3 and 4 on those segments: pack the words, decode the lanes (a segment that failed
    // stage 2 has empty lanes). Lane errors count only before the first framing error, as on the CPU.
    const unsigned long long none = ~0ull;
    if (!check(cudaMemsetAsync(d_words, 0, packed_words(len) * 2, stream), err, "memset") ||
        !check(cudaMemsetAsync(d_err, 0, sizeof(int), stream), err, "memset") ||
        !check(cudaMemsetAsync(d_first, 0xff, sizeof(none), stream), err, "memset"))
        return kGpuError;
    if (n_lanes) {
        NCODEC_LAUNCH(k_pack, (unsigned)std::min<size_t>(s1, 65535), 256, stream)(d_data, (uint32_t)s1, d_wb, d_nw,
                                                                                 d_words);
        if (!check(cudaGetLastError(), err, "k_pack launch")) return kGpuError;
        // Few lanes: small blocks spread them over every SM (latency-bound threads).
        const unsigned th = n_lanes < (uint64_t)t->sms * 1024 ? 32 : kThreads;
        const PackedView pk{t->lut_shift, t->value, t->bucket, t->entry};
        NCODEC_LAUNCH(k_decode, (unsigned)((n_lanes + th - 1) / th), th, stream)(
            d_lanes, n_lanes, d_words, d_idx, d_out, t->info, t->cdf, t->lut, t->T, pk, t->packed, d_err, d_first);
        if (!check(cudaGetLastError(), err, "k_decode launch")) return kGpuError;
    }
    int h_err = 0;
    unsigned long long first_bad = none;
    if ((s1 && !check(cudaMemcpyAsync(code2.data(), d_code, s1 * sizeof(int), cudaMemcpyDeviceToHost, stream), err,
                      "cudaMemcpy")) ||
        !check(cudaMemcpyAsync(&h_err, d_err, sizeof(int), cudaMemcpyDeviceToHost, stream), err, "cudaMemcpy") ||
        !check(cudaMemcpyAsync(&first_bad, d_first, sizeof(first_bad), cudaMemcpyDeviceToHost, stream), err,
               "cudaMemcpy") ||
        !check(cudaStreamSynchronize(stream), err, "k_decode"))
        return kGpuError;
    size_t sf = s1;  // first segment with a framing error (n_seg: none)
    for (size_t s = 0; s < s1; ++s)
        if (code2[s]) {
            sf = s;
            break;
        }
    const size_t sl = first_bad == none ? n_seg : (size_t)(first_bad / seg_n);  // first with a lane error
    if (sf < n_seg && sf < sl) {
        pe = seg_error(sf < s1 ? code2[sf] : code1[sf]);
        return kGpuParse;
    }
    if (h_err & 2) return kGpuBadIndex;
    if (h_err & 1) return kGpuCorrupt;
    return kGpuOk;
}

int encode(const DeviceTables* t, const int32_t* d_sym, const int32_t* d_idx, size_t n, uint32_t lanes, uint64_t seg_n,
           uintptr_t stream_handle, std::vector<uint8_t>& out, std::string& err) {
    cudaStream_t stream = reinterpret_cast<cudaStream_t>(stream_handle);
    const size_t n_seg = n ? (size_t)((n + seg_n - 1) / seg_n) : 0;
    std::vector<unsigned long long> seg_cost(n_seg, 0);
    std::vector<uint32_t> seg_k(n_seg);
    std::vector<EncodeLane> lane_tab;
    std::vector<uint32_t> state, count;
    std::vector<uint16_t> words;
    std::vector<uint64_t> out_off;
    if (n) {
        DevBuf<uint32_t> d_E;
        DevBuf<unsigned long long> d_cost;
        DevBuf<int> d_err;
        if (!d_E.alloc(n, stream, t->pool, err) || !d_cost.alloc(n_seg, stream, t->pool, err) ||
            !d_err.alloc(1, stream, t->pool, err))
            return kGpuError;
        if (!check(cudaMemsetAsync(d_cost.p, 0, n_seg * sizeof(unsigned long long), stream), err, "memset") ||
            !check(cudaMemsetAsync(d_err.p, 0, sizeof(int), stream), err, "memset"))
            return kGpuError;
        NCODEC_LAUNCH(k_entries, (unsigned)((n + kThreads - 1) / kThreads), kThreads, stream)(
            d_sym, d_idx, n, seg_n, t->info, t->cost, t->T, d_E.p, d_cost.p, d_err.p);
        if (!check(cudaGetLastError(), err, "k_entries launch")) return kGpuError;
        int h_err = 0;
        if (!check(cudaMemcpyAsync(seg_cost.data(), d_cost.p, n_seg * sizeof(unsigned long long),
                                   cudaMemcpyDeviceToHost, stream),
                   err, "cudaMemcpy") ||
            !check(cudaMemcpyAsync(&h_err, d_err.p, sizeof(int), cudaMemcpyDeviceToHost, stream), err, "cudaMemcpy") ||
            !check(cudaStreamSynchronize(stream), err, "k_entries"))
            return kGpuError;
        if (h_err & 1) return kGpuBadIndex;
        if (h_err & 2) return kGpuBadSymbol;

        const uint64_t scratch_words = plan_encode(n, seg_n, lanes, seg_cost, seg_k, lane_tab);
        const uint32_t nl = (uint32_t)lane_tab.size();
        DevBuf<EncodeLane> d_lanes;
        DevBuf<uint16_t> d_scratch;
        DevBuf<uint32_t> d_state, d_count;
        if (!d_lanes.alloc(nl, stream, t->pool, err) || !d_scratch.alloc(scratch_words, stream, t->pool, err) ||
            !d_state.alloc(nl, stream, t->pool, err) || !d_count.alloc(nl, stream, t->pool, err))
            return kGpuError;
        if (!check(cudaMemcpyAsync(d_lanes.p, lane_tab.data(), nl * sizeof(EncodeLane), cudaMemcpyHostToDevice,
                                   stream),
                   err, "cudaMemcpy"))
            return kGpuError;
        NCODEC_LAUNCH(k_encode, (nl + kThreads - 1) / kThreads, kThreads, stream)(
            d_lanes.p, nl, d_sym, d_idx, d_E.p, t->info, t->enc, d_scratch.p, d_state.p, d_count.p);
        if (!check(cudaGetLastError(), err, "k_encode launch")) return kGpuError;
        state.resize(nl);
        count.resize(nl);
        if (!check(cudaMemcpyAsync(state.data(), d_state.p, nl * 4, cudaMemcpyDeviceToHost, stream), err,
                   "cudaMemcpy") ||
            !check(cudaMemcpyAsync(count.data(), d_count.p, nl * 4, cudaMemcpyDeviceToHost, stream), err,
                   "cudaMemcpy") ||
            !check(cudaStreamSynchronize(stream), err, "k_encode"))
            return kGpuError;
        const uint64_t total_words = pack_offsets(count, out_off);
        DevBuf<uint64_t> d_off;
        DevBuf<uint16_t> d_words;
        if (!d_off.alloc(nl, stream, t->pool, err) || !d_words.alloc(total_words, stream, t->pool, err))
            return kGpuError;
        if (!check(cudaMemcpyAsync(d_off.p, out_off.data(), nl * 8, cudaMemcpyHostToDevice, stream), err,
                   "cudaMemcpy"))
            return kGpuError;
        NCODEC_LAUNCH(k_compact, (unsigned)(((uint64_t)nl * 32 + kThreads - 1) / kThreads), kThreads, stream)(
            d_lanes.p, nl, d_scratch.p, d_count.p, d_off.p, d_words.p);
        if (!check(cudaGetLastError(), err, "k_compact launch")) return kGpuError;
        words.resize(total_words);
        if ((total_words && !check(cudaMemcpyAsync(words.data(), d_words.p, total_words * 2, cudaMemcpyDeviceToHost,
                                                   stream),
                                   err, "cudaMemcpy")) ||
            !check(cudaStreamSynchronize(stream), err, "k_compact"))
            return kGpuError;
    }

    assemble(n, seg_n, seg_k, state, count, words, out_off, out);
    return kGpuOk;
}

}  // namespace gpu
}  // namespace rans
}  // namespace ncodec
