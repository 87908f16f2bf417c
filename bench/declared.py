"""What each codec of a report declared when it ran: its family, report role, whether it anchors every
family, and what its rate counts.

A run writes these facts of each codec into its manifest (``codecs.<spec>.declared``, from the codec's
``CodecInfo``), and the report pairs codecs by them: the same records give the same report on any
machine, whichever plugins are installed where the report runs. Runs written before the manifest
carried them fall back to the codecs registered here, and a codec known to neither is a family of its
own under test.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping

from bench.codec import SCALABLE_ROLE, CodecInfo

MANIFEST_KEY = "declared"


@dataclass(frozen=True)
class Declared:
    """One codec spec's report facts (see ``CodecInfo``: ``family`` here is resolved, never None)."""

    family: str
    report_role: str = SCALABLE_ROLE
    anchors_every_family: bool = False
    rate_counts: str = ""

    @classmethod
    def of_info(cls, spec: str, info: CodecInfo) -> "Declared":
        from bench.registry import codec_family

        return cls(family=codec_family(spec), report_role=info.report_role,
                   anchors_every_family=info.anchors_every_family, rate_counts=info.rate_counts)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> "Declared":
        """From a manifest entry; ValueError when it is not one (a manifest is untrusted input)."""
        try:
            declared = cls(family=data["family"], report_role=data.get("report_role", SCALABLE_ROLE),
                           anchors_every_family=data.get("anchors_every_family", False),
                           rate_counts=data.get("rate_counts", ""))
        except (KeyError, TypeError, AttributeError) as error:
            raise ValueError(f"not a codec declaration: {data!r:.200}") from error
        if not (isinstance(declared.family, str) and isinstance(declared.report_role, str)
                and isinstance(declared.anchors_every_family, bool) and isinstance(declared.rate_counts, str)):
            raise ValueError(f"not a codec declaration: {data!r:.200}")
        return declared

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def registered(spec: str) -> Declared:
    """What the codec of ``spec`` registered here declares; an unknown codec is its own family under test."""
    from bench.registry import CodecSpec, codec_info

    info = codec_info(spec)
    if info is None:
        return Declared(family=CodecSpec.parse(spec).name)
    return Declared.of_info(spec, info)


@dataclass(frozen=True)
class Declarations:
    """The report's lookup: what the runs' manifests recorded per codec spec, else ``registered``."""

    recorded: Mapping[str, Declared] = field(default_factory=dict)

    @classmethod
    def of_manifests(cls, manifests: Iterable[tuple[Path, Mapping[str, Any]]]) -> "Declarations":
        """From ``load_manifests``' (run folder, manifest) pairs: each invocation's codecs, a later
        invocation's declaration replacing an earlier one's. Entries that are not declarations are
        left out (the registry answers for that codec)."""
        recorded: dict[str, Declared] = {}
        for _, manifest in manifests:
            for invocation in manifest.get("invocations", []) if isinstance(manifest, Mapping) else []:
                codecs = invocation.get("codecs", {}) if isinstance(invocation, Mapping) else {}
                for spec, entry in codecs.items() if isinstance(codecs, Mapping) else []:
                    if isinstance(entry, Mapping) and MANIFEST_KEY in entry:
                        try:
                            recorded[spec] = Declared.from_json(entry[MANIFEST_KEY])
                        except ValueError:
                            continue
        return cls(recorded)

    def __call__(self, spec: str) -> Declared:
        found = self.recorded.get(spec)
        return found if found is not None else registered(spec)

    def family(self, spec: str) -> str:
        return self(spec).family

    def anchors_every_family(self, spec: str) -> bool:
        return self(spec).anchors_every_family


REGISTERED = Declarations()  # the lookup for callers without runs: the codecs registered here
