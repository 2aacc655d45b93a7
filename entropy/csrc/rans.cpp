// nanobind bindings of the CPU rANS coder: ncodec.entropy._rans
#include <nanobind/nanobind.h>
#include <nanobind/ndarray.h>
#include <nanobind/stl/string.h>

#include <cstdlib>
#include <memory>
#include <new>
#include <stdexcept>
#include <string>
#include <vector>

#include "rans_cpu.hpp"

#if defined(__linux__)
#include <sys/mman.h>
#endif

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

struct PyTables {
    Prepared p;
    PackedTables packed;  // for the AVX2 decoder rows (packed.usable false where the tables are too large)
};

using I32Vec = nb::ndarray<const int32_t, nb::ndim<1>, nb::c_contig, nb::device::cpu>;
using I32Mat = nb::ndarray<const int32_t, nb::ndim<2>, nb::c_contig, nb::device::cpu>;
using OutVec = nb::ndarray<nb::numpy, int32_t, nb::ndim<1>>;

unsigned to_threads(int64_t threads) {
    if (threads < 0) throw std::invalid_argument("threads must be >= 0");
    return (unsigned)std::min<int64_t>(threads, 4096);
}

nb::bytes encode(const PyTables& t, I32Vec symbols, I32Vec indexes, int64_t lanes, int64_t segment_symbols,
                 int64_t threads, bool vector) {
    const size_t n = symbols.shape(0);
    if (indexes.shape(0) != n)
        throw std::invalid_argument("symbols (" + std::to_string(n) + ") and indexes (" +
                                    std::to_string(indexes.shape(0)) + ") differ in size");
    if (lanes < 0 || lanes > (int64_t)kMaxLanes)
        throw std::invalid_argument("lanes must be in 0..1024, got " + std::to_string(lanes));
    if (segment_symbols < 1) throw std::invalid_argument("segment_symbols must be >= 1");
    if (segment_symbols >= (int64_t(1) << 32)) throw std::invalid_argument("segment_symbols must be < 2**32");
    if (n >= (size_t(1) << 32)) throw std::invalid_argument("too many symbols for one payload (>= 2**32)");
    unsigned th = to_threads(threads);
    std::vector<uint8_t> out;
    int st;
    {
        nb::gil_scoped_release release;
        st = encode_payload(t.p, symbols.data(), indexes.data(), n, (uint32_t)lanes, (uint64_t)segment_symbols, th,
                            out, vector);
    }
    if (st == kBadIndex)
        throw std::invalid_argument("table index out of range 0.." + std::to_string(t.p.T - 1));
    if (st == kBadSymbol) throw std::invalid_argument("symbol magnitude exceeds 1073741824");
    if (st != kOk) throw std::bad_alloc();
    return nb::bytes(reinterpret_cast<const char*>(out.data()), out.size());
}

// The decoder's output array (released with std::free). Large ones are 2 MiB aligned and marked for
// transparent huge pages: the first writes then fault a few huge pages instead of thousands of
// 4 KiB ones, which costs a third of the decoding time of 10^7 symbols in a VM.
int32_t* alloc_out(size_t n) {
    const size_t bytes = std::max<size_t>(n, 1) * sizeof(int32_t);
    void* p = nullptr;
#if defined(__linux__) && defined(MADV_HUGEPAGE)
    constexpr size_t huge = size_t(2) << 20;
    if (bytes >= 2 * huge) {
        const size_t rounded = (bytes + huge - 1) & ~(huge - 1);
        if (posix_memalign(&p, huge, rounded) == 0) {
            madvise(p, rounded, MADV_HUGEPAGE);  // advice only: failure leaves ordinary pages
            return static_cast<int32_t*>(p);
        }
        p = nullptr;
    }
#endif
    p = std::malloc(bytes);
    if (!p) throw std::bad_alloc();
    return static_cast<int32_t*>(p);
}

OutVec decode(const PyTables& t, nb::bytes data, I32Vec indexes, int64_t threads, bool vector) {
    const size_t n = indexes.shape(0);
    unsigned th = to_threads(threads);
    std::unique_ptr<int32_t, void (*)(void*)> buf(alloc_out(n), std::free);
    DecError err;
    {
        nb::gil_scoped_release release;
        err = decode_payload(t.p, reinterpret_cast<const uint8_t*>(data.c_str()), data.size(), indexes.data(), n,
                             buf.get(), th, vector ? &t.packed : nullptr);
    }
    switch (err.status) {
        case kOk:
            break;
        case kTruncated:
            throw TruncatedError(err.msg);
        case kCorrupt:
            throw CorruptError(err.msg);
        case kBadIndex:
            throw std::invalid_argument("table index out of range 0.." + std::to_string(t.p.T - 1));
        default:
            throw std::bad_alloc();
    }
    int32_t* raw = buf.release();
    nb::capsule owner(raw, [](void* p) noexcept { std::free(p); });
    return OutVec(raw, {n}, owner);
}

}  // namespace

NB_MODULE(_rans, m) {
    m.doc() = "ncodec's fast rANS coder (CPU): bit-exact with ncodec.entropy.rans_ref.";
    nb::exception<CorruptError> corrupt(m, "CorruptError", PyExc_ValueError);
    nb::exception<TruncatedError>(m, "TruncatedError", corrupt);

    nb::class_<PyTables>(m, "Tables", "Validated, prepared probability tables (build once, reuse).")
        .def(
            "__init__",
            [](PyTables* self, I32Mat cdf, I32Vec sizes, I32Vec offsets) {
                if (sizes.shape(0) != cdf.shape(0) || offsets.shape(0) != cdf.shape(0))
                    throw std::invalid_argument("tables: cdf, sizes and offsets disagree on the number of tables");
                Prepared p;
                std::string e = prepare_tables(cdf.data(), (int64_t)cdf.shape(0), (int64_t)cdf.shape(1),
                                               sizes.data(), offsets.data(), p);
                if (!e.empty()) throw std::invalid_argument(e);
                auto* t = new (self) PyTables{std::move(p), PackedTables{}};
                build_packed_tables(t->p, t->packed);
            },
            "cdf"_a, "sizes"_a, "offsets"_a,
            "cdf: int32 [T, W]; sizes: int32 [T]; offsets: int32 [T] (see ncodec.entropy.tables.TableSet).")
        .def("__len__", [](const PyTables& t) { return t.p.T; })
        .def_prop_ro("nbytes", [](const PyTables& t) {
            return t.p.info.size() * sizeof(TableInfo) + t.p.cdf.size() * 4 + t.p.enc.size() * sizeof(EncSym) +
                   t.p.lut.size() * 2 + (t.packed.lut_shift.size() + t.packed.value.size() + t.packed.bucket.size() +
                                         t.packed.entry.size()) * 4;
        });

    m.def("encode", &encode, "tables"_a, "symbols"_a, "indexes"_a, "lanes"_a = 0, "segment_symbols"_a = 65536,
          "threads"_a = 0, "vector"_a = true,
          "Encodes int32 symbols [N] with int32 table indexes [N]; returns the rANS payload (bytes). vector=False "
          "keeps to scalar code (the AVX2 path writes the same bytes).");
    m.def("decode", &decode, "tables"_a, "data"_a, "indexes"_a, "threads"_a = 0, "vector"_a = true,
          "Decodes a payload; returns int32 [N] (N = indexes.size). Raises CorruptError/TruncatedError. "
          "vector=False keeps to the scalar rows (the AVX2 rows give the same symbols and errors).");
    m.attr("HAS_AVX2") = NCODEC_HAVE_AVX2_PATH && cpu_has_avx2();
    m.attr("MAX_LANES") = kMaxLanes;
}
