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
// bucket_bits caps the buckets per table of the decoder's packed tables (build_packed_tables); 0
// takes NCODEC_CUDA_BUCKET_BITS from the environment (4..12), else 8. Any value decodes the same.
DeviceTables* upload_tables(const Prepared& p, std::string& err, uint32_t bucket_bits = 0);
void release_tables(DeviceTables* t);
int tables_device(const DeviceTables* t);

// Result codes of the GPU entry points.
enum GpuStatus : int {
    kGpuOk = 0,
    kGpuCorrupt = 1,
    kGpuParse = 2,  // the framing is bad: `pe` says how (the CPU decoder's error)
    kGpuBadIndex = 3,
    kGpuBadSymbol = 4,
    kGpuError = -1,
};

// Decodes a len-byte payload into the device int32 array d_out of n symbols, with the device int32
// table indexes d_idx. The payload is either on the device (d_data; h_data null) or on the host
// (h_data; d_data null: it is uploaded). Synchronises `stream` before returning.
int decode(const DeviceTables* t, const uint8_t* d_data, const uint8_t* h_data, size_t len, const int32_t* d_idx,
           int32_t* d_out, size_t n, uintptr_t stream, DecError& pe, std::string& err);

// Encodes n device symbols into the exact CPU payload (`out`). Synchronises `stream`.
int encode(const DeviceTables* t, const int32_t* d_sym, const int32_t* d_idx, size_t n, uint32_t lanes,
           uint64_t seg_n, uintptr_t stream, std::vector<uint8_t>& out, std::string& err);

}  // namespace gpu
}  // namespace rans
}  // namespace ncodec
