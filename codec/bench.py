"""``ncodec bench image``: encode/decode time per image against CompressAI's mbt2018-mean, same run.

CompressAI's model uses random weights (timing only, as the issue allows) at the same size as
ours (N=128, M=192), with its own ``update()`` tables and ``ans`` coder. Times are wall-clock
seconds per image, best of ``repeat``, with the same torch thread count for both.

It also times entropy coding alone on each image's real latents (the shipped model's symbols and
table indexes at ``quality``): ncodec's C++ coder on one thread against CompressAI's
``GaussianConditional`` on the same symbols and indexes (``entropy.bench.compare_on_symbols``).
"""

from __future__ import annotations

import json
import platform
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ncodec.codec import api
from ncodec.codec.errors import UnsupportedInputError
from ncodec.codec.image import IMAGE_EXTS, _to_tensor
from ncodec.entropy.bench import compare_on_symbols
from ncodec.models.image_model import DOWNSAMPLE
from ncodec.models.latent_codecs import HyperpriorCodec
from ncodec.models.registry import DEFAULT_MODEL, load_model

KODAK = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "images" / "kodak"


def _best(fn, repeat: int) -> tuple[float, object]:
    best, out = float("inf"), None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def _compressai_model(device: str):
    from compressai.zoo import mbt2018_mean

    torch.manual_seed(0)
    net = mbt2018_mean(quality=3, pretrained=False).eval().to(device)
    net.update(force=True)
    return net


def run_image_bench(
    images: Path | None = None,
    *,
    limit: int = 6,
    device: str = "cpu",
    repeat: int = 2,
    quality: float = 50.0,
    as_json: bool = False,
) -> dict:
    """Times ncodec and CompressAI mbt2018-mean on up to ``limit`` images; prints a table (or JSON).

    With ``device='cuda'`` it also reports frames per second at 1920x1080.
    """
    folder = Path(images) if images else KODAK
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_EXTS)[:limit]
    if not files:
        raise UnsupportedInputError(f"{folder}: no images to benchmark")
    ca = _compressai_model(device)
    model = load_model(DEFAULT_MODEL["image"])
    rows = []
    for f in files:
        img = Image.open(f).convert("RGB")
        # the hyperprior's residual symbols and tables (what every image model codes first)
        sym, idx, _ = HyperpriorCodec(model).symbols(
            *model.analyze(_to_tensor(np.asarray(img), "cpu"), quality)
        )
        ent = compare_on_symbols(
            sym.numpy().reshape(-1), idx.numpy().reshape(-1), model.y_tables, repeat=repeat
        )
        te, data = _best(lambda img=img: api.encode(img, quality=quality, device=device), repeat)
        td, _ = _best(lambda data=data: api.decode(data, device=device), repeat)
        x = torch.from_numpy(np.array(img)).permute(2, 0, 1)[None].float().div(255).to(device)
        h, w = x.shape[-2:]
        x = torch.nn.functional.pad(x, (0, (-w) % DOWNSAMPLE, 0, (-h) % DOWNSAMPLE))
        with torch.no_grad():
            tce, enc = _best(lambda x=x: ca.compress(x), repeat)
            tcd, _ = _best(lambda enc=enc: ca.decompress(enc["strings"], enc["shape"]), repeat)
        rows.append(
            {
                "image": f.name,
                "bytes": len(data),
                "ncodec_encode_s": te,
                "ncodec_decode_s": td,
                "compressai_encode_s": tce,
                "compressai_decode_s": tcd,
                "latent_symbols": int(sym.numel()),
                "entropy": ent["coders"],
            }
        )
    mean = {k: float(np.mean([r[k] for r in rows])) for k in rows[0] if k.endswith("_s")}
    # Entropy speeds over all images' latents together (total symbols / total time).
    n_sym = sum(r["latent_symbols"] for r in rows)
    entropy_msym_s = {}
    for coder_name in rows[0]["entropy"]:
        for op in ("encode", "decode"):
            t = sum(r["latent_symbols"] / r["entropy"][coder_name][f"{op}_msym_s"] for r in rows)
            entropy_msym_s[f"{coder_name}_{op}"] = n_sym / t
    result = {
        "device": device,
        "threads": torch.get_num_threads(),
        "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
        "images": rows,
        "mean": mean,
        "ratios": {
            "decode_speedup_vs_compressai": mean["compressai_decode_s"] / mean["ncodec_decode_s"],
            "encode_speedup_vs_compressai": mean["compressai_encode_s"] / mean["ncodec_encode_s"],
        },
        "entropy_msym_s": entropy_msym_s,
    }
    if "compressai_ans_decode" in entropy_msym_s:
        for op in ("decode", "encode"):
            result["ratios"][f"entropy_{op}_vs_compressai"] = (
                entropy_msym_s[f"ncodec_cpp_1t_{op}"] / entropy_msym_s[f"compressai_ans_{op}"]
            )
    if device.startswith("cuda"):
        hd = Image.fromarray(np.random.default_rng(0).integers(0, 256, (1080, 1920, 3), dtype=np.uint8))
        data = api.encode(hd, quality=quality, device=device)
        td, _ = _best(lambda: api.decode(data, device=device), repeat)
        result["decode_fps_1080p"] = 1.0 / td
    if as_json:
        print(json.dumps(result, indent=1))
    else:
        print(f"{'image':<14}{'bytes':>8}{'enc s':>9}{'dec s':>9}{'CA enc s':>10}{'CA dec s':>10}")
        for r in rows:
            print(
                f"{r['image']:<14}{r['bytes']:>8}{r['ncodec_encode_s']:>9.3f}{r['ncodec_decode_s']:>9.3f}"
                f"{r['compressai_encode_s']:>10.3f}{r['compressai_decode_s']:>10.3f}"
            )
        print(
            f"mean: ncodec encode {mean['ncodec_encode_s']:.3f} s, decode {mean['ncodec_decode_s']:.3f} s; "
            f"CompressAI mbt2018-mean encode {mean['compressai_encode_s']:.3f} s, "
            f"decode {mean['compressai_decode_s']:.3f} s"
        )
        print(
            f"ratio (CompressAI / ncodec): decode {result['ratios']['decode_speedup_vs_compressai']:.2f}x, "
            f"encode {result['ratios']['encode_speedup_vs_compressai']:.2f}x  "
            f"[{device}, {result['threads']} threads]"
        )
        e = entropy_msym_s
        if "compressai_ans_decode" in e:
            print(
                f"entropy alone on the latents ({n_sym:,} symbols, q={quality:g}), M symbols/s: "
                f"ncodec 1 thread decode {e['ncodec_cpp_1t_decode']:.0f}, "
                f"encode {e['ncodec_cpp_1t_encode']:.0f}; "
                f"CompressAI ans decode {e['compressai_ans_decode']:.1f}, "
                f"encode {e['compressai_ans_encode']:.1f}; "
                f"ratio decode {result['ratios']['entropy_decode_vs_compressai']:.1f}x, "
                f"encode {result['ratios']['entropy_encode_vs_compressai']:.1f}x"
            )
        if "decode_fps_1080p" in result:
            print(f"1080p decode: {result['decode_fps_1080p']:.1f} fps")
    return result
