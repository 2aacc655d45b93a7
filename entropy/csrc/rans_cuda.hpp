// Host interface of the CUDA rANS coder (implemented in rans_cuda.cu, compiled by nvcc; used by
// rans_cuda_bind.cpp, compiled by the host compiler, so no CUDA headers here).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "rans.hpp"
#include "rans_gpu_common.hpp"

namespace ncodec {
namespace rans {
namespace gpu {

// Number of CUDA devices; 0 when there is no device or no driver (never throws).
int device_count();

// Tables uploaded to the current device (immutable, reused across calls).
struct DeviceTables;
DeviceTables* upload_tables(const Prepared& p, std::string& err);
void release_tables(DeviceTables* t);
int tables_device(const DeviceTables* t);

// Result codes of the GPU entry points.
enum GpuStatus : int { kGpuOk = 0, kGpuCorrupt = 1, kGpuBadIndex = 3, kGpuBadSymbol = 4, kGpuError = -1 };

// Decodes every lane: words holds all lanes' words (with kWordPad words of padding), d_idx / d_out are device
// int32 arrays of n symbols. Synchronises `stream` before returning.
int decode(const DeviceTables* t, const std::vector<DecodeLane>& lanes, const std::vector<uint16_t>& words,
           const int32_t* d_idx, int32_t* d_out, size_t n, uintptr_t stream, std::string& err);

// Encodes n device symbols into the exact CPU payload (`out`). Synchronises `stream`.
int encode(const DeviceTables* t, const int32_t* d_sym, const int32_t* d_idx, size_t n, uint32_t lanes,
           uint64_t seg_n, uintptr_t stream, std::vector<uint8_t>& out, std::string& err);

}  // namespace gpu
}  // namespace rans
}  // namespace ncodec
