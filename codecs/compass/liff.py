"""LIFF: local implicit filter function, COMPASS's inter-layer arbitrary-scale predictor (spec §4).

Î_{k-1} → RDN-like features F (G0 channels) → 3×3 unfolding (9·G0 values q per position) → for
every target pixel: nearest previous-layer position, local grid r and scale token s → filter MLP
[q, r, s] → a (9·G0)×3 filter f → RGB = q·f.

Two implementations with the same parameters:
- ``forward_direct``: the formula as written (unfold, gather q per target pixel, run the MLP on
  [q, r, s], multiply q by the generated filter). Kept as the reference for tests.
- ``forward`` (fast path): an exact algebraic refactoring. q only depends on the previous-layer
  position, so (a) the q-part of the first MLP layer, W_q·q, is a 3×3 convolution of F evaluated
  once per previous-layer pixel, and (b) q·f = Σ_u h_u·(Σ_j q_j W_out[j,c,u]) + Σ_j q_j b_out[j,c],
  whose inner sums are again 3×3 convolutions of F (3·hidden + 3 channels) per previous-layer
  pixel. Per target pixel there remain the r/s terms, the hidden layers and a 3·hidden-term sum.
  Both paths give the same outputs up to float rounding (tests/codecs/compass/test_liff.py).

Query pixels are processed in bands of target rows (``chunk_pixels`` per band); the fast path
evaluates the per-pixel convolutions only on the previous-layer rows a band needs, so memory stays
bounded on large images.

Choices the spec leaves open (ours): nearest lookup by exact integer arithmetic,
i' = floor((2i+1)·H_{k-1} / (2·H_k)), which on an exact tie takes the lower/right pixel (the upper
index; ``LiffConfig.nearest = "grid_sample"`` is the official code's float32 lookup instead, which
``compass@official`` uses); unfolding pads F with zeros (as ``F.unfold(padding=1)``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class LiffConfig:
    g0: int = 64  # feature channels G0
    rdb_blocks: int = 4  # residual dense blocks D
    rdb_convs: int = 4  # conv layers per block C
    growth: int = 32  # growth rate G
    mlp_hidden: int = 256
    mlp_layers: int = 4  # hidden layers of the filter MLP
    chunk_pixels: int = 16384  # target pixels per query band
    # How a target pixel exactly half-way between two previous-layer centres picks one (``NEAREST``):
    # bench's exact integer rule, or the official code's float32 grid_sample (compass@official)
    nearest: str = "exact"

    def __post_init__(self) -> None:
        if self.nearest not in NEAREST:
            raise ValueError(f"unknown nearest rule {self.nearest!r}; known: {', '.join(NEAREST)}")

    def to_dict(self) -> dict:
        data = asdict(self)
        if data["nearest"] == "exact":  # files written before the rule existed read back the same
            del data["nearest"]
        return data


# "exact": i' = floor((2i+1)·n_prev / (2n)) in integers, so a tie takes the upper index.
# "grid_sample": the official code's make_coord (float32 centres, clamped to ±(1 − 1e-6)) through
# F.grid_sample(mode="nearest", align_corners=False), which rounds half to even in float32: on an
# exact tie the index depends on the rounding of the coordinate (from an even size at ×1.5 every
# third column is a tie and all of them take the lower index on CPU).
NEAREST = ("exact", "grid_sample")


class _DenseLayer(nn.Module):
    def __init__(self, channels: int, growth: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, growth, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([x, F.relu(self.conv(x))], 1)


class _ResidualDenseBlock(nn.Module):
    def __init__(self, g0: int, growth: int, convs: int) -> None:
        super().__init__()
        self.dense = nn.Sequential(*[_DenseLayer(g0 + i * growth, growth) for i in range(convs)])
        self.fuse = nn.Conv2d(g0 + convs * growth, g0, 1)  # local feature fusion

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.fuse(self.dense(x))


class FeatureExtractor(nn.Module):
    """RDN without its upsampling tail: shallow convs, D dense blocks, global fusion, skip."""

    def __init__(self, cfg: LiffConfig) -> None:
        super().__init__()
        self.shallow1 = nn.Conv2d(3, cfg.g0, 3, padding=1)
        self.shallow2 = nn.Conv2d(cfg.g0, cfg.g0, 3, padding=1)
        self.blocks = nn.ModuleList(
            _ResidualDenseBlock(cfg.g0, cfg.growth, cfg.rdb_convs) for _ in range(cfg.rdb_blocks)
        )
        self.global_fuse = nn.Sequential(
            nn.Conv2d(cfg.rdb_blocks * cfg.g0, cfg.g0, 1), nn.Conv2d(cfg.g0, cfg.g0, 3, padding=1)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f1 = self.shallow1(x)
        h = self.shallow2(f1)
        outs = []
        for block in self.blocks:
            h = block(h)
            outs.append(h)
        return self.global_fuse(torch.cat(outs, 1)) + f1


@dataclass
class QueryGeometry:
    """Where the target pixels of one axis sit relative to the previous layer."""

    index: torch.Tensor  # nearest previous-layer index per target index (long)
    offset: torch.Tensor  # local grid r along this axis, in previous-layer pixels, in [-1, 1)
    scale: float  # scale token component 2·n_prev / n


def axis_geometry(n_prev: int, n: int, device: torch.device | str = "cpu", nearest: str = "exact") -> QueryGeometry:
    """Nearest lookup, local grid and scale token along one axis, from the *actual* sizes.

    Target centre p = −1 + (2i+1)/n, previous centre p' = −1 + (2i'+1)/n_prev (align_corners=False);
    r = (p − p')·n_prev = (2i+1)·n_prev/n − (2i'+1); s = 2·n_prev/n. ``nearest`` picks i' (``NEAREST``).
    """
    if n_prev < 1 or n < 1:
        raise ValueError(f"sizes must be positive, got {n_prev} → {n}")
    i = torch.arange(n, device=device, dtype=torch.long)
    if nearest == "grid_sample":
        index = _grid_sample_index(n_prev, n, device)
    elif nearest == "exact":
        index = torch.div((2 * i + 1) * n_prev, 2 * n, rounding_mode="floor").clamp_(0, n_prev - 1)
    else:
        raise ValueError(f"unknown nearest rule {nearest!r}; known: {', '.join(NEAREST)}")
    pos = (2 * i + 1).double() * n_prev / n
    offset = (pos - (2 * index + 1).double()).float()
    return QueryGeometry(index, offset, 2.0 * n_prev / n)


def _grid_sample_index(n_prev: int, n: int, device: torch.device | str) -> torch.Tensor:
    """The previous-layer index the official code's ``grid_sample(mode="nearest")`` reads for each
    target index: its own float32 arithmetic, run on a table of indices (exact in float32)."""
    if torch.device(device).type == "meta":  # shapes only (operation counting): the exact rule's
        return torch.empty(n, dtype=torch.long, device=device)
    r = 1.0 / n  # make_coord with v0, v1 = -1, 1: r = (v1 - v0) / (2n)
    centres = (-1 + r) + (2 * r) * torch.arange(n, device=device).float()
    centres = centres.clamp_(-1 + 1e-6, 1 - 1e-6)
    grid = torch.stack([centres, torch.zeros_like(centres)], -1).view(1, 1, n, 2)  # (x, y), one row
    table = torch.arange(n_prev, device=device, dtype=torch.float32).view(1, 1, 1, n_prev)
    return F.grid_sample(table, grid, mode="nearest", align_corners=False).view(n).round_().long()


def _previous_rows(r0: int, r1: int, n_prev: int, n: int, nearest: str = "exact") -> tuple[int, int]:
    """The previous-layer rows [lo, hi) that target rows r0..r1-1 look up: ``axis_geometry``'s index
    of the first and last row (it never decreases), in Python integers, so that no tensor is read
    back (no device sync; LIFF also runs on the meta device, where operations are counted). The
    grid_sample rule differs from the exact one by at most one row at a (near-)tie: one row more
    on each side covers it."""

    def index(i: int) -> int:
        return min((2 * i + 1) * n_prev // (2 * n), n_prev - 1)

    if nearest == "exact":
        return index(r0), index(r1 - 1) + 1
    return max(index(r0) - 1, 0), min(index(r1 - 1) + 2, n_prev)


class LIFF(nn.Module):
    def __init__(self, cfg: LiffConfig | None = None) -> None:
        super().__init__()
        self.cfg = cfg or LiffConfig()
        c = self.cfg
        self.q_dim = 9 * c.g0
        self.encoder = FeatureExtractor(c)
        layers: list[nn.Module] = [nn.Linear(self.q_dim + 4, c.mlp_hidden), nn.ReLU()]
        for _ in range(c.mlp_layers - 1):
            layers += [nn.Linear(c.mlp_hidden, c.mlp_hidden), nn.ReLU()]
        layers.append(nn.Linear(c.mlp_hidden, self.q_dim * 3))
        self.mlp = nn.Sequential(*layers)

    # ----------------------------------------------------------------------------- helpers
    @property
    def _first(self) -> nn.Linear:
        return self.mlp[0]  # type: ignore[return-value]

    @property
    def _last(self) -> nn.Linear:
        return self.mlp[-1]  # type: ignore[return-value]

    def _hidden_tail(self, h: torch.Tensor) -> torch.Tensor:
        """The hidden layers after the first (whose ReLU is already applied to ``h``)."""
        for module in list(self.mlp)[2:-1]:
            # in-place ReLU: this runs for every target pixel, where memory traffic dominates
            h = module(h) if isinstance(module, nn.Linear) else h.relu_()
        return h

    def _bands(self, out_h: int, out_w: int) -> list[tuple[int, int]]:
        rows = max(1, self.cfg.chunk_pixels // max(out_w, 1))
        return [(r, min(r + rows, out_h)) for r in range(0, out_h, rows)]

    @staticmethod
    def _check(x: torch.Tensor, size: tuple[int, int]) -> None:
        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"LIFF expects a Bx3xHxW tensor, got {tuple(x.shape)}")
        if size[0] < 1 or size[1] < 1:
            raise ValueError(f"target size must be positive, got {size}")

    # ----------------------------------------------------------------------------- direct path
    def forward_direct(self, x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        """The formula as written; slow and memory-hungry, for tests."""
        self._check(x, size)
        feat = self.encoder(x)
        b, _, hp, wp = feat.shape
        q_all = F.unfold(feat, 3, padding=1).transpose(1, 2)  # B × (hp·wp) × 9C, index c·9 + tap
        gy = axis_geometry(hp, size[0], x.device, self.cfg.nearest)
        gx = axis_geometry(wp, size[1], x.device, self.cfg.nearest)
        scale = torch.tensor([gy.scale, gx.scale], device=x.device, dtype=x.dtype)
        out = []
        for r0, r1 in self._bands(*size):
            flat = (gy.index[r0:r1, None] * wp + gx.index[None, :]).reshape(-1)
            q = q_all[:, flat]  # B × Q × 9C
            rel = (
                torch.stack(torch.broadcast_tensors(gy.offset[r0:r1, None], gx.offset[None, :]), -1)
                .reshape(-1, 2)
                .to(x.dtype)
            )
            inp = torch.cat([q, rel.expand(b, -1, -1), scale.expand(b, q.shape[1], 2)], -1)
            filters = self.mlp(inp).view(b, -1, self.q_dim, 3)
            rgb = torch.einsum("bqj,bqjc->bqc", q, filters)
            out.append(rgb.transpose(1, 2).reshape(b, 3, r1 - r0, size[1]))
        return torch.cat(out, 2)

    # ----------------------------------------------------------------------------- fast path
    def _precompute_weights(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Conv weights for the per-previous-pixel terms (see the module docstring)."""
        c, hidden = self.cfg.g0, self.cfg.mlp_hidden
        w_q = self._first.weight[:, : self.q_dim].reshape(hidden, c, 3, 3)
        # W_out rows are indexed (j, colour) with j = c·9 + tap: regroup per (colour, hidden unit).
        w_out = self._last.weight.view(c, 9, 3, hidden).permute(2, 3, 0, 1).reshape(3 * hidden, c, 3, 3)
        b_out = self._last.bias.view(c, 9, 3).permute(2, 0, 1).reshape(3, c, 3, 3)
        return w_q, w_out, b_out

    def forward(self, x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        """Predict the Bx3x``size`` image from the previous-layer image ``x`` (fast path)."""
        self._check(x, size)
        feat = self.encoder(x)
        b, _, hp, wp = feat.shape
        hidden = self.cfg.mlp_hidden
        gy = axis_geometry(hp, size[0], x.device, self.cfg.nearest)
        gx = axis_geometry(wp, size[1], x.device, self.cfg.nearest)
        w_q, w_out, b_out = self._precompute_weights()
        weight = torch.cat([w_q, w_out, b_out], 0)
        w_first = self._first.weight
        # First-layer terms that do not depend on q: the scale token and the bias are constant per
        # image (folded into the conv bias of the W_q·q channels); the local grid is separable
        # (r_y depends on the row only, r_x on the column only).
        const = (
            self._first.bias + w_first[:, self.q_dim + 2] * gy.scale + w_first[:, self.q_dim + 3] * gx.scale
        )
        bias = torch.cat([const, const.new_zeros(weight.shape[0] - hidden)])
        col_term = gx.offset.to(x.dtype)[:, None] * w_first[:, self.q_dim + 1]  # W × hidden
        padded = F.pad(feat, (1, 1, 1, 1))  # the zero padding of the 3×3 unfolding
        out = []
        for r0, r1 in self._bands(*size):
            iy = gy.index[r0:r1]
            lo, hi = _previous_rows(r0, r1, hp, size[0], self.cfg.nearest)
            band = padded[:, :, lo : hi + 2].contiguous(memory_format=torch.channels_last)
            # channels-last output: every previous-layer pixel's values are one contiguous row
            per_pixel = F.conv2d(band, weight, bias).permute(0, 2, 3, 1).reshape(b, -1, weight.shape[0])
            flat = ((iy - lo)[:, None] * wp + gx.index[None, :]).reshape(-1)
            gathered = per_pixel.index_select(1, flat)  # B × Q × (4·hidden+3)
            row_term = gy.offset[r0:r1].to(x.dtype)[:, None] * w_first[:, self.q_dim]  # rows × hidden
            pos_term = (row_term[:, None, :] + col_term[None, :, :]).reshape(-1, hidden)
            h = F.relu(gathered[..., :hidden] + pos_term)
            h = self._hidden_tail(h)
            g = gathered[..., hidden : 4 * hidden].unflatten(-1, (3, hidden))
            rgb = (g * h.unsqueeze(-2)).sum(-1) + gathered[..., 4 * hidden :]
            out.append(rgb.transpose(1, 2).reshape(b, 3, r1 - r0, size[1]))
        return torch.cat(out, 2)
