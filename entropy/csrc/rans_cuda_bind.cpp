// nanobind bindings of the CUDA rANS coder: ncodec.entropy._rans_cuda
//
// Arrays are DLPack device arrays (torch CUDA tensors). cudart is linked statically: the module
// imports without a GPU or driver; device_count() then returns 0 and Tables() raises.
#include <nanobind/nanobind.h>
#include <nanobind/ndarray.h>

#include <stdexcept>
#include <string>
#include <vector>

#include "rans_cuda.hpp"

namespace nb = nanobind;
using namespace nb::literals;
using namespace ncodec::rans;

namespace {

struct CorruptError : std::runtime_error {
    using std::runtime_error::runtime_error;
};
struct TruncatedError : std::runtime_error {
    using std::runtime_error::runtime_error;
};

struct CudaTables {
    Prepared p;
    gpu::DeviceTables* d = nullptr;
    CudaTables() = default;
    CudaTables(const CudaTables&) = delete;
    CudaTables& operator=(const CudaTables&) = delete;
    ~CudaTables() { gpu::release_tables(d); }
};

using DevI32 = nb::ndarray<const int32_t, nb::ndim<1>, nb::c_contig, nb::device::cuda>;
using DevI32Out = nb::ndarray<int32_t, nb::ndim<1>, nb::c_contig, nb::device::cuda>;
using DevU8 = nb::ndarray<const uint8_t, nb::ndim<1>, nb::c_contig, nb::device::cuda>;
using I32Vec = nb::ndarray<const int32_t, nb::ndim<1>, nb::c_contig, nb::device::cpu>;
using I32Mat = nb::ndarray<const int32_t, nb::ndim<2>, nb::c_contig, nb::device::cpu>;

[[noreturn]] void raise(const DecError& e) {
    if (e.status == kTruncated) throw TruncatedError(e.msg);
    throw CorruptError(e.msg);
}

void check_device(const CudaTables& t, int device_id) {
    if (device_id != gpu::tables_device(t.d))
        throw std::invalid_argument("tables were uploaded to CUDA device " + std::to_string(gpu::tables_device(t.d)) +
                                    " but the arrays are on device " + std::to_string(device_id));
}

}  // namespace

NB_MODULE(_rans_cuda, m) {
    m.doc() = "ncodec's CUDA rANS coder: byte- and symbol-exact with the CPU coder (ncodec.entropy._rans).";
    nb::exception<CorruptError> corrupt(m, "CorruptError", PyExc_ValueError);
    nb::exception<TruncatedError>(m, "TruncatedError", corrupt);

    m.def("device_count", &gpu::device_count, "CUDA devices visible (0 without a device or driver).");

    nb::class_<CudaTables>(m, "Tables", "Validated tables uploaded to the current CUDA device.")
        .def(
            "__init__",
            [](CudaTables* self, I32Mat cdf, I32Vec sizes, I32Vec offsets) {
                if (gpu::device_count() <= 0) throw std::runtime_error("no CUDA device");
                if (sizes.shape(0) != cdf.shape(0) || offsets.shape(0) != cdf.shape(0))
                    throw std::invalid_argument("tables: cdf, sizes and offsets disagree on the number of tables");
                Prepared p;
                std::string e = prepare_tables(cdf.data(), (int64_t)cdf.shape(0), (int64_t)cdf.shape(1),
                                               sizes.data(), offsets.data(), p);
                if (!e.empty()) throw std::invalid_argument(e);
                std::string err;
                gpu::DeviceTables* d = gpu::upload_tables(p, err);
                if (!d) throw std::runtime_error("CUDA: " + err);
                auto* t = new (self) CudaTables();
                t->p = std::move(p);
                t->d = d;
            },
            "cdf"_a, "sizes"_a, "offsets"_a)
        .def_prop_ro("device", [](const CudaTables& t) { return gpu::tables_device(t.d); });

    m.def(
        "encode",
        [](const CudaTables& t, DevI32 symbols, DevI32 indexes, int64_t lanes, int64_t segment_symbols,
           uintptr_t stream) {
            const size_t n = symbols.shape(0);
            if (indexes.shape(0) != n) throw std::invalid_argument("symbols and indexes differ in size");
            if (lanes < 0 || lanes > (int64_t)kMaxLanes) throw std::invalid_argument("lanes must be in 0..1024");
            if (segment_symbols < 1 || segment_symbols >= (int64_t(1) << 32))
                throw std::invalid_argument("segment_symbols must be in 1..2**32-1");
            if (n >= (size_t(1) << 32)) throw std::invalid_argument("too many symbols for one payload");
            check_device(t, symbols.device_id());
            check_device(t, indexes.device_id());
            std::vector<uint8_t> out;
            std::string err;
            int st;
            {
                nb::gil_scoped_release release;
                st = gpu::encode(t.d, symbols.data(), indexes.data(), n, (uint32_t)lanes, (uint64_t)segment_symbols,
                                 stream, out, err);
            }
            if (st == gpu::kGpuBadIndex) throw std::invalid_argument("table index out of range");
            if (st == gpu::kGpuBadSymbol) throw std::invalid_argument("symbol magnitude exceeds 1073741824");
            if (st != gpu::kGpuOk) throw std::runtime_error("CUDA: " + err);
            return nb::bytes(reinterpret_cast<const char*>(out.data()), out.size());
        },
        "tables"_a, "symbols"_a, "indexes"_a, "lanes"_a = 0, "segment_symbols"_a = 65536, "stream"_a = 0,
        "Encodes device int32 symbols [N] with device int32 indexes [N]; returns the payload (bytes).");

    // Decoding: the payload as host bytes (uploaded) or as a device uint8 array (stays there).
    auto decode = [](const CudaTables& t, const uint8_t* d_data, const uint8_t* h_data, size_t len, DevI32 indexes,
                     DevI32Out out, uintptr_t stream) {
        const size_t n = indexes.shape(0);
        if (out.shape(0) != n) throw std::invalid_argument("out must have as many elements as indexes");
        check_device(t, indexes.device_id());
        check_device(t, out.device_id());
        DecError e;
        std::string err;
        int st;
        {
            nb::gil_scoped_release release;
            st = gpu::decode(t.d, d_data, h_data, len, indexes.data(), out.data(), n, stream, e, err);
        }
        if (st == gpu::kGpuParse) raise(e);
        if (st == gpu::kGpuBadIndex) throw std::invalid_argument("table index out of range");
        if (st == gpu::kGpuCorrupt)
            throw CorruptError("rANS lane ran out of words, did not end in its initial state, or decoded an "
                               "out-of-range escape: the payload is corrupt");
        if (st != gpu::kGpuOk) throw std::runtime_error("CUDA: " + err);
    };
    m.def(
        "decode",
        [decode](const CudaTables& t, nb::bytes data, DevI32 indexes, DevI32Out out, uintptr_t stream) {
            decode(t, nullptr, reinterpret_cast<const uint8_t*>(data.c_str()), data.size(), indexes, out, stream);
        },
        "tables"_a, "data"_a, "indexes"_a, "out"_a, "stream"_a = 0,
        "Decodes a payload (bytes) into the device int32 array out [N] (N = indexes.size).");
    m.def(
        "decode",
        [decode](const CudaTables& t, DevU8 data, DevI32 indexes, DevI32Out out, uintptr_t stream) {
            check_device(t, data.device_id());
            decode(t, data.data(), nullptr, data.shape(0), indexes, out, stream);
        },
        "tables"_a, "data"_a, "indexes"_a, "out"_a, "stream"_a = 0,
        "Decodes a payload held in a device uint8 array [len] into the device int32 array out [N]; only its "
        "head (a few bytes per segment) is read by the host.");
}
