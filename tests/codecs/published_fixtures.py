"""Checkpoints in the two published layouts, built from random models, and the reference code's
forward passes, re-written here from the public COMPASS code (github.com/ImJongminPark/COMPASS,
``compass/model.py`` and ``compressai/models/compass.py``) independently of bench's networks, so
that the tests compare bench against the reference behaviour rather than against itself.
"""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from bench.compressai_import import import_compressai


def mean_scale(n: int, m: int, seed: int) -> nn.Module:
    """A random CompressAI MeanScaleHyperprior with trained-like latent magnitudes and CDF tables.

    At initialisation the latents are ~0.05 and would all round to zero; scaling the last layers of
    g_a and h_a spreads them over several integers, as in a trained model (as tests/test_zoo.py).
    """
    import_compressai()
    from compressai.models import MeanScaleHyperprior

    torch.manual_seed(seed)
    model = MeanScaleHyperprior(N=n, M=m)
    with torch.no_grad():
        model.g_a[6].weight.mul_(100.0)
        model.h_a[4].weight.mul_(10.0)
    model.update(force=True)
    return model.eval()


def old_entropy_bottleneck_names(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """CompressAI < 1.2 (and the COMPASS fork) register ``_matrix{i}``/``_bias{i}``/``_factor{i}``
    where CompressAI 1.2 has ``matrices.{i}``/``biases.{i}``/``factors.{i}``."""
    renamed = {}
    for key, value in state.items():
        for new, old in (("matrices", "_matrix"), ("biases", "_bias"), ("factors", "_factor")):
            prefix = f"entropy_bottleneck.{new}."
            if key.startswith(prefix):
                key = f"entropy_bottleneck.{old}{key[len(prefix):]}"
        renamed[key] = value
    return renamed


# ------------------------------------------------------------------------------ CompressAI zoo
def write_compressai_zoo_file(
    folder: Path, quality: int, n: int, m: int, seed: int, old_names: bool = True
) -> tuple[Path, nn.Module]:
    """A random mbt2018-mean saved as CompressAI's zoo files are: a plain state dict (with CDF tables)
    in ``mbt2018-mean-{quality}-{sha256[:8]}.pth.tar``. Returns the file and the source model."""
    model = mean_scale(n, m, seed)
    state = model.state_dict()
    if old_names:
        state = old_entropy_bottleneck_names(state)
    buffer = io.BytesIO()
    torch.save(state, buffer)
    data = buffer.getvalue()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"mbt2018-mean-{quality}-{hashlib.sha256(data).hexdigest()[:8]}.pth.tar"
    path.write_bytes(data)
    return path, model


# ------------------------------------------------------------------------------ official COMPASS
def make_coord(shape: tuple[int, int]) -> torch.Tensor:
    """The reference ``make_coord(shape, flatten=False)``: pixel centres in (-1, 1), float32, HxWx2."""
    seqs = []
    for n in shape:
        r = 2 / (2 * n)
        seqs.append(-1 + r + (2 * r) * torch.arange(n).float())
    return torch.stack(torch.meshgrid(*seqs, indexing="ij"), dim=-1)


class _RDBConv(nn.Module):
    def __init__(self, cin: int, growth: int) -> None:
        super().__init__()
        self.conv = nn.Sequential(nn.Conv2d(cin, growth, 3, padding=1), nn.ReLU())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat((x, self.conv(x)), 1)


class _RDB(nn.Module):
    def __init__(self, g0: int, growth: int, convs: int) -> None:
        super().__init__()
        self.convs = nn.Sequential(*[_RDBConv(g0 + c * growth, growth) for c in range(convs)])
        self.LFF = nn.Conv2d(g0 + convs * growth, g0, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.LFF(self.convs(x)) + x


class OfficialLIFF(nn.Module):
    """The reference ``LIFF_prediction`` (G0=64, RDNconfig "D"), module names included."""

    def __init__(self, g0: int = 64, blocks: int = 4, convs: int = 4, growth: int = 32) -> None:
        super().__init__()
        self.SFENet1 = nn.Conv2d(3, g0, 3, padding=1)
        self.SFENet2 = nn.Conv2d(g0, g0, 3, padding=1)
        self.RDBs = nn.ModuleList(_RDB(g0, growth, convs) for _ in range(blocks))
        self.GFF = nn.Sequential(nn.Conv2d(blocks * g0, g0, 1), nn.Conv2d(g0, g0, 3, padding=1))
        self.imnet = nn.Sequential(
            nn.Linear(g0 * 9 + 4, 256), nn.ReLU(),
            nn.Linear(256, 256), nn.ReLU(),
            nn.Linear(256, 256), nn.ReLU(),
            nn.Linear(256, 256), nn.ReLU(),
            nn.Linear(256, g0 * 3 * 9),
        )

    def forward(self, x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        f_1 = self.SFENet1(x)
        h = self.SFENet2(f_1)
        outs = []
        for block in self.RDBs:
            h = block(h)
            outs.append(h)
        feat = self.GFF(torch.cat(outs, 1)) + f_1
        b, c, hp, wp = feat.shape
        feat = F.unfold(feat, 3, padding=1).view(b, c * 9, hp, wp)
        feat_coord = make_coord((hp, wp)).permute(2, 0, 1)[None].expand(b, 2, hp, wp)
        coord = make_coord(size).view(1, -1, 2).expand(b, -1, 2).clamp(-1 + 1e-6, 1 - 1e-6)
        grid = coord.flip(-1).unsqueeze(1)
        q_feat = F.grid_sample(feat, grid, mode="nearest", align_corners=False)[:, :, 0].permute(0, 2, 1)
        q_coord = F.grid_sample(feat_coord, grid, mode="nearest", align_corners=False)[:, :, 0].permute(0, 2, 1)
        rel = coord - q_coord
        rel[:, :, 0] *= hp
        rel[:, :, 1] *= wp
        cell = torch.ones(b, coord.shape[1], 2)
        cell[:, :, 0] *= 2 / size[0]
        cell[:, :, 1] *= 2 / size[1]
        cell[:, :, 0] *= hp
        cell[:, :, 1] *= wp
        weights = self.imnet(torch.cat([q_feat, rel, cell], -1)).view(b, -1, c * 9, 3)
        out = torch.matmul(q_feat.unsqueeze(2), weights).squeeze(2)
        return out.permute(0, 2, 1).reshape(b, 3, *size)


def _odd_pad(x: torch.Tensor) -> tuple[torch.Tensor, tuple[bool, bool]]:
    """The reference ``odd_shape_padding``: one replicated column on the left / row on the top."""
    h, w = x.shape[-2:]
    return F.pad(x, (w % 2, 0, h % 2, 0), mode="replicate"), (h % 2 == 1, w % 2 == 1)


def _pad_check(x: torch.Tensor, flags: tuple[bool, bool]) -> torch.Tensor:
    return x[:, :, int(flags[0]) :, int(flags[1]) :]


class OfficialCoder:
    """The reference mean-scale hyperprior's encoder/decoder (its layer-wise padding, its
    statefulness: decompress uses the padding flags of the last compress, as the reference does)."""

    def __init__(self, model: nn.Module) -> None:
        self.m = model
        self.flags: dict[str, tuple[bool, bool]] = {}

    def _down(self, seq: nn.Sequential, x: torch.Tensor, tag: str) -> torch.Tensor:
        for i in range(0, len(seq), 2):  # conv, activation, conv, ...: pad before every conv
            x, self.flags[f"{tag}{i}"] = _odd_pad(x)
            x = seq[i](x)
            if i + 1 < len(seq):
                x = seq[i + 1](x)
        return x

    def _up(self, seq: nn.Sequential, x: torch.Tensor, tag: str) -> torch.Tensor:
        last = len(seq) - 1
        for j in range(0, len(seq), 2):
            x = _pad_check(seq[j](x), self.flags[f"{tag}{last - j}"])
            if j + 1 < len(seq):
                x = seq[j + 1](x)
        return x

    @torch.no_grad()
    def compress(self, x: torch.Tensor) -> tuple[bytes, bytes, torch.Size]:
        y = self._down(self.m.g_a, x, "g")
        z = self._down(self.m.h_a, y, "h")
        z_strings = self.m.entropy_bottleneck.compress(z)
        z_hat = self.m.entropy_bottleneck.decompress(z_strings, z.size()[-2:])
        scales, means = self._up(self.m.h_s, z_hat, "h").chunk(2, 1)
        indexes = self.m.gaussian_conditional.build_indexes(scales)
        y_strings = self.m.gaussian_conditional.compress(y, indexes, means=means)
        return y_strings[0], z_strings[0], z.size()[-2:]

    @torch.no_grad()
    def decompress(self, y_string: bytes, z_string: bytes, shape: torch.Size) -> torch.Tensor:
        z_hat = self.m.entropy_bottleneck.decompress([z_string], shape)
        scales, means = self._up(self.m.h_s, z_hat, "h").chunk(2, 1)
        indexes = self.m.gaussian_conditional.build_indexes(scales)
        y_hat = self.m.gaussian_conditional.decompress([y_string], indexes, means=means)
        return self._up(self.m.g_s, y_hat, "g")


def official_checkpoint(seed: int = 0) -> tuple[dict, dict[str, nn.Module]]:
    """A checkpoint as the reference train.py saves it (then update.py), and its source modules."""
    bl = mean_scale(128, 192, seed)
    rc = mean_scale(128, 192, seed + 100)
    torch.manual_seed(seed + 200)
    liff = OfficialLIFF().eval()
    checkpoint = {
        "epoch": 41,
        "base_state_dict": old_entropy_bottleneck_names(bl.state_dict()),
        "residual_state_dict": old_entropy_bottleneck_names(rc.state_dict()),
        "conti_sr_state_dict": liff.state_dict(),
        "loss": torch.tensor(1.25),
        "optimizer_res": {"state": {}, "param_groups": [{"lr": 5e-5, "betas": (0.9, 0.999), "params": [0, 1]}]},
        "lr_scheduler_el": {"step_size": 100, "gamma": 0.5, "last_epoch": 41, "base_lrs": [5e-5]},
    }
    return checkpoint, {"bl": bl, "rc": rc, "liff": liff}


def write_official_checkpoint(folder: Path, lmbda: float, checkpoint: dict,
                              name: str = "best_model.pth.tar") -> Path:
    path = folder / f"lambda_{lmbda}" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(checkpoint, path)
    return path
