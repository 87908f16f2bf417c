"""Command line: ``python -m bench run|report|list|encode|decode`` (one function per subcommand)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Sequence

from bench.errors import UsageError, exit_status, is_user_error
from bench.measuring.bdrate import DEFAULT_BOOTSTRAP
from bench.measuring.rd_metrics import DEFAULT_METRIC, METRICS
from bench.measuring.ycbcr import DEFAULT_YUV_MATRIX, YUV_MATRICES
from bench.registry import plugin_commands
from bench.running.config import DEFAULT_RUN_DIR, DEFAULT_SCALES, RunConfig

DEFAULT_REPORT_DIR = Path("reports")


__all__ = ["UsageError", "build_parser", "main"]


def run_config(args: argparse.Namespace) -> RunConfig:
    """The validated configuration of ``bench run``'s arguments (nothing loads before it is valid)."""
    return RunConfig(codecs=args.codecs, scales=args.scales or DEFAULT_SCALES, dataset=args.dataset,
                     data_root=args.data_root, limit=args.limit, qualities=args.qualities, anchor=args.anchor,
                     device=args.device, threads=args.threads, jobs=args.jobs, repeats=args.repeats, out=args.out,
                     scheduler=args.scheduler, yuv_matrix=args.yuv_matrix, argv=sys.argv[1:],
                     max_pixels=args.max_pixels)


def cmd_run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from bench import api

    config = run_config(args)

    def unavailable(spec: str, reason: str) -> None:
        print(f"skipping {spec}: unavailable: {reason}", file=sys.stderr)

    if args.dry_run:  # the plan and an estimate from the run directory's records; nothing is written
        from bench.running.planning import format_plan

        print(format_plan(api.plan(config, unavailable), config.out, config.jobs))
        return 0

    def progress(todo, total):
        return tqdm(total=total, desc="bench run", unit="job", disable=args.no_progress)

    result = api.run(config, progress=progress, on_unavailable=unavailable)
    summary = result.summary
    serial = config.jobs == 1 and not config.scheduler  # overhead is a serial run's figure
    overhead = summary.harness_overhead if serial else None
    timing = (f" (codecs {summary.codec_time:.1f} s, warm-up {summary.warmup_time:.1f} s, "
              f"harness overhead {overhead:.1%})" if overhead is not None else "")
    print(f"{summary.done} jobs run, {summary.skipped} already done, {len(summary.failed)} failed "
          f"in {summary.wall_time:.1f} s{timing}; {result.records_note}")
    for key, error in summary.failed:
        print(f"failed {key}: {error}", file=sys.stderr)
    return 1 if summary.failed else 0


def cmd_report(args: argparse.Namespace) -> int:
    from bench import api

    result = api.report(args.run_dirs or [DEFAULT_RUN_DIR], args.out, eval_model_json=args.eval_model_json,
                        metric=args.metric, bootstrap=args.bootstrap, bd_average=args.bd_average, latex=args.latex)
    print(f"report written to {result.page}")
    for note in result.notes:  # e.g. the torn last line of a killed run, left out of the tables
        print(f"bench report: {note}", file=sys.stderr)
    if args.eval_model_json:
        print(f"{len(result.eval_model)} CompressAI eval_model JSON files in {args.out / 'eval_model'}")
    return 0


def _weights_note(codec, available: bool) -> str:
    """`` [weights: SOURCE; present: q1 q2]`` for codecs that say where their weights come from."""
    status = codec.weights_status()
    if status is not None:
        label, present = status
        found = "present: " + " ".join(f"q{q}" for q in present) if present else "none present"
        return f" [weights: {label}; {found}]"
    weights = codec.weights_info() if available else {}
    return f" [weights: {weights.get('source', '?')} {weights.get('file', '')}]" if weights else ""


def cmd_list(args: argparse.Namespace) -> int:
    from bench.datasets import KNOWN_DATASETS, DatasetError, default_data_root, load_dataset
    from bench.registry import codec_class, codec_names, create_codec

    print("codecs:")
    for name in codec_names():
        cls = codec_class(name)
        base = cls.info.list_spec or name
        # learned codecs list each weights source they can use (NAME@SOURCE); some codecs name
        # further specs worth knowing (presets such as shvc:ctc, the simulcast:hm they make)
        for spec in [base, *(f"{base}@{source}" for source in cls.info.published_sources),
                     *cls.info.list_variants]:
            codec = create_codec(spec)
            status = codec.availability()
            kind = "scalable" if codec.info.scalable else "single-layer"
            state = "available" if status.available else f"unavailable: {status.reason}"
            print(f"  {spec:<22} {kind:<13} {state}{_weights_note(codec, status.available)}")
    print("datasets:")
    root = args.data_root or default_data_root()
    for name, known in KNOWN_DATASETS.items():
        try:
            dataset = load_dataset(name, root)
            state = f"{len(dataset.images)} images, checksums OK"
        except DatasetError as error:
            state = f"unavailable: {error}"
        print(f"  {name:<8} {known.label}: {state}")
    print("  (or any folder of images: --dataset PATH)")
    print("anchors:")
    try:
        from bench.anchors import published_curves

        for name, curve in published_curves().items():
            print(f"  {name:<14} {len(curve.bpp)} points: {curve.description}")
    except ImportError as error:
        print(f"  (anchors not installed: {error})")
    return 0


def cmd_encode(args: argparse.Namespace) -> int:
    from bench.tools.coding import encode_image

    result = encode_image(args.image, args.output, args.codec, args.quality, scales=args.scales,
                          anchor=args.anchor, device=args.device)
    for k, ((height, width), size, bpp) in enumerate(zip(result.sizes, result.layer_bytes, result.cumulative_bpp)):
        print(f"layer {k}: {width}x{height}  {size * 8} bits  {bpp:.4f} bpp (cumulative)")
    print(f"wrote {result.path} ({result.file_bytes} bytes)")
    return 0


def cmd_decode(args: argparse.Namespace) -> int:
    from bench.tools.coding import decode_file

    result = decode_file(args.bitstream, args.prefix, layers=args.layers, device=args.device,
                         max_pixels=args.max_pixels, codec=args.codec)
    for k, (path, (height, width)) in enumerate(zip(result.paths, result.sizes)):
        print(f"layer {k}: {width}x{height} -> {path}")
    return 0


def cmd_fuzz(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from bench.tools.fuzz import FuzzConfig, format_run, run_fuzz

    config = FuzzConfig(decoders=args.decoder, count=args.count, seed=args.seed, start=args.start,
                        time_limit=args.time_limit, memory_mb=args.memory_mb, uncapped=args.uncapped,
                        save_failures=args.save_failures)

    def capped(decoder: str, count: int, cap: int) -> None:
        print(f"{decoder}: {count} inputs capped at {cap} (slow decoder; --uncapped for all)", file=sys.stderr)

    def progress(decoder: str, count: int):
        return tqdm(total=count, desc=f"fuzz {decoder}", unit="input", disable=args.no_progress, file=sys.stderr)

    result = run_fuzz(config, progress=progress, on_capped=capped)
    print(format_run(result))
    return 1 if result.failed else 0


def cmd_check(args: argparse.Namespace) -> int:
    from bench.tools import check

    return check.run(args)


def _add_run_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--codecs", action="append", required=True,
                        help="comma list of codec specs, e.g. compass,shvc,simulcast:x265")
    parser.add_argument("--scales", action="append",
                        help="inter-layer ratios of one scale combination (e.g. 1.33,1.5; plain decimals); repeat "
                             "for more (default 2); 1 alone: a single-layer run of the full picture "
                             "(single-layer codecs only)")
    parser.add_argument("--dataset", default="kodak", help="kodak, clic, or a folder of images")
    parser.add_argument("--data-root", type=Path,
                        help="folder holding kodak/ and clic/ (default: $BENCH_DATA or ../shared/datasets)")
    parser.add_argument("--limit", type=int, help="use only the first N images")
    parser.add_argument("--qualities", action="append",
                        help="qualities for every codec (1,2,3) or per codec (x265=22,27); default: each codec's own")
    parser.add_argument("--anchor", default="top", help="pyramid protocol: top (default) or base:0.25 (COMPASS paper)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda[:N]")
    parser.add_argument("--threads", type=int, help="torch threads per job (default: cores / jobs)")
    parser.add_argument("--jobs", type=int, default=1, help="jobs run in parallel worker processes")
    parser.add_argument("--repeats", type=int, default=1,
                        help="timed runs of every encode/decode; records keep the median and the spread (default 1)")
    parser.add_argument("--out", type=Path, default=DEFAULT_RUN_DIR, help=f"run directory (default {DEFAULT_RUN_DIR})")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--scheduler", metavar="ADDRESS",
                        help="run the jobs on a Dask distributed cluster (e.g. tcp://127.0.0.1:8786) "
                             "instead of local worker processes; records are still written here only")
    parser.add_argument("--yuv-matrix", choices=list(YUV_MATRICES), default=DEFAULT_YUV_MATRIX,
                        help=f"YCbCr matrix of PSNR-Y and PSNR-YUV (full range, 8-bit, float; default "
                             f"{DEFAULT_YUV_MATRIX}, as CompressAI and JPEG AI; bt601: what x265 and SHVC code in)")
    parser.add_argument("--max-pixels", type=int, metavar="N",
                        help="refuse pictures of more than N pixels, from their headers, before anything runs "
                             "(default 6000000, twice the largest dataset picture: memory grows with the picture)")
    parser.add_argument("--dry-run", action="store_true",
                        help="print the plan (jobs per codec, scales and quality, how many are already done) "
                             "and a time estimate from the run directory's records, then exit")


def _resamples(text: str) -> int:
    """--bootstrap's value: a whole number ≥ 0 (argparse turns the error into a usage line)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expects a whole number of resamples, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 (no intervals) or more, got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bench", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    _add_run_arguments(sub.add_parser("run", help="run codecs over a dataset and scale combinations"))
    report = sub.add_parser("report", help="tables, BD-rate and RD plots from run directories")
    report.add_argument("run_dirs", nargs="*", type=Path, help=f"run directories (default {DEFAULT_RUN_DIR})")
    report.add_argument("--out", type=Path, default=DEFAULT_REPORT_DIR,
                        help=f"report folder (default {DEFAULT_REPORT_DIR})")
    report.add_argument("--eval-model-json", action="store_true", help="also export CompressAI eval_model JSON files")
    report.add_argument("--metric", choices=list(METRICS), default=DEFAULT_METRIC,
                        help=f"quality metric of the BD-rate tables and RD plots (default {DEFAULT_METRIC})")
    report.add_argument("--bootstrap", type=_resamples, default=DEFAULT_BOOTSTRAP, metavar="N",
                        help=f"bootstrap resamples of images for the 95 %% intervals of every BD-rate "
                             f"(default {DEFAULT_BOOTSTRAP}; 0: no intervals)")
    report.add_argument("--bd-average", choices=["curves", "images"], default="curves",
                        help="the BD-rate the tables lead with: of the mean curves (curves, CompressAI's "
                             "convention; default) or the mean of per-image BD-rates (images, JPEG AI's); "
                             "the CSVs hold both")
    report.add_argument("--latex", action="store_true",
                        help="also write the glance and per-layer BD-rate tables as LaTeX (booktabs) into OUT/latex")
    listing = sub.add_parser("list", help="registered codecs (with availability), datasets, anchors")
    listing.add_argument("--data-root", type=Path)
    encode = sub.add_parser("encode", help="encode one image with a codec into a bench bitstream file")
    encode.add_argument("--codec", required=True)
    encode.add_argument("--quality", type=int, required=True)
    encode.add_argument("--scales", default=None, help="inter-layer ratios (scalable codecs), e.g. 1.5,2")
    encode.add_argument("--anchor", default="top")
    encode.add_argument("--device", default="cpu")
    encode.add_argument("image", type=Path)
    encode.add_argument("output", type=Path)
    decode = sub.add_parser("decode", help="decode a bench bitstream file into PNG layers")
    decode.add_argument("bitstream", type=Path)
    decode.add_argument("--layers", type=int, help="decode only the first N layers (default all)")
    decode.add_argument("--device", default="cpu")
    decode.add_argument("--max-pixels", type=int,
                        help="refuse a file with a layer of more pixels, so that a header cannot make the decoder "
                             "allocate more (default: bench.images.DEFAULT_MAX_PIXELS, 6 MP)")
    decode.add_argument("--codec", metavar="SPEC",
                        help="decode with this spec instead of the file's: the same codec and options, your "
                             "@SOURCE (e.g. shvc@/opt/SHM/bin; a file never names a folder or binary)")
    decode.add_argument("prefix", help="output files are PREFIX_L<k>.png")
    from bench.tools.fuzz import add_arguments as add_fuzz_arguments  # stdlib-only import: cheap

    add_fuzz_arguments(sub.add_parser("fuzz", help="feed mutated and truncated inputs to every decoder of "
                                                   "bench-made bytes; count crashes and hangs"))
    from bench.tools.check import add_arguments as add_check_arguments

    add_check_arguments(sub.add_parser("check", help="rerun a small fixed configuration and compare it with "
                                                     "the committed baseline (CI regression gate)"))
    for command in plugin_commands():  # e.g. bench shm build, bench vtm build, bench weights fetch
        plugin_parser = sub.add_parser(command.name, help=command.help)
        command.add_arguments(plugin_parser)
        plugin_parser.set_defaults(plugin_run=command.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handlers = {"run": cmd_run, "report": cmd_report, "list": cmd_list, "encode": cmd_encode,
                "decode": cmd_decode, "fuzz": cmd_fuzz, "check": cmd_check}
    handler = getattr(args, "plugin_run", None) or handlers[args.command]
    try:
        return handler(args)
    except KeyboardInterrupt:
        print("interrupted: records of finished jobs are kept; rerun the same command to resume", file=sys.stderr)
        return 130
    except Exception as error:  # noqa: BLE001 - known errors become one clear line
        if is_user_error(error):
            print(f"bench {args.command}: error: {error}", file=sys.stderr)
            return exit_status(error)
        raise
