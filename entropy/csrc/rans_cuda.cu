// CUDA rANS coder: one GPU thread per lane, using the lane logic of rans.hpp (shared with the CPU).
//
// Decode: the host parses the payload's framing into a lane table and packs the lanes' words;
//   k_decode runs one thread per lane over symbols seg_start + l, + K, ... with table lookups.
// Encode: k_entries maps symbols to table entries and sums each segment's cost estimate (auto
//   lanes); the host picks each segment's lanes; k_encode runs one thread per lane writing its words
//   backwards into a per-lane scratch region (<= 4 words per symbol); k_compact packs them; the host
//   assembles exactly the bytes of the CPU coder.
#include <cuda_runtime.h>

#include <algorithm>
#include <cstring>
#include <string>
#include <vector>

#include "rans.hpp"
#include "rans_cuda.hpp"

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

template <class T>
struct DevBuf {
    T* p = nullptr;
    ~DevBuf() {
        if (p) cudaFree(p);
    }
    bool alloc(size_t n, std::string& err) {
        return check(cudaMalloc(reinterpret_cast<void**>(&p), std::max<size_t>(n, 1) * sizeof(T)), err, "cudaMalloc");
    }
};

__global__ void k_decode(const DecodeLane* __restrict__ lanes, uint32_t n_lanes, const uint16_t* __restrict__ words,
                         const int32_t* __restrict__ idx, int32_t* __restrict__ out,
                         const TableInfo* __restrict__ info, const uint32_t* __restrict__ cdf,
                         const uint16_t* __restrict__ lut, uint32_t T, int* err) {
    const uint32_t g = blockIdx.x * blockDim.x + threadIdx.x;
    if (g >= n_lanes) return;
    const int r = decode_lane(lanes[g], words, idx, out, info, cdf, lut, T);
    if (r) atomicOr(err, r);
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
    // One atomic per warp when the warp lies in one segment (the usual case).
    const unsigned full = 0xffffffffu;
    const unsigned long long seg0 = __shfl_sync(full, seg, 0);
    if (__all_sync(full, seg == seg0)) {
        for (int o = 16; o > 0; o >>= 1) c += __shfl_down_sync(full, c, o);
        if ((threadIdx.x & 31) == 0 && c) atomicAdd(seg_cost + seg0, (unsigned long long)c);
    } else if (j < n && c) {
        atomicAdd(seg_cost + seg, (unsigned long long)c);
    }
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
    uint32_t T = 0;
    TableInfo* info = nullptr;
    uint32_t* cdf = nullptr;
    uint16_t* lut = nullptr;
    EncSym* enc = nullptr;
    uint8_t* cost = nullptr;
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

DeviceTables* upload_tables(const Prepared& p, std::string& err) {
    auto* t = new DeviceTables();
    t->T = p.T;
    if (!check(cudaGetDevice(&t->device), err, "cudaGetDevice") || !upload_vec(t->info, p.info, err) ||
        !upload_vec(t->cdf, p.cdf, err) || !upload_vec(t->lut, p.lut, err) || !upload_vec(t->enc, p.enc, err) ||
        !upload_vec(t->cost, p.cost, err)) {
        release_tables(t);
        return nullptr;
    }
    return t;
}

int decode(const DeviceTables* t, const std::vector<DecodeLane>& lanes, const std::vector<uint16_t>& words,
           const int32_t* d_idx, int32_t* d_out, size_t n, uintptr_t stream_handle, std::string& err) {
    (void)n;
    if (lanes.empty()) return kGpuOk;
    cudaStream_t stream = reinterpret_cast<cudaStream_t>(stream_handle);
    DevBuf<DecodeLane> d_lanes;
    DevBuf<uint16_t> d_words;
    DevBuf<int> d_err;
    if (!d_lanes.alloc(lanes.size(), err) || !d_words.alloc(words.size(), err) || !d_err.alloc(1, err))
        return kGpuError;
    if (!check(cudaMemsetAsync(d_err.p, 0, sizeof(int), stream), err, "memset") ||
        !check(cudaMemcpyAsync(d_lanes.p, lanes.data(), lanes.size() * sizeof(DecodeLane), cudaMemcpyHostToDevice,
                               stream),
               err, "cudaMemcpy") ||
        (!words.empty() && !check(cudaMemcpyAsync(d_words.p, words.data(), words.size() * sizeof(uint16_t),
                                                  cudaMemcpyHostToDevice, stream),
                                  err, "cudaMemcpy")))
        return kGpuError;
    const uint32_t nl = (uint32_t)lanes.size();
    k_decode<<<(nl + kThreads - 1) / kThreads, kThreads, 0, stream>>>(d_lanes.p, nl, d_words.p, d_idx, d_out, t->info,
                                                                        t->cdf, t->lut, t->T, d_err.p);
    if (!check(cudaGetLastError(), err, "k_decode launch")) return kGpuError;
    int h_err = 0;
    if (!check(cudaMemcpyAsync(&h_err, d_err.p, sizeof(int), cudaMemcpyDeviceToHost, stream), err, "cudaMemcpy") ||
        !check(cudaStreamSynchronize(stream), err, "k_decode"))
        return kGpuError;
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
        if (!d_E.alloc(n, err) || !d_cost.alloc(n_seg, err) || !d_err.alloc(1, err)) return kGpuError;
        if (!check(cudaMemsetAsync(d_cost.p, 0, n_seg * sizeof(unsigned long long), stream), err, "memset") ||
            !check(cudaMemsetAsync(d_err.p, 0, sizeof(int), stream), err, "memset"))
            return kGpuError;
        k_entries<<<(unsigned)((n + kThreads - 1) / kThreads), kThreads, 0, stream>>>(
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
        if (!d_lanes.alloc(nl, err) || !d_scratch.alloc(scratch_words, err) || !d_state.alloc(nl, err) ||
            !d_count.alloc(nl, err))
            return kGpuError;
        if (!check(cudaMemcpyAsync(d_lanes.p, lane_tab.data(), nl * sizeof(EncodeLane), cudaMemcpyHostToDevice,
                                   stream),
                   err, "cudaMemcpy"))
            return kGpuError;
        k_encode<<<(nl + kThreads - 1) / kThreads, kThreads, 0, stream>>>(d_lanes.p, nl, d_sym, d_idx, d_E.p, t->info,
                                                                            t->enc, d_scratch.p, d_state.p, d_count.p);
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
        if (!d_off.alloc(nl, err) || !d_words.alloc(total_words, err)) return kGpuError;
        if (!check(cudaMemcpyAsync(d_off.p, out_off.data(), nl * 8, cudaMemcpyHostToDevice, stream), err,
                   "cudaMemcpy"))
            return kGpuError;
        k_compact<<<(unsigned)(((uint64_t)nl * 32 + kThreads - 1) / kThreads), kThreads, 0, stream>>>(
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
