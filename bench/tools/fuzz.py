"""``bench fuzz``: mutated and truncated inputs for every decoder that reads bytes bench produced.

Each decoder ("target") starts from valid streams that bench itself wrote (seeds) and decodes
``--count`` inputs made from them: bit flips, byte changes, insertions, deletions, splices,
duplicated ranges, big-endian integers with extreme values written over the bytes, truncations, and
for CRC-protected formats half of the inputs re-sealed (their CRCs recomputed after the damage) so
that the checks behind the CRC, such as the size claims in headers, are reached too.

Every input must end in one of:

* ``decoded``: a valid decode (for a changed input too: prefixes, ignored trailing bytes, fields
  that carry no check, e.g. the JSON header of the ``bench encode`` envelope);
* ``clear-error``: the decoder's own error type (``BitstreamError``, ``EnvelopeError``, ``StoreError``);
* ``codec-error``: a plain ``CodecError`` (the request cannot be served, e.g. a header naming a
  quality that has no weights here): clear, but counted apart;

and never in a failure: ``other-exception`` (any other exception type), ``invalid-result`` (a
decode that returns something the decoder's contract excludes), ``memory`` (``MemoryError`` or an
allocation refused, under an address-space limit of ``--memory-mb`` above what the worker needed to
start, so a header claiming a giant size that is allocated before it is checked shows up here
instead of exhausting the machine), ``hang`` (no result within ``--time-limit`` seconds: the worker
is killed) or ``crash`` (the worker process died, e.g. a segfault in native code).

Inputs run in a spawned worker process, one after the other; the parent is a watchdog that restarts
the worker after a hang or a crash and goes on with the next input. Input ``i`` depends only on the
seed and ``i``, so ``--start i --count 1`` reproduces it; ``--save-failures DIR`` writes the bytes
of every failing input there.

Besides bench's own formats (the ``bench encode`` envelope and the codec spec its header names, the
layer container, the run folder's records and manifest), every registered codec that declares a
``CodecInfo.fuzz`` is a decoder, under its own name: the codec builds its seeds in the worker
(learned codecs with tiny random models, whose parsers and entropy decoders are exactly the
production code, only the networks are small, so garbage decodes quickly) and says how to reseal
its CRCs; the learned codecs' seeds include decompression bombs (headers claiming 2048² and 4096²).
"""

from __future__ import annotations

import argparse
import functools
import importlib
import os
import random
import shutil
import tempfile
import time
import traceback
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.errors import FuzzError

OUTCOMES = ("decoded", "clear-error", "codec-error", "other-exception", "invalid-result", "memory", "hang",
            "crash")
FAILURES = ("other-exception", "invalid-result", "memory", "hang", "crash")
CONTAINER_MAGIC, CONTAINER_VERSION = b"FUZZ", 1  # any magic: the container's checks do not depend on it
SETUP_TIMEOUT_S = 300.0  # building a tiny model and its seed streams on a busy machine
MEMORY_MESSAGES = ("can't allocate memory", "cannot allocate memory", "std::bad_alloc", "out of memory")


@dataclass
class Target:
    """A decoder under test and the valid streams its inputs are made from."""

    name: str
    seeds: list[bytes]
    decode: Callable[[bytes, random.Random], Any]  # the rng picks e.g. how many layers to decode
    clear_errors: tuple[type[BaseException], ...]
    codec_errors: tuple[type[BaseException], ...] = ()
    reseal: Callable[[bytes], bytes] | None = None  # recompute CRCs after damage
    validate: Callable[[Any], str | None] | None = None  # a problem with a returned value, or None


# ------------------------------------------------------------------------------------------ inputs


_EXTREMES = (0, 1, 0x7F, 0x80, 0xFF, 0x7FFF, 0x8000, 0xFFFF, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF)


def _mutate_once(buf: bytearray, rng: random.Random, seeds: Sequence[bytes]) -> bytearray:
    size = len(buf)
    if size == 0:
        return bytearray(rng.randbytes(rng.randint(1, 16)))
    pos = rng.randrange(size)
    op = rng.randrange(9)
    if op == 0:  # flip one bit
        buf[pos] ^= 1 << rng.randrange(8)
    elif op == 1:  # flip a few bits in a small window
        for _ in range(rng.randint(2, 8)):
            buf[min(size - 1, pos + rng.randrange(8))] ^= 1 << rng.randrange(8)
    elif op == 2:  # a byte set to an interesting or random value
        buf[pos] = rng.choice((0, 0xFF, 0x7F, 0x80, rng.randrange(256)))
    elif op == 3:  # insert random bytes
        buf[pos:pos] = rng.randbytes(rng.randint(1, 16))
    elif op == 4:  # delete a range
        del buf[pos : pos + rng.randint(1, 16)]
    elif op == 5:  # splice in a range of another (or the same) seed, inserted or written over
        other = rng.choice(seeds)
        if other:
            a = rng.randrange(len(other))
            piece = other[a : a + rng.randint(1, 64)]
            if rng.random() < 0.5:
                buf[pos:pos] = piece
            else:
                buf[pos : pos + len(piece)] = piece
    elif op == 6:  # a big-endian integer with an extreme value: headers claiming giant sizes
        width = rng.choice((1, 2, 4))
        value = rng.choice(_EXTREMES + (size, size + 1, size * 1000)) & ((1 << (8 * width)) - 1)
        buf[pos : pos + width] = value.to_bytes(width, "big")
    elif op == 7:  # duplicate a range in place
        end = min(size, pos + rng.randint(1, 64))
        buf[end:end] = buf[pos:end]
    else:  # cut the tail
        del buf[pos:]
    return buf


def make_input(target: Target, seed: int, index: int) -> tuple[bytes, random.Random]:
    """Input ``index`` of a run with ``seed`` (and the rng the decode call draws its options from)."""
    rng = random.Random(f"bench-fuzz:{target.name}:{seed}:{index}")
    original = rng.choice(target.seeds)
    roll = rng.random()
    if roll < 0.15:  # a plain truncation: every prefix length is a case of its own
        data = original[: rng.randrange(len(original) + 1)]
    elif roll < 0.2:  # bytes that were never a stream, sometimes behind the right first bytes
        junk = rng.randbytes(rng.randint(0, 2 * len(original)))
        data = original[: rng.randint(0, 8)] + junk if rng.random() < 0.5 else junk
    else:
        buf = bytearray(original)
        for _ in range(rng.choice((1, 1, 1, 2, 2, 3, 5))):
            buf = _mutate_once(buf, rng, target.seeds)
        data = bytes(buf)
    if target.reseal is not None and rng.random() < 0.5:
        data = target.reseal(data)
    return data, rng


def _is_memory_message(error: BaseException) -> bool:
    text = str(error).lower()
    return any(message in text for message in MEMORY_MESSAGES)


def classify(target: Target, data: bytes, rng: random.Random) -> tuple[str, str]:
    """Decode one input and say how it ended: ``(outcome, detail)``."""
    try:
        result = target.decode(data, rng)
    except MemoryError as error:
        return "memory", f"MemoryError: {error}"
    except TimeoutError as error:  # a decoder's own time limit (e.g. an external decoder process)
        return "hang", f"{type(error).__name__}: {error}"
    except target.clear_errors as error:
        if _is_memory_message(error):
            return "memory", f"{type(error).__name__}: {error}"
        return "clear-error", f"{type(error).__name__}: {error}"
    except target.codec_errors as error:
        if _is_memory_message(error):
            return "memory", f"{type(error).__name__}: {error}"
        return "codec-error", f"{type(error).__name__}: {error}"
    except Exception as error:  # noqa: BLE001 - exactly what the fuzzer is looking for
        outcome = "memory" if _is_memory_message(error) else "other-exception"
        lines = traceback.format_exception(type(error), error, error.__traceback__)
        return outcome, "".join(lines[-3:]).strip()
    problem = target.validate(result) if target.validate else None
    return ("invalid-result", problem) if problem else ("decoded", "")


# ------------------------------------------------------------------------------------------ targets


def envelope_target(workdir: Path, time_limit: float) -> Target:
    from bench.storage.envelope import EnvelopeError, pack, unpack

    rng = random.Random(0)
    seeds = []
    for sizes, payload_bytes in (([[24, 32], [48, 64]], 300), ([[48, 64]], 40)):
        payload = rng.randbytes(payload_bytes)
        header = {"codec": "layered:single", "quality": 3, "scales": "2" if len(sizes) > 1 else "",
                  "anchor": "top", "sizes": sizes, "layer_bytes": [payload_bytes]}
        seeds.append(pack(header, payload))

    def validate(envelope) -> str | None:
        if not isinstance(envelope.header, dict) or not isinstance(envelope.payload, bytes):
            kinds = type(envelope.header).__name__, type(envelope.payload).__name__
            return "unpack returned header {}, payload {}".format(*kinds)
        return None

    return Target("envelope", seeds, lambda data, _: unpack(data), (EnvelopeError,), validate=validate)


def container_target(workdir: Path, time_limit: float) -> Target:
    """The layered container several codecs keep one chunk per layer in (``bench.container``)."""
    from bench import container
    from bench.codec import BitstreamError, CodecError
    from bench.container import reseal_container

    rng = random.Random(1)
    seeds = [container.pack(CONTAINER_MAGIC, CONTAINER_VERSION, [rng.randbytes(n) for n in sizes])[0]
             for sizes in ((120, 300), (7, 0, 200), (50,))]

    def decode(data: bytes, choice: random.Random) -> list[bytes]:
        return container.unpack(data, CONTAINER_MAGIC, CONTAINER_VERSION, "container",
                                 count=choice.choice((None, None, 1, 2)))

    def validate(chunks) -> str | None:
        return None if all(isinstance(c, bytes) for c in chunks) and chunks else "unpack returned no chunks"

    return Target("container", seeds, decode, (BitstreamError,), (CodecError,), reseal=reseal_container,
                  validate=validate)


def _check_layers(expected_layers: int | None = None) -> Callable[[Any], str | None]:
    import numpy as np

    def validate(layers) -> str | None:
        if not isinstance(layers, list) or not layers:
            return f"decode returned {type(layers).__name__}, not a list of layers"
        for k, layer in enumerate(layers):
            if not (isinstance(layer, np.ndarray) and layer.dtype == np.uint8 and layer.ndim == 3
                    and layer.shape[2] == 3):
                return f"layer {k} is {getattr(layer, 'shape', None)} {getattr(layer, 'dtype', None)}"
        return None

    return validate


def codec_target(name: str, workdir: Path, time_limit: float) -> Target:
    """The decoder of the registered codec ``name``, with the seeds its ``CodecInfo.fuzz`` makes."""
    from bench.codec import BitstreamError, CodecError
    from bench.registry import codec_class

    cls = codec_class(name)
    if cls.info.fuzz is None:
        raise FuzzError(f"codec {name} has no fuzz setup")
    setup = cls.info.fuzz(cls, workdir, time_limit)
    decode_layers = setup.decode or setup.codec.decode

    def decode(data: bytes, choice: random.Random):
        layers = choice.choice(setup.layer_choices) if len(setup.layer_choices) > 1 else setup.layer_choices[0]
        return decode_layers(data, layers)

    return Target(name, setup.seeds, decode, (BitstreamError,), (CodecError,), reseal=setup.reseal,
                  validate=_check_layers())


def _sample_records() -> list[dict[str, Any]]:
    from bench.storage.records import Record

    records = []
    for image, quality in (("kodim01.png", 32), ("kodim02.png", 37)):
        for layer, (height, width) in enumerate(((256, 384), (512, 768))):
            records.append(Record(
                codec="layered:single", dataset="kodak", image=image, scales=[2.0], anchor="top",
                quality=quality, layer=layer, num_layers=2, height=height, width=width,
                bits_layer=12345 + layer, bits_cum=20000 + layer, bpp=0.25 + layer, psnr_rgb=31.5,
                ms_ssim_rgb=None if layer == 0 else 0.97, encode_time=0.12, decode_time=0.03,
                mode="scalable", extra={"job_codec_s": 0.3, "timings": {"network": 0.1}},
            ).to_json())
    return records


def records_target(workdir: Path, time_limit: float) -> Target:
    from bench.storage.store import RunStore, StoreError

    seed_dir = workdir / "records-seed"
    seed_store = RunStore(seed_dir)
    if not seed_store.records_path.exists():
        seed_store.open_for_writing()
        records = _sample_records()
        seed_store.append(records[:2])
        seed_store.append(records[2:])
    seed = seed_store.records_path.read_bytes()
    run_dir = workdir / "records-fuzz"
    run_dir.mkdir(exist_ok=True)
    store = RunStore(run_dir)

    def decode(data: bytes, _: random.Random):
        store.records_path.write_bytes(data)
        return store.records(), store.completed_jobs()  # what `bench run` reads to resume

    def validate(result) -> str | None:
        records, done = result
        if not all(isinstance(r, dict) for r in records):
            return "records() returned a record that is not a JSON object"
        return None if isinstance(done, set) else "completed_jobs() did not return a set"

    return Target("records", [seed], decode, (StoreError,), validate=validate)


def manifest_target(workdir: Path, time_limit: float) -> Target:
    from bench.storage.store import RunStore, StoreError

    seed_dir = workdir / "manifest-seed"
    seed_store = RunStore(seed_dir)
    if not seed_store.manifest_path.exists():
        seed_store.open_for_writing()
        for argv in (["run", "--codecs", "single"], ["run", "--codecs", "single", "--limit", "2"]):
            seed_store.write_manifest({"started": "2024-01-01T00:00:00+0000", "argv": argv,
                                       "dataset": {"name": "kodak", "label": "Kodak", "images": 24},
                                       "scales": ["2"], "anchor": "top", "device": "cpu", "threads": 1,
                                       "jobs": 1,
                                       "codecs": {"single": {"available": True, "qualities": [22, 27]}}})
    seed = seed_store.manifest_path.read_bytes()
    run_dir = workdir / "manifest-fuzz"
    run_dir.mkdir(exist_ok=True)
    store = RunStore(run_dir)

    def decode(data: bytes, _: random.Random):
        store.manifest_path.write_bytes(data)
        return store.manifest()

    def validate(manifest) -> str | None:
        return None if isinstance(manifest, dict) else f"manifest() returned a {type(manifest).__name__}"

    return Target("manifest", [seed], decode, (StoreError,), validate=validate)


def codec_spec_target(workdir: Path, time_limit: float) -> Target:
    """The codec spec in a ``bench encode`` file's header, which chooses the codec ``bench decode``
    builds (``bench.registry.file_spec``). Seeds name registered codecs and named weights, and hostile
    ones a folder (``hm@/dir``: a file must never choose an executable, issue 27); a spec that passes
    with a source no codec of its chain names as weights is a failure (invalid-result)."""
    from bench.registry import UnknownCodecError, codec_class, codec_names, declared_class, file_spec, named_sources
    from bench.storage.envelope import EnvelopeError, pack, unpack

    # from the registry, not a list of names: every codec plain, with each weights source it names, and
    # with folders a hostile file would like it to run from; wrappers around each codec likewise
    names = codec_names()
    wrappers = [w for w in names if getattr(codec_class(w)(arg=names[0]), "inner_spec", None)]
    hostile = ("/tmp/bench-fuzz/evil", "../evil/bin")
    specs: list[str] = []
    for name in names:
        if name in wrappers:
            continue
        specs += [name, *(f"{name}@{source}" for source in named_sources(codec_class(name)))]
        specs += [f"{name}@{folder}" for folder in hostile]
        specs += [f"{wrapper}:{name}@{folder}" for wrapper in wrappers for folder in hostile]
    seeds = [pack({"codec": spec, "quality": 1, "sizes": [[16, 16]]}, b"\x00" * 8) for spec in specs]
    for spec in specs:  # load every codec module now (torch included), not in an input's time
        try:
            file_spec(spec)
        except EnvelopeError:
            pass

    def decode(data: bytes, _: random.Random) -> Any:
        return file_spec(unpack(data).header["codec"])

    def validate(spec) -> str | None:
        if spec.source is None:
            return None
        # every codec the spec chains (simulcast:INNER...): the source must name weights of one of them
        chain = [spec.name, *(spec.arg or "").split(":")]
        named = {source for name in chain if (cls := declared_class(name)) is not None
                 for source in named_sources(cls)}
        return None if spec.source in named else f"accepted {spec} with a source that names no weights"

    return Target("codec-spec", seeds, decode, (EnvelopeError, UnknownCodecError), validate=validate)


# Decoders of bench's own formats: "module:function" building the Target. Every registered codec with
# a ``CodecInfo.fuzz`` is a decoder too, under its own name (``CODEC_PREFIX`` + name).
DECODERS: dict[str, str] = {
    "envelope": "bench.tools.fuzz:envelope_target",
    "container": "bench.tools.fuzz:container_target",
    "records": "bench.tools.fuzz:records_target",
    "manifest": "bench.tools.fuzz:manifest_target",
    "codec-spec": "bench.tools.fuzz:codec_spec_target",
}
CODEC_PREFIX = "codec:"


def decoders() -> dict[str, str]:
    """Every decoder ``--decoder`` can name: the formats, then the codecs that declare a fuzz setup."""
    from bench.registry import codec_class, codec_names

    formats = {name: path for name, path in DECODERS.items() if name in ("envelope", "codec-spec", "container")}
    codecs = {name: CODEC_PREFIX + name for name in codec_names() if codec_class(name).info.fuzz is not None}
    return {**formats, **codecs, **{n: p for n, p in DECODERS.items() if n not in formats}}


def input_cap(decoder: str) -> int | None:
    """Most inputs per run unless --uncapped (a codec's ``fuzz_cap``: e.g. a process per input)."""
    path = decoders().get(decoder, "")
    if not path.startswith(CODEC_PREFIX):
        return None
    from bench.registry import codec_class

    return codec_class(path[len(CODEC_PREFIX):]).info.fuzz_cap


def _factory(path: str) -> Callable[[Path, float], Target]:
    if path.startswith(CODEC_PREFIX):
        return functools.partial(codec_target, path[len(CODEC_PREFIX):])
    module, _, name = path.partition(":")
    return getattr(importlib.import_module(module), name)


# ------------------------------------------------------------------------------------------ worker


def _limit_memory(megabytes: int) -> int | None:
    """Cap this process's address space at what it uses now plus ``megabytes``; returns the cap."""
    try:
        import resource
    except ImportError:  # not on this platform: the run says so
        return None
    try:
        with open("/proc/self/statm") as handle:
            used = int(handle.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError):
        return None
    cap = used + megabytes * 2**20
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    if hard != resource.RLIM_INFINITY:
        cap = min(cap, hard)
    resource.setrlimit(resource.RLIMIT_AS, (cap, hard))
    return cap


def _worker(conn, factory: str, decoder: str, seed: int, start: int, stop: int, workdir: str,
            memory_mb: int, time_limit: float) -> None:
    os.environ.setdefault("OMP_NUM_THREADS", "1")  # one input at a time; no idle thread pools
    try:
        began = time.perf_counter()
        target = _factory(factory)(Path(workdir), time_limit)
        cap = _limit_memory(memory_mb)
        conn.send(("ready", time.perf_counter() - began, cap))
    except BaseException:  # noqa: BLE001 - reported to the parent, which stops the run
        conn.send(("setup-failed", traceback.format_exc()))
        return
    for index in range(start, stop):
        data, rng = make_input(target, seed, index)
        conn.send(("input", index, data))
        outcome, detail = classify(target, data, rng)
        conn.send(("result", index, outcome, detail))
    conn.send(("done",))


# ------------------------------------------------------------------------------------------ parent


@dataclass
class FuzzReport:
    decoder: str
    inputs: int = 0
    counts: Counter = field(default_factory=Counter)
    seconds: float = 0.0
    setup_seconds: float = 0.0
    restarts: int = 0
    memory_cap: int | None = None
    capped_from: int | None = None  # the --count asked for, when the decoder's cap lowered it
    failures: list[tuple[int, str, str]] = field(default_factory=list)  # (index, outcome, detail)
    examples: dict[str, tuple[int, str]] = field(default_factory=dict)  # first input per outcome

    @property
    def failed(self) -> int:
        return sum(self.counts[o] for o in FAILURES)

    def failure_kinds(self) -> Counter:
        """Failures by outcome and, for exceptions, by exception type (e.g. ``other-exception KeyError``)."""
        kinds: Counter = Counter()
        for _, outcome, detail in self.failures:
            last = detail.strip().splitlines()[-1] if detail.strip() else ""
            name = last.split(":")[0] if outcome == "other-exception" and last else ""
            kinds[f"{outcome} {name}".strip()] += 1
        return kinds


def fuzz(decoder: str, count: int, seed: int = 0, time_limit: float = 10.0, memory_mb: int = 2048,
         start: int = 0, factory: str | None = None, save_dir: Path | None = None,
         progress: Callable[[int], None] | None = None) -> FuzzReport:
    """Run ``count`` inputs (indices ``start``…) through ``decoder`` in a watched worker process."""
    import multiprocessing

    if factory is None:
        known = decoders()
        if decoder not in known:
            raise FuzzError(f"unknown decoder {decoder!r}; choose from {', '.join(known)}")
        factory = known[decoder]
    if count < 1 or time_limit <= 0:
        raise FuzzError("--count must be at least 1 and --time-limit positive")
    report = FuzzReport(decoder)
    context = multiprocessing.get_context("spawn")
    workdir = tempfile.mkdtemp(prefix=f"bench-fuzz-{decoder}-")
    began = time.perf_counter()
    index, stop = start, start + count
    try:
        while index < stop:
            receiver, sender = context.Pipe(duplex=False)
            process = context.Process(target=_worker, daemon=True, args=(
                sender, factory, decoder, seed, index, stop, workdir, memory_mb, time_limit))
            process.start()
            sender.close()  # the worker holds the only sending end: its death reads as EOF here
            try:
                index = _watch(process, receiver, report, index, stop, time_limit, save_dir, seed, progress)
            finally:
                receiver.close()
                if process.is_alive():
                    process.kill()
                process.join()
            if index < stop:
                report.restarts += 1
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    report.seconds = time.perf_counter() - began
    return report


def _watch(process, receiver, report: FuzzReport, index: int, stop: int, time_limit: float,
           save_dir: Path | None, seed: int, progress) -> int:
    """Follow one worker until it is done, hangs or dies; returns the next input index to run."""
    if not receiver.poll(SETUP_TIMEOUT_S):
        raise FuzzError(f"{report.decoder}: the worker took more than {SETUP_TIMEOUT_S:.0f} s to set up")
    try:
        message = receiver.recv()
    except EOFError:
        process.join()
        raise FuzzError(f"{report.decoder}: the worker died while setting up "
                        f"(exit code {process.exitcode})") from None
    if message[0] == "setup-failed":
        raise FuzzError(f"{report.decoder}: setting up the decoder failed:\n{message[1]}")
    report.setup_seconds += message[1]
    report.memory_cap = message[2]
    current: bytes | None = None
    while index < stop:
        if not receiver.poll(time_limit):
            process.kill()
            _record(report, index, "hang", f"no result within {time_limit:g} s", current, save_dir, seed,
                    progress)
            return index + 1
        try:
            message = receiver.recv()
        except EOFError:
            process.join()
            code = process.exitcode
            how = f"killed by signal {-code}" if code is not None and code < 0 else f"exit code {code}"
            _record(report, index, "crash", f"worker died ({how})", current, save_dir, seed, progress)
            return index + 1
        if message[0] == "input":
            current = message[2]
        elif message[0] == "result":
            _, number, outcome, detail = message
            _record(report, number, outcome, detail, current, save_dir, seed, progress)
            index, current = number + 1, None
        elif message[0] == "done":
            break
    return index


def _record(report: FuzzReport, index: int, outcome: str, detail: str, data: bytes | None,
            save_dir: Path | None, seed: int, progress) -> None:
    report.inputs += 1
    report.counts[outcome] += 1
    report.examples.setdefault(outcome, (index, detail))
    if outcome in FAILURES:
        report.failures.append((index, outcome, detail))
        if save_dir is not None and data is not None:
            save_dir.mkdir(parents=True, exist_ok=True)
            (save_dir / f"{report.decoder}-seed{seed}-{index}.bin").write_bytes(data)
    if progress is not None:
        progress(1)


# ------------------------------------------------------------------------------------------ command


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--decoder", action="append",
                        help="decoders to fuzz, comma list or repeated (default all: bench's formats "
                             f"{', '.join(DECODERS)} and every registered codec that declares a fuzz setup)")
    parser.add_argument("--count", type=int, default=10000, help="inputs per decoder (default 10000)")
    parser.add_argument("--seed", type=int, default=0, help="input ``i`` depends only on this and i")
    parser.add_argument("--start", type=int, default=0, help="first input index (reproduce one: --count 1)")
    parser.add_argument("--time-limit", type=float, default=10.0,
                        help="seconds per input before it is a hang (default 10)")
    parser.add_argument("--memory-mb", type=int, default=2048,
                        help="address space (MiB) a worker may add after setting up before it is a memory "
                             "failure (default 2048)")
    parser.add_argument("--uncapped", action="store_true",
                        help="give slow decoders (a codec that starts a process per input, e.g. x265: at most 500) "
                             "the full --count")
    parser.add_argument("--save-failures", type=Path, metavar="DIR", help="write every failing input there")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def _selected(values: Sequence[str] | None) -> list[str]:
    known = decoders()
    if not values:
        return list(known)
    names = [n.strip() for v in values for n in v.split(",") if n.strip()]
    if "all" in names:
        return list(known)
    unknown = [n for n in names if n not in known]
    if unknown:
        raise FuzzError(f"unknown decoder(s) {', '.join(unknown)}; choose from {', '.join(known)} or all")
    return list(dict.fromkeys(names))


def format_reports(reports: Sequence[FuzzReport]) -> str:
    from tabulate import tabulate

    rows = []
    for r in reports:
        rate = r.inputs / r.seconds if r.seconds else 0.0
        rows.append([r.decoder, r.inputs, *(r.counts[o] for o in OUTCOMES), f"{r.seconds:.1f}",
                     f"{r.setup_seconds:.1f}", f"{rate:.0f}"])
    return tabulate(rows, headers=["decoder", "inputs", *OUTCOMES, "seconds", "setup s", "inputs/s"],
                    tablefmt="simple", disable_numparse=True)


@dataclass(frozen=True)
class FuzzConfig:
    """One ``bench fuzz``: ``count`` inputs (indices ``start``…, made from ``seed``) for each decoder.

    ``decoders``: names, comma lists of them, or ``all`` (None or empty: every decoder,
    ``decoders()``); ``time_limit``: seconds per input before it is a hang; ``memory_mb``: address
    space a worker may add after setting up; ``uncapped``: give slow decoders (a codec's
    ``fuzz_cap``) the full ``count``; ``save_failures``: a folder for the bytes of every failing
    input. Construction checks the numbers (``FuzzError``); which decoders exist is checked by
    ``run_fuzz``, which loads the registry.
    """

    decoders: Sequence[str] | str | None = None
    count: int = 10000
    seed: int = 0
    start: int = 0
    time_limit: float = 10.0
    memory_mb: int = 2048
    uncapped: bool = False
    save_failures: Path | None = None

    def __post_init__(self) -> None:
        if self.count < 1 or self.time_limit <= 0 or self.memory_mb < 1:
            raise FuzzError("--count and --memory-mb must be at least 1 and --time-limit positive")
        names = [self.decoders] if isinstance(self.decoders, str) else list(self.decoders or [])
        object.__setattr__(self, "decoders", tuple(n.strip() for v in names for n in v.split(",") if n.strip()))
        if self.save_failures is not None:
            object.__setattr__(self, "save_failures", Path(self.save_failures))


@dataclass
class FuzzRun:
    """What ``run_fuzz`` did: one report per decoder, in the order they ran."""

    config: FuzzConfig
    reports: list[FuzzReport]

    @property
    def inputs(self) -> int:
        return sum(r.inputs for r in self.reports)

    @property
    def failed(self) -> int:
        """Inputs that ended in a failure (other exceptions, invalid results, memory, hangs, crashes)."""
        return sum(r.failed for r in self.reports)


# progress(decoder, count) -> a bar with update(n) and close(), or None (as bench.api.run's)
FuzzProgress = Callable[[str, int], Any]


def run_fuzz(config: FuzzConfig, progress: FuzzProgress | None = None,
             on_capped: Callable[[str, int, int], None] | None = None) -> FuzzRun:
    """Fuzz every decoder ``config`` names, one after the other (``fuzz``). ``on_capped(decoder,
    count, cap)`` hears about a slow decoder whose inputs are capped (unless ``config.uncapped``);
    ``progress(decoder, count)`` may return a progress bar per decoder. FuzzError for an unknown
    decoder (before any runs) or a decoder that cannot be set up."""
    reports = []
    for decoder in _selected(config.decoders):
        count = config.count
        cap = input_cap(decoder)
        if cap is not None and count > cap and not config.uncapped:
            if on_capped is not None:
                on_capped(decoder, count, cap)
            count = cap
        bar = progress(decoder, count) if progress is not None else None
        try:
            report = fuzz(decoder, count, config.seed, config.time_limit, config.memory_mb, config.start,
                          save_dir=config.save_failures, progress=bar.update if bar is not None else None)
        finally:
            if bar is not None:
                bar.close()
        if cap is not None and count < config.count:
            report.capped_from = config.count
        reports.append(report)
    return FuzzRun(config, reports)


def format_run(result: FuzzRun) -> str:
    """What ``bench fuzz`` prints: the table, then per decoder its restarts, memory cap, the first
    input of each outcome, its failures and how to reproduce them, then the totals."""
    lines = [format_reports(result.reports)]
    for report in result.reports:
        limit = f"{report.memory_cap / 2**30:.1f} GiB address space" if report.memory_cap else "no memory cap"
        lines.append(f"{report.decoder}: {report.restarts} worker restarts, {limit}")
        for outcome in OUTCOMES:
            if outcome in report.examples and outcome not in ("decoded",):
                number, detail = report.examples[outcome]
                lines.append(f"  first {outcome}: input {number}: {detail.splitlines()[-1][:200] if detail else ''}")
        if report.failures:
            kinds = ", ".join(f"{kind} x{n}" for kind, n in report.failure_kinds().most_common())
            lines.append(f"  failures: {kinds}")
        for number, outcome, _detail in report.failures[:5]:
            lines.append(f"  FAILED input {number} ({outcome}); reproduce: python -m bench fuzz --decoder "
                         f"{report.decoder} --seed {result.config.seed} --start {number} --count 1")
    lines.append(f"{result.inputs} inputs, {result.failed} failures "
                 f"(other exceptions, invalid results, memory, hangs, crashes)")
    return "\n".join(lines)
