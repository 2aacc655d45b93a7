// A CPU stand-in for the part of the CUDA runtime that rans_cuda.cu uses, so that the fuzz driver
// can compile rans_cuda.cu with the host compiler and run the real host code and kernels under
// AddressSanitizer, without a GPU. Not a CUDA implementation:
// * "device" memory is host memory, allocated at its exact size (ASan sees every overread);
//   copies are memcpy, streams and pools are tokens, everything completes at once;
// * a kernel launch runs the grid's threads one after another (NCODEC_LAUNCH), so a kernel must not
//   depend on its threads running together: no __syncthreads, shared memory or warp collectives
//   (rans_cuda.cu keeps its one warp reduction out of NCODEC_CUDA_EMULATION builds);
// * atomics are plain read-modify-writes (the threads run one at a time).
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>

#define NCODEC_CUDA_EMULATION 1
#define __global__

enum cudaError_t { cudaSuccess = 0, cudaErrorMemoryAllocation = 2, cudaErrorInvalidValue = 1 };
enum cudaMemcpyKind { cudaMemcpyHostToDevice, cudaMemcpyDeviceToHost, cudaMemcpyDeviceToDevice };
enum cudaDeviceAttr { cudaDevAttrMultiProcessorCount, cudaDevAttrMemoryPoolsSupported };
enum cudaMemPoolAttr { cudaMemPoolAttrReleaseThreshold };
enum cudaMemAllocationType { cudaMemAllocationTypePinned };
enum cudaMemLocationType { cudaMemLocationTypeDevice };
struct cudaMemLocation {
    cudaMemLocationType type;
    int id;
};
struct cudaMemPoolProps {
    cudaMemAllocationType allocType;
    cudaMemLocation location;
};
typedef struct CUstream_st* cudaStream_t;
typedef struct CUmemPool_st* cudaMemPool_t;

namespace ncodec_cuda_emu {
constexpr int kSms = 4;  // "streaming multiprocessors": small, so both k_decode block sizes are used
inline cudaMemPool_t the_pool() { return reinterpret_cast<cudaMemPool_t>(uintptr_t(0x1000)); }
inline cudaError_t alloc(void** p, size_t bytes) {
    *p = std::malloc(bytes ? bytes : 1);
    return *p ? cudaSuccess : cudaErrorMemoryAllocation;
}
}  // namespace ncodec_cuda_emu

inline const char* cudaGetErrorString(cudaError_t e) { return e == cudaSuccess ? "no error" : "emulated error"; }
inline cudaError_t cudaGetLastError() { return cudaSuccess; }
inline cudaError_t cudaGetDeviceCount(int* n) {
    *n = 1;
    return cudaSuccess;
}
inline cudaError_t cudaGetDevice(int* d) {
    *d = 0;
    return cudaSuccess;
}
inline cudaError_t cudaSetDevice(int) { return cudaSuccess; }
inline cudaError_t cudaDeviceGetAttribute(int* v, cudaDeviceAttr a, int) {
    *v = a == cudaDevAttrMultiProcessorCount ? ncodec_cuda_emu::kSms : 1;
    return cudaSuccess;
}
inline cudaError_t cudaMalloc(void** p, size_t bytes) { return ncodec_cuda_emu::alloc(p, bytes); }
inline cudaError_t cudaMallocAsync(void** p, size_t bytes, cudaStream_t) { return ncodec_cuda_emu::alloc(p, bytes); }
inline cudaError_t cudaMallocFromPoolAsync(void** p, size_t bytes, cudaMemPool_t pool, cudaStream_t) {
    return pool == ncodec_cuda_emu::the_pool() ? ncodec_cuda_emu::alloc(p, bytes) : cudaErrorInvalidValue;
}
inline cudaError_t cudaFree(void* p) {
    std::free(p);
    return cudaSuccess;
}
inline cudaError_t cudaFreeAsync(void* p, cudaStream_t) { return cudaFree(p); }
inline cudaError_t cudaMemPoolCreate(cudaMemPool_t* pool, const cudaMemPoolProps*) {
    *pool = ncodec_cuda_emu::the_pool();
    return cudaSuccess;
}
inline cudaError_t cudaMemPoolSetAttribute(cudaMemPool_t, cudaMemPoolAttr, void*) { return cudaSuccess; }
inline cudaError_t cudaMemcpy(void* dst, const void* src, size_t bytes, cudaMemcpyKind) {
    if (bytes) std::memcpy(dst, src, bytes);
    return cudaSuccess;
}
inline cudaError_t cudaMemcpyAsync(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind, cudaStream_t) {
    return cudaMemcpy(dst, src, bytes, kind);
}
inline cudaError_t cudaMemsetAsync(void* dst, int value, size_t bytes, cudaStream_t) {
    if (bytes) std::memset(dst, value, bytes);
    return cudaSuccess;
}
inline cudaError_t cudaStreamSynchronize(cudaStream_t) { return cudaSuccess; }

template <class T>
inline T atomicOr(T* p, T v) {
    const T old = *p;
    *p = old | v;
    return old;
}
template <class T>
inline T atomicAdd(T* p, T v) {
    const T old = *p;
    *p = old + v;
    return old;
}
template <class T>
inline T atomicMin(T* p, T v) {
    const T old = *p;
    *p = v < old ? v : old;
    return old;
}

// Thread coordinates of the running "thread".
struct ncodec_dim3 {
    unsigned x = 1, y = 1, z = 1;
};
inline ncodec_dim3 blockIdx, threadIdx, blockDim, gridDim;

namespace ncodec_cuda_emu {
template <class K>
struct Launch {
    K kernel;
    unsigned grid, block;
    template <class... A>
    void operator()(A... args) const {
        gridDim.x = grid;
        blockDim.x = block;
        for (unsigned b = 0; b < grid; ++b)
            for (unsigned t = 0; t < block; ++t) {
                blockIdx.x = b;
                threadIdx.x = t;
                kernel(args...);
            }
    }
};
}  // namespace ncodec_cuda_emu

#define NCODEC_LAUNCH(kernel, grid, block, stream) \
    ::ncodec_cuda_emu::Launch<decltype(&kernel)>{&kernel, (unsigned)(grid), (unsigned)(block)}
