"""Image codec: round trips, rate control, input kinds, tiling and bit-exact table selection."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import ncodec.codec as nc
from ncodec import entropy
from ncodec.bitstream import BitstreamError, ImageParams, ModelMismatchError, read_stream, write_stream
from ncodec.codec import image as pipe
from ncodec.models.registry import load_model

DATA = Path(__file__).parent / "data"


@pytest.fixture(scope="module")
def img() -> Image.Image:
    return Image.open(DATA / "bsds500_100007_crop.png").convert("RGB")


def psnr(a: Image.Image, b: Image.Image) -> float:
    x = np.asarray(a, dtype=np.float64)
    y = np.asarray(b, dtype=np.float64)
    return 10 * np.log10(255**2 / np.mean((x - y) ** 2))


def test_round_trip_and_rate_grows_with_quality(img):
    sizes, quality = [], []
    for q in (0, 30, 60, 100):
        data = nc.encode(img, quality=q)
        out = nc.decode(data)
        assert out.size == img.size and out.mode == "RGB"
        sizes.append(len(data))
        quality.append(psnr(img, out))
    assert sizes == sorted(sizes) and sizes[0] < sizes[-1]
    assert quality[-1] > quality[0]


def test_info_matches_stream(img):
    data = nc.encode(img, quality=42.5)
    inf = nc.info(data)
    assert (inf["width"], inf["height"], inf["quality"], inf["medium"]) == (320, 240, 42.5, "image")
    assert inf["bytes"] == len(data) and inf["bpp"] == pytest.approx(len(data) * 8 / (320 * 240))


def test_target_bpp_does_not_exceed_target(img):
    lo = len(nc.encode(img, quality=0)) * 8 / (320 * 240)
    hi = len(nc.encode(img, quality=100)) * 8 / (320 * 240)
    target = lo + 0.4 * (hi - lo)
    data = nc.encode(img, target_bpp=target)
    bpp = len(data) * 8 / (320 * 240)
    assert bpp <= target
    assert bpp > lo + 0.25 * (hi - lo)  # close to the target, not just the lowest rate


def test_grayscale_rgba_and_16bit(img):
    gray = img.convert("L")
    out = nc.decode(nc.encode(gray, quality=80))
    assert out.mode == "L" and out.size == gray.size
    rgba = img.convert("RGBA")
    alpha = np.random.default_rng(0).integers(0, 256, (240, 320), dtype=np.uint8)
    rgba.putalpha(Image.fromarray(alpha))
    out = nc.decode(nc.encode(rgba, quality=50))
    assert out.mode == "RGBA" and np.array_equal(np.asarray(out)[..., 3], alpha)  # lossless alpha
    g16 = Image.fromarray((np.asarray(gray).astype(np.uint16) * 257).astype(np.uint16))
    data = nc.encode(g16, quality=80)
    assert ImageParams.from_bytes(read_stream(data)[0].params).bit_depth == 16
    assert nc.decode(data).mode == "L"


def test_odd_sizes_and_tiles(img):
    small = img.crop((0, 0, 1, 1))
    assert nc.decode(nc.encode(small)).size == (1, 1)
    odd = img.crop((3, 5, 200, 163))
    data = nc.encode(odd, quality=70, tile=64)
    assert nc.info(data)["segments"] == 4 * 3
    out = nc.decode(data)
    assert out.size == odd.size and psnr(odd, out) > 15


def test_bad_arguments(img):
    with pytest.raises(ValueError):
        nc.encode(img, quality=101)
    with pytest.raises(ValueError):
        nc.encode(img, quality=10, target_bpp=0.5)
    with pytest.raises(nc.UnknownModelError):
        nc.encode(img, model="no-such-model")
    with pytest.raises(nc.UnsupportedInputError):
        nc.encode("not an image")
    with pytest.raises(nc.UnsupportedInputError):
        nc.encode(Image.new("RGB", (0, 0)))


def test_model_mismatch_names_both(img):
    data = nc.encode(img, quality=10, model="image-hp-v1")
    header, payloads = read_stream(data)
    header.model_hash = bytes(16)
    with pytest.raises(ModelMismatchError, match="image-hp-v1"):
        nc.decode(write_stream(header, payloads))
    header.model_id = "image-hp-v0"
    with pytest.raises(ModelMismatchError, match="image-hp-v0"):
        nc.decode(write_stream(header, payloads))


def _symbols(data: bytes, threads: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Entropy-decodes a one-tile stream: z symbols, y table indexes, y symbols."""
    from ncodec.entropy.varint import read_varint

    m = load_model("image-hp-v1")
    header, (payload,) = read_stream(data)
    p = ImageParams.from_bytes(header.params)
    z_shape = (1, m.config["n"], -(-p.height // 64), -(-p.width // 64))
    n, pos = read_varint(payload, 0)
    z = entropy.decode(payload[pos : pos + n], m.z_indexes(z_shape), m.z_tables, threads=threads)
    _, idx = m.hyper(torch.from_numpy(z.astype(np.int64)).view(z_shape))
    idx = idx.numpy().astype(np.int32).reshape(-1)
    y = entropy.decode(payload[pos + n :], idx, m.y_tables, threads=threads)
    return z, idx, y


def test_decoding_is_bit_exact_across_thread_counts(img):
    data = nc.encode(img, quality=60, model="image-hp-v1")  # _symbols reads the hyperprior's payload
    torch_threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        a = _symbols(data, threads=1)
        torch.set_num_threads(max(2, torch_threads))
        b = _symbols(data, threads=4)
    finally:
        torch.set_num_threads(torch_threads)
    for u, v in zip(a, b):
        assert np.array_equal(u, v)


def test_table_selection_is_exact_integer_arithmetic():
    """The integer hyper-synthesis gives identical indexes in batch and alone, float32 or not."""
    m = load_model("image-hp-v1")
    z = torch.randint(-6, 7, (2, m.config["n"], 3, 5))
    mu, idx = m.hyper(z)
    mu0, idx0 = m.hyper(z[:1])
    assert torch.equal(idx[:1], idx0) and torch.equal(mu[:1], mu0)
    assert (mu * 256 == torch.round(mu * 256)).all()  # exactly representable means


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cpu_and_cuda_decode_same_symbols(img):
    data_cpu = nc.encode(img, quality=50, device="cpu")
    data_gpu = nc.encode(img, quality=50, device="cuda")
    a = np.asarray(nc.decode(data_cpu, device="cuda"), dtype=np.int16)
    b = np.asarray(nc.decode(data_cpu, device="cpu"), dtype=np.int16)
    assert np.abs(a - b).max() <= 1  # float synthesis: at most one level of rounding
    assert len(data_gpu) > 0


def test_corrupt_payload_raises_typed_error(img):
    data = nc.encode(img, quality=30)
    header, (payload,) = read_stream(data)
    rng = np.random.default_rng(1)
    for _ in range(20):
        p = bytearray(payload)
        p[rng.integers(len(p))] ^= 1 << int(rng.integers(8))
        try:
            out = nc.decode(write_stream(header, [bytes(p)]))  # checksums recomputed: payload-level damage
            assert out.size == img.size
        except BitstreamError:
            pass


def test_prepare_rejects_float_images():
    with pytest.raises(nc.UnsupportedInputError):
        pipe.prepare(Image.new("F", (4, 4)))
