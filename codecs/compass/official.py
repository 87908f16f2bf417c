"""``compass@official``: the published COMPASS checkpoints (github.com/ImJongminPark/COMPASS) in bench.

Where the files go
------------------
The reference repository's training script writes, per λ, ``checkpoints/lambda_<λ>/best_model.pth.tar``
and its ``update.py`` adds the entropy tables as ``best_model_updated.pth.tar`` beside it; the
released ``checkpoints.zip`` unpacks to that layout. bench reads the same layout from the folder
``$BENCH_OFFICIAL_COMPASS`` (default ``~/.cache/bench/compass-official``)::

    <folder>/lambda_0.0018/best_model_updated.pth.tar   quality 1   (or best_model.pth.tar)
    <folder>/lambda_0.0035/best_model_updated.pth.tar   quality 2
    <folder>/lambda_0.0067/best_model_updated.pth.tar   quality 3
    <folder>/lambda_0.013/best_model_updated.pth.tar    quality 4

When both names exist, ``best_model_updated.pth.tar`` is used (it is what the reference
``eval.py`` reads). The entropy tables are recomputed in any case (``update(force=True)`` after
loading), so either file gives the same codec.

What a file holds
-----------------
A ``torch.save``-d dict; bench reads three entries (``torch.load(weights_only=True)``: tensors and
plain values only) and ignores the rest (epoch, loss, optimizer and scheduler states):

* ``base_state_dict``: the BL, a mean-scale hyperprior (CompressAI's ``mbt2018-mean`` at the
  matching quality, N=128, M=192, frozen during COMPASS training);
* ``residual_state_dict``: RC, a second mean-scale hyperprior (N=128, M=192);
* ``conti_sr_state_dict``: LIFF (the reference code's ``LIFF_prediction``, G0=64, RDN config
  "D": 4 blocks × 4 convs, growth 32; filter MLP 580 → 4×256 → 1728).

Key mapping (official → bench)
------------------------------
``{i}``, ``{d}``, ``{c}`` stand for integers that carry over unchanged; every official key must map
to a bench key of the same shape and every bench key must be filled (except the entropy tables),
else loading stops with an error naming the key, the expected and the found shape.

====================================================  ===============================================
official key (``conti_sr_state_dict``)                 bench key (``CompassModel.liff``)
====================================================  ===============================================
``SFENet1.{weight,bias}``                              ``encoder.shallow1.{weight,bias}``
``SFENet2.{weight,bias}``                              ``encoder.shallow2.{weight,bias}``
``RDBs.{d}.convs.{c}.conv.0.{weight,bias}``            ``encoder.blocks.{d}.dense.{c}.conv.{weight,bias}``
``RDBs.{d}.LFF.{weight,bias}``                         ``encoder.blocks.{d}.fuse.{weight,bias}``
``GFF.0.{weight,bias}`` / ``GFF.1.{weight,bias}``      ``encoder.global_fuse.0.*`` / ``encoder.global_fuse.1.*``
``imnet.{i}.{weight,bias}`` (i = 0, 2, 4, 6, 8)        ``mlp.{i}.{weight,bias}``
====================================================  ===============================================

====================================================  ===============================================
official key (``base_state_dict``, ``residual_...``)   bench key (``CompassModel.bl``, ``.rc``)
====================================================  ===============================================
``entropy_bottleneck._matrix{i}``                      ``entropy_bottleneck.matrices.{i}``
``entropy_bottleneck._bias{i}``                        ``entropy_bottleneck.biases.{i}``
``entropy_bottleneck._factor{i}``                      ``entropy_bottleneck.factors.{i}``
``entropy_bottleneck._{matrices,biases,factors}.{i}``  same as the three rows above (older CompressAI)
``module.`` + any key                                  the key without ``module.`` (DataParallel)
any other key (``g_a.*``, ``g_s.*``, ``h_a.*``,        the same key
``h_s.*``, ``entropy_bottleneck.quantiles``, …,
``gaussian_conditional.*``)
====================================================  ===============================================

Entropy tables (``*._quantized_cdf``, ``*._offset``, ``*._cdf_length``,
``gaussian_conditional.scale_table``) may be present or not; they are dropped and recomputed with
CompressAI's ``update(force=True)`` (the reference ``update.py`` does the same).

Function, not only names
------------------------
LIFF and the two hyperpriors are layer for layer the reference networks (same layer order, same
activations, unfolding channel order c·9 + tap, MLP input [q, r_y, r_x, s_y, s_x], filter output
laid out (576, 3)). The one structural difference is the layer-wise padding of BL and RC: the
reference pads odd sizes at the top/left and also before the hyper-encoder's stride-1 first conv;
``compass@official`` runs with that scheme (``model.OFFICIAL_CONFIG``, ``residual.OFFICIAL_PADDING``).
LIFF's nearest previous-layer pixel on an exact tie (a target pixel centre exactly half-way between
two previous-layer centres, wherever the previous size has more factors of 2 than the target size:
from an even size at ×1.5, a third of the columns) follows the reference too: ``OFFICIAL_CONFIG``
sets ``LiffConfig.nearest = "grid_sample"``, the reference's own float32 ``make_coord`` and
``grid_sample(mode="nearest")`` run on a table of indices, which on CPU takes the lower index on
every such tie (the reference may break them differently on a GPU). bench's default ``compass``
keeps its exact integer rule (the upper index). With that, every pixel agrees with the reference to
float rounding (tests/codecs/compass/test_official.py).
"""

from __future__ import annotations

import hashlib
import io
import os
import re
from pathlib import Path
from typing import Callable, Mapping

import torch
from torch import nn

from bench.codec import CodecError
from bench.codecs.compass import residual
from bench.codecs.compass.liff import LIFF
from bench.codecs.compass.model import OFFICIAL_CONFIG, CompassModel

ENV_VAR = "BENCH_OFFICIAL_COMPASS"
DEFAULT_FOLDER = Path("~/.cache/bench/compass-official")
# quality -> λ, as the reference code names its folders (str(λ) of the YAML float)
QUALITY_LAMBDAS: dict[int, float] = {1: 0.0018, 2: 0.0035, 3: 0.0067, 4: 0.013}
FILE_NAMES = ("best_model_updated.pth.tar", "best_model.pth.tar")  # first found wins
PARTS = ("base_state_dict", "residual_state_dict", "conti_sr_state_dict")
ENTROPY_TABLES = ("_quantized_cdf", "_offset", "_cdf_length", "scale_table")
REPOSITORY = "https://github.com/ImJongminPark/COMPASS"


class OfficialCheckpointError(CodecError):
    """An official COMPASS checkpoint is missing, unreadable, or does not fit bench's networks."""


# --------------------------------------------------------------------------------- where files live
def folder(root: str | os.PathLike[str] | None = None) -> Path:
    """``root``, else ``$BENCH_OFFICIAL_COMPASS``, else ``~/.cache/bench/compass-official``."""
    if root is not None:
        return Path(root)
    return Path(os.environ.get(ENV_VAR) or DEFAULT_FOLDER).expanduser()


def lambda_dir(quality: int) -> str:
    return f"lambda_{QUALITY_LAMBDAS[quality]}"


def expected_paths(quality: int, root: str | os.PathLike[str] | None = None) -> list[Path]:
    return [folder(root) / lambda_dir(quality) / name for name in FILE_NAMES]


def find_checkpoint(quality: int, root: str | os.PathLike[str] | None = None) -> Path:
    if quality not in QUALITY_LAMBDAS:
        raise OfficialCheckpointError(
            f"compass@official has qualities {sorted(QUALITY_LAMBDAS)} (λ {list(QUALITY_LAMBDAS.values())}), "
            f"not {quality}"
        )
    for path in expected_paths(quality, root):
        if path.is_file():
            return path
    raise OfficialCheckpointError(missing_message([quality], root))


def available_qualities(root: str | os.PathLike[str] | None = None) -> list[int]:
    return [q for q in QUALITY_LAMBDAS if any(p.is_file() for p in expected_paths(q, root))]


def missing_message(missing: list[int], root: str | os.PathLike[str] | None = None) -> str:
    where = folder(root)
    wanted = ", ".join(f"{lambda_dir(q)}/{FILE_NAMES[0]} (or {FILE_NAMES[1]}) for quality {q}" for q in missing)
    return (f"no official COMPASS checkpoint in {where}: expected {wanted}. Download checkpoints.zip "
            f"(linked from {REPOSITORY}'s README), unzip it so that the lambda_* folders are in {where}, "
            f"or point ${ENV_VAR} at the folder that holds them")


# --------------------------------------------------------------------------------- key mapping
# LIFF's keys as (official, bench) templates, read both ways: {i}, {j} are indices, {g} one of
# GFF's two convolutions, {p} weight or bias.
_LIFF_KEYS: tuple[tuple[str, str], ...] = (
    ("SFENet1.{p}", "encoder.shallow1.{p}"),
    ("SFENet2.{p}", "encoder.shallow2.{p}"),
    ("RDBs.{i}.convs.{j}.conv.0.{p}", "encoder.blocks.{i}.dense.{j}.conv.{p}"),
    ("RDBs.{i}.LFF.{p}", "encoder.blocks.{i}.fuse.{p}"),
    ("GFF.{g}.{p}", "encoder.global_fuse.{g}.{p}"),
    ("imnet.{i}.{p}", "mlp.{i}.{p}"),
)
_PLACES = {"i": r"\d+", "j": r"\d+", "g": "[01]", "p": "weight|bias"}


def _key_rule(source: str, target: str) -> tuple[re.Pattern[str], str]:
    """A pattern matching the template ``source`` and the replacement that writes ``target``."""
    pattern = re.escape(source)
    for name, place in _PLACES.items():
        pattern = pattern.replace(re.escape("{" + name + "}"), f"(?P<{name}>{place})")
    replacement = target.replace("\\", "\\\\")
    for name in _PLACES:
        replacement = replacement.replace("{" + name + "}", f"\\g<{name}>")
    return re.compile(pattern), replacement


_LIFF_RULES = [_key_rule(official, bench) for official, bench in _LIFF_KEYS]
_CODER_RULES: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"entropy_bottleneck\._(?:matrix|matrices\.)(\d+)"), r"entropy_bottleneck.matrices.\1"),
    (re.compile(r"entropy_bottleneck\._(?:bias|biases\.)(\d+)"), r"entropy_bottleneck.biases.\1"),
    (re.compile(r"entropy_bottleneck\._(?:factor|factors\.)(\d+)"), r"entropy_bottleneck.factors.\1"),
]


def _strip_parallel(key: str) -> str:
    return key[len("module.") :] if key.startswith("module.") else key


def liff_key(key: str) -> str | None:
    """The bench LIFF key of an official ``conti_sr_state_dict`` key (None: no counterpart)."""
    key = _strip_parallel(key)
    for pattern, replacement in _LIFF_RULES:
        if pattern.fullmatch(key):
            return pattern.sub(replacement, key)
    return None


def coder_key(key: str) -> str:
    """The bench (CompressAI 1.2) key of an official base/residual hyperprior key."""
    key = _strip_parallel(key)
    for pattern, replacement in _CODER_RULES:
        if pattern.fullmatch(key):
            return pattern.sub(replacement, key)
    return key


def _is_table(key: str) -> bool:
    return key.rsplit(".", 1)[-1] in ENTROPY_TABLES


def convert_state(
    part: str, official: Mapping[str, object], target: nn.Module, mapping: Callable[[str], str | None]
) -> dict[str, torch.Tensor]:
    """``official`` renamed to ``target``'s keys, checked key by key and shape by shape.

    Entropy tables are replaced by ``target``'s own (empty) buffers: they are recomputed after
    loading. Raises OfficialCheckpointError naming the first problem.
    """
    expected = target.state_dict()
    out: dict[str, torch.Tensor] = {}
    origin: dict[str, str] = {}
    for key, value in official.items():
        bench_key = mapping(key)
        if bench_key is None or bench_key not in expected:
            shown = f" (→ {bench_key})" if bench_key else ""
            raise OfficialCheckpointError(
                f"{part}: official key {key!r}{shown} has no counterpart in bench's COMPASS "
                "(paper configuration); is this an official COMPASS checkpoint?"
            )
        if bench_key in origin:
            raise OfficialCheckpointError(f"{part}: {origin[bench_key]!r} and {key!r} both map to {bench_key!r}")
        if not isinstance(value, torch.Tensor):
            raise OfficialCheckpointError(f"{part}: {key!r} holds a {type(value).__name__}, not a tensor")
        origin[bench_key] = key
        if _is_table(bench_key):
            continue
        want = tuple(expected[bench_key].shape)
        if tuple(value.shape) != want:
            raise OfficialCheckpointError(
                f"{part}: {key!r} (bench {bench_key!r}) has shape {tuple(value.shape)}, but bench's paper "
                f"configuration expects {want}"
            )
        out[bench_key] = value.detach().to(dtype=expected[bench_key].dtype, device="cpu")
    missing = [k for k in expected if k not in out and not _is_table(k)]
    if missing:
        shown = ", ".join(missing[:6]) + (f" and {len(missing) - 6} more" if len(missing) > 6 else "")
        raise OfficialCheckpointError(f"{part}: no official key for bench's {shown}")
    for key in expected:
        if _is_table(key):
            out[key] = expected[key]
    return out


# --------------------------------------------------------------------------------- loading
def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def read_checkpoint(path: Path) -> tuple[dict, str]:
    """The checkpoint's dict and the file's SHA-256 (the bytes are read once)."""
    data = path.read_bytes()
    digest = sha256_bytes(data)
    try:
        contents = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001 - any unpickling failure means an unusable file
        raise OfficialCheckpointError(f"cannot read {path} as a checkpoint of tensors: {error}") from error
    if not isinstance(contents, dict):
        raise OfficialCheckpointError(f"{path} holds a {type(contents).__name__}, not a checkpoint dict")
    absent = [part for part in PARTS if not isinstance(contents.get(part), Mapping)]
    if absent:
        raise OfficialCheckpointError(
            f"{path} is not an official COMPASS checkpoint: no {', '.join(absent)} "
            f"(found {', '.join(map(str, contents)) or 'nothing'})"
        )
    return contents, digest


def build_model(contents: Mapping[str, Mapping[str, object]], model_id: str) -> CompassModel:
    """bench's COMPASS in the official configuration, filled from an official checkpoint's dicts,
    with freshly computed entropy tables."""
    cfg = OFFICIAL_CONFIG
    bl = residual.build_mean_scale(cfg.rc_n, cfg.rc_m)  # the reference BL is mbt2018-mean q1–4: 128/192
    rc = residual.build_mean_scale(cfg.rc_n, cfg.rc_m)
    liff = LIFF(cfg.liff)
    for part, module, mapping in (
        ("base_state_dict", bl, coder_key),
        ("residual_state_dict", rc, coder_key),
        ("conti_sr_state_dict", liff, liff_key),
    ):
        state = convert_state(part, contents[part], module, mapping)
        try:
            module.load_state_dict(state)
        except (RuntimeError, ValueError) as error:  # the checks above should make this unreachable
            raise OfficialCheckpointError(f"{part}: {error}") from error
    bl.update(force=True)
    rc.update(force=True)
    return CompassModel(bl, liff, rc, cfg, model_id=model_id).eval()


def load_official_model(
    quality: int, device: str = "cpu", root: str | os.PathLike[str] | None = None
) -> tuple[CompassModel, dict[str, str]]:
    """COMPASS at ``quality`` from the official checkpoint in ``folder(root)``, and its weights info."""
    path = find_checkpoint(quality, root)
    contents, digest = read_checkpoint(path)
    try:
        model = build_model(contents, model_id=f"compass-official-q{quality}-{digest[:8]}")
    except OfficialCheckpointError as error:
        raise OfficialCheckpointError(f"{path}: {error}") from error
    info = {
        "source": "official",
        # relative to the folder; the BL is inside the same file, so there is no separate bl_file
        "file": f"{path.parent.name}/{path.name}",
        "sha256": digest,
        "folder": str(path.parent.parent),
    }
    return model.to(device), info


# --------------------------------------------------------------------------------- writing
# bench → official key rules: LIFF's from the same templates, the coder's the inverse of _CODER_RULES
# (every produced key is checked by mapping it back). The reference's bundled CompressAI names the
# entropy bottleneck's parameters ``_matrix{i}``, ``_bias{i}``, ``_factor{i}``.
_LIFF_EXPORT = [_key_rule(bench, official) for official, bench in _LIFF_KEYS]
_CODER_EXPORT: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"entropy_bottleneck\.matrices\.(\d+)"), r"entropy_bottleneck._matrix\1"),
    (re.compile(r"entropy_bottleneck\.biases\.(\d+)"), r"entropy_bottleneck._bias\1"),
    (re.compile(r"entropy_bottleneck\.factors\.(\d+)"), r"entropy_bottleneck._factor\1"),
]


def _official_state(part: str, module: nn.Module, rules: list[tuple[re.Pattern[str], str]],
                    back: Callable[[str], str | None], keep_unmatched: bool) -> dict[str, torch.Tensor]:
    out: dict[str, torch.Tensor] = {}
    for key, value in module.state_dict().items():
        rule = next((r for r in rules if r[0].fullmatch(key)), None)
        if rule is None and not keep_unmatched:
            raise OfficialCheckpointError(f"{part}: bench key {key!r} has no official counterpart")
        official_key = rule[0].sub(rule[1], key) if rule else key
        if back(official_key) != key:  # the reading side must map it straight back
            raise OfficialCheckpointError(f"{part}: {key!r} → {official_key!r} does not map back")
        out[official_key] = value.detach().to("cpu", torch.float32 if value.is_floating_point() else value.dtype)
    return out


def to_official(model: CompassModel) -> dict[str, dict[str, torch.Tensor]]:
    """A bench COMPASS of the paper's size as the three dicts of an official checkpoint (entropy
    tables included, as the reference's ``update.py`` leaves them). Raises OfficialCheckpointError
    for another size: the reference code builds only the paper's networks."""
    liff = {k: v for k, v in vars(model.liff.cfg).items() if k not in ("nearest", "chunk_pixels")}
    paper = {k: v for k, v in vars(OFFICIAL_CONFIG.liff).items() if k not in ("nearest", "chunk_pixels")}
    sizes = [(p, getattr(model, p).g_a[0].weight.shape[0], getattr(model, p).g_a[-1].weight.shape[0])
             for p in ("bl", "rc")]
    if liff != paper or any((n, m) != (OFFICIAL_CONFIG.rc_n, OFFICIAL_CONFIG.rc_m) for _, n, m in sizes):
        raise OfficialCheckpointError(
            f"the official code builds only the paper's COMPASS (LIFF {paper}, BL and RC N=128/M=192); "
            f"this one has LIFF {liff} and {', '.join(f'{p} {n}/{m}' for p, n, m in sizes)}"
        )
    for coder in (model.bl, model.rc):
        coder.update(force=True)
    return {
        "base_state_dict": _official_state("base_state_dict", model.bl, _CODER_EXPORT, coder_key, True),
        "residual_state_dict": _official_state("residual_state_dict", model.rc, _CODER_EXPORT, coder_key, True),
        "conti_sr_state_dict": _official_state("conti_sr_state_dict", model.liff, _LIFF_EXPORT, liff_key, False),
    }


def write_official(model: CompassModel, quality: int, out_dir: str | os.PathLike[str]) -> Path:
    """``out_dir/lambda_<λ>/best_model_updated.pth.tar``: where compass@official and the reference's
    ``eval.py`` look for quality ``quality``."""
    if quality not in QUALITY_LAMBDAS:
        raise OfficialCheckpointError(f"official checkpoints have qualities {sorted(QUALITY_LAMBDAS)}, not {quality}")
    contents = to_official(model)  # refuses before anything is written
    path = Path(out_dir) / lambda_dir(quality) / FILE_NAMES[0]
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    torch.save(contents, partial)
    os.replace(partial, path)
    return path
