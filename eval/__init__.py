"""ncodec.eval — rate-distortion evaluation of ncodec against classical codecs and published anchors.

Modules: :mod:`.metrics` (PSNR, MS-SSIM, SI-SDR, STOI, PESQ, ...), :mod:`.bdrate` (Bjøntegaard deltas),
:mod:`.baselines` / :mod:`.baselines_audio` / :mod:`.baselines_video` (JPEG, WebP, AVIF, x265, Opus,
AAC, MP3, x264, SVT-AV1 and the ncodec codec behind one interface), :mod:`.anchors` (CompressAI-schema
curves), :mod:`.plots`, :mod:`.report` (HTML), :mod:`.run_image` / :mod:`.run_audio` / :mod:`.run_video`
(runners) and :mod:`.cli` (``ncodec eval``).
"""

from .anchors import Curve, find_anchor, load_curve, resolve_anchors
from .bdrate import BDError, bd_psnr, bd_rate
from .cli import add_eval_parser, run_eval
from .metrics import mel_distance, ms_ssim_rgb, pesq_wb, psnr_rgb, psnr_y, psnr_yuv420, si_sdr, stoi

__all__ = [
    "BDError",
    "Curve",
    "add_eval_parser",
    "bd_psnr",
    "bd_rate",
    "find_anchor",
    "load_curve",
    "mel_distance",
    "ms_ssim_rgb",
    "pesq_wb",
    "psnr_rgb",
    "psnr_y",
    "psnr_yuv420",
    "resolve_anchors",
    "run_eval",
    "si_sdr",
    "stoi",
]
