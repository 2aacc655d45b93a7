"""Model cards from evaluation results: ``python -m ncodec.eval.card image RESULTS.json CHECKPOINT OUT.md``.

The card carries the training record (from the checkpoint's metadata), the full RD table measured
by ``ncodec eval image`` on Kodak, and BD-rates (PSNR-RGB, pchip) against the classical codecs
measured in this repository (``eval/results/kodak``) and the published curves in
``../shared/anchors/image-kodak``. Negative BD-rate means ncodec needs fewer bits.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ncodec.eval.anchors import Curve, anchors_root, load_curve
from ncodec.eval.bdrate import bd_psnr, bd_rate

MEASURED = Path(__file__).resolve().parent / "results" / "kodak"
PUBLISHED = {
    "VTM": "vtm.json",
    "BPG (x265 4:4:4)": "bpg_444_x265_ycbcr.json",
    "CompressAI bmshj2018-hyperprior": "compressai-bmshj2018-hyperprior_mse_cuda.json",
    "CompressAI mbt2018-mean": "compressai-mbt2018-mean_mse_cuda.json",
    "WebP (published)": "webp.json",
    "JPEG (published)": "jpeg.json",
}


def _bd(anchor: Curve, ours: Curve) -> tuple[str, str]:
    """BD-rate and BD-PSNR, each "n/a (reason)" when the curves do not allow it."""
    a, t = anchor.results, ours.results
    out = []
    for fn, fmt in ((bd_rate, "{:+.1f} %"), (bd_psnr, "{:+.2f} dB")):
        try:
            out.append(fmt.format(fn(a["bpp"], a["psnr-rgb"], t["bpp"], t["psnr-rgb"])))
        except (ValueError, KeyError) as e:
            out.append(f"n/a ({str(e).splitlines()[0][:50]})")
    return out[0], out[1]


def bd_table(ours: Curve) -> list[tuple[str, str, str]]:
    """(anchor, BD-rate, BD-PSNR) rows against measured and published anchors."""
    rows = []
    for name in ("webp", "avif", "x265", "jpeg", "jpeg420"):
        f = MEASURED / f"{name}.json"
        if f.exists():
            rows.append((f"{name} (measured here)", *_bd(load_curve(f), ours)))
    root = anchors_root() / "image-kodak"
    for label, fname in PUBLISHED.items():
        if (root / fname).exists():
            rows.append((label, *_bd(load_curve(root / fname), ours)))
    return rows


def image_card(
    results: Path,
    checkpoint: Path | None,
    model_id: str = "image-hp-v1",
    *,
    data_note: str | None = None,
    run_note: str | None = None,
) -> str:
    """The model card (Markdown) from ``ncodec eval image`` results and the training checkpoint;
    ``data_note`` and ``run_note`` add a sentence on data preparation and on how the run was done."""
    ours = load_curve(results)
    r = ours.results
    meta = {}
    if checkpoint and Path(checkpoint).exists():
        from safetensors import safe_open

        with safe_open(str(checkpoint), "pt") as f:
            meta = json.loads(f.metadata()["meta"])
    hist = meta.get("history", [])
    last = hist[-1] if hist else {}
    lines = [
        f"# Model card: {model_id}",
        "",
        f"Variable-rate learned image codec shipped with ncodec (`models/weights/{model_id}.safetensors`).",
        "",
        "## Model",
        f"- Mean-scale hyperprior (Minnen et al. 2018), N={meta.get('n', 128)}, M={meta.get('m', 192)}, GDN "
        "transforms; one weight file for the whole rate range through per-channel gain vectors of 8 trained "
        "levels (CompressAI's MSE lambdas 0.0018-0.18), interpolated geometrically for `--quality 0..100`; "
        "qualities below about 26 extrapolate the log-gains below the lowest trained level (to ~0.1 bpp).",
        "- Hyper-synthesis in exact integer arithmetic (14-bit weights, 18-bit activations, int64 "
        "requantisation); 64 Gaussian tables and per-channel factorized tables stored as 16-bit integer "
        "CDFs. Decoded symbols are bit-identical on any machine; pixels may differ by float rounding in the "
        "synthesis.",
        "",
        "## Training",
        f"- Data: `{meta.get('data', '../shared/data/images/train')}` (BSDS500 + Urban100), random "
        f"{meta.get('crop', 128)}x{meta.get('crop', 128)} crops (0.5-1x rescale, flips), batch "
        f"{meta.get('batch', 8)}. Never Kodak." + (f" {data_note}" if data_note else ""),
        "- Loss: lambda(q) * 255^2 * MSE + bpp at a uniformly random continuous quality per crop; Adam; "
        "rounding (straight-through) for distortion, noise for rate.",
        f"- Steps: {meta.get('step', '?')}, wall time: {meta.get('seconds', 0) / 3600:.2f} h, hardware: "
        f"{meta.get('hardware', '?')}." + (f" {run_note}" if run_note else ""),
        f"- Final training log: {json.dumps(last)}" if last else "- Final training log: n/a",
        "",
        "## Rate-distortion on Kodak (24 images, RGB PSNR averaged per image)",
        "",
        "| quality | bpp | PSNR-RGB (dB) | MS-SSIM | encode s | decode s |",
        "|---|---|---|---|---|---|",
    ]
    nan = [float("nan")] * len(r["bpp"])
    cols = [
        r.get(k, nan) for k in ("quality", "bpp", "psnr-rgb", "ms-ssim-rgb", "encoding_time", "decoding_time")
    ]
    for q, bpp, psnr, msssim, te, td in zip(*cols):
        lines.append(f"| {q} | {bpp:.4f} | {psnr:.2f} | {msssim:.4f} | {te:.2f} | {td:.2f} |")
    lines += [
        "",
        "## BD-rate (PSNR-RGB) against other codecs on Kodak",
        "",
        "| anchor | BD-rate | BD-PSNR |",
        "|---|---|---|",
    ]
    lines += [f"| {a} | {b} | {c} |" for a, b, c in bd_table(ours)]
    lines += [
        "",
        "Targets of issue 4: at most -25 % against WebP (method 6) and at most 0 % against AVIF. See the "
        "issue note for the gap and what remains.",
        "",
        "## Limitations",
        f"- Trained for {meta.get('step', '?')} steps ({meta.get('seconds', 0) / 3600:.2f} h): far from "
        "converged (CompressAI trains this architecture for millions of steps); see the BD-rate against its "
        "published mbt2018-mean above.",
        "- Images are coded in independent 1024x1024 tiles; tile borders can show seams at low rates.",
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m ncodec.eval.card")
    p.add_argument("medium", choices=["image"])
    p.add_argument("results", type=Path, help="ncodec.json from `ncodec eval image`")
    p.add_argument("checkpoint", type=Path, nargs="?", help="training checkpoint (for the training record)")
    p.add_argument("--out", type=Path, default=None)
    p.add_argument("--data-note", default=None, help="how the training data was prepared (one sentence)")
    p.add_argument("--run-note", default=None, help="how the run was done: chunks, sharing (one sentence)")
    args = p.parse_args(argv)
    text = image_card(args.results, args.checkpoint, data_note=args.data_note, run_note=args.run_note)
    if args.out:
        args.out.write_text(text)
    else:
        print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
