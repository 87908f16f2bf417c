"""The quality metrics a report can put on the RD curves' quality axis and BD-rate on
(``bench report --metric``). Standard library only: the command line reads the names at start-up.

Each is a mean over images, per quality, of a per-image value in a record (CompressAI's convention,
as for PSNR-RGB): the RD curves are (mean bpp, mean metric) and BD-rate integrates log-rate over the
common range of the metric (``bench.measuring.bdrate``: its overlap rules are fractions of the curves' own
ranges, so they hold for any dB-like metric).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RDMetric:
    name: str  # as --metric takes it
    column: str  # the Record attribute (a report table column)
    label: str  # axis and column label
    definition: str  # one sentence for the method text
    axis: str  # how BD-rate reasons and notes name the quality axis
    yuv: bool = False  # measured through a YCbCr matrix (the report says which)

    @property
    def with_unit(self) -> str:
        """The label with its unit: ``PSNR-YUV dB``, ``MS-SSIM dB``."""
        return self.label if self.label.endswith("dB") else f"{self.label} dB"


METRICS: dict[str, RDMetric] = {m.name: m for m in (
    RDMetric("psnr-rgb", "psnr_rgb", "PSNR-RGB",
             "PSNR-RGB: 10·log10(255²/MSE) over R, G and B of the 8-bit reconstruction against the 8-bit "
             "layer image", "PSNR"),
    RDMetric("psnr-y", "psnr_y", "PSNR-Y",
             "PSNR-Y: PSNR (peak 255) of the luma of the 8-bit original and the 8-bit reconstruction, "
             "both converted to YCbCr", "PSNR-Y", yuv=True),
    RDMetric("psnr-yuv", "psnr_yuv", "PSNR-YUV",
             "PSNR-YUV: (6·PSNR-Y + PSNR-U + PSNR-V) / 8, the JVET/JCT-VC weighting, each plane's PSNR "
             "(peak 255) of the 8-bit original and the 8-bit reconstruction, both converted to YCbCr",
             "PSNR-YUV", yuv=True),
    RDMetric("ms-ssim-db", "ms_ssim_db", "MS-SSIM dB",
             "MS-SSIM dB: −10·log10(1 − MS-SSIM-RGB) per image (5-scale MS-SSIM over R, G, B, data "
             "range 255); NaN where a layer is too small for MS-SSIM", "MS-SSIM dB"),
)}
DEFAULT_METRIC = "psnr-rgb"
