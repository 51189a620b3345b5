"""Which series is T1, T1ce, T2 or FLAIR: from the words in its description and protocol first, then from the
contrast agent and the inversion, echo and repetition times; the user's overrides win over both."""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..io.labels import SEQUENCES
from . import DicomError
from .scan import FolderScan, Series

SEQUENCE_TITLES = {"t1": "T1", "t1ce": "T1ce", "t2": "T2", "flair": "FLAIR"}

# Words (lower case, split at anything that is not a letter, digit or '+') that name a weighting or contrast.
_FLAIR_WORDS = {"flair", "darkfluid", "dark_fluid", "tirm", "t2f", "t2flair"}
_T1_WORDS = {"t1", "t1w", "t1n", "mprage", "mp", "spgr", "bravo", "tfe", "flash", "vibe", "t1ce", "t1c", "t1gd",
             "t1post", "t1km"}
_T2_WORDS = {"t2", "t2w", "tse2", "t2tse", "space"}
_POST_WORDS = {"gd", "gad", "gado", "post", "contrast", "ce", "c+", "+c", "km", "t1ce", "t1c", "t1gd", "t1post",
               "t1km", "kontrast", "mdc", "dotarem", "gadovist", "magnevist", "multihance"}
_PRE_WORDS = {"pre", "native", "nativ", "t1n", "precontrast"}


@dataclass
class Assignment:
    sequence: str | None  # t1, t1ce, t2, flair, or None (not used)
    why: str  # what decided it (shown by ``info``)


def _words(series: Series) -> set[str]:
    ds = series.first
    text = " ".join(str(ds.get(k, "") or "") for k in ("SeriesDescription", "ProtocolName", "SequenceName"))
    text = text.lower().replace("dark fluid", "darkfluid").replace("t2 flair", "t2flair")
    return {w for w in re.split(r"[^a-z0-9+]+", text) if w}


def _number(ds, key: str) -> float | None:
    try:
        value = float(ds.get(key))
    except (TypeError, ValueError):
        return None
    return value if value > 0 else None


def guess_sequence(series: Series) -> Assignment:
    """The sequence a series' header points to, with the reason; ``sequence`` None when nothing points anywhere."""
    ds = series.first
    words = _words(series)
    agent = str(ds.get("ContrastBolusAgent", "") or "").strip()
    tr, te, ti = (_number(ds, k) for k in ("RepetitionTime", "EchoTime", "InversionTime"))
    inversion = "IR" in [str(v).upper() for v in (ds.get("ScanningSequence") or [])]
    if words & _FLAIR_WORDS:
        return Assignment("flair", "FLAIR in the description")
    if ti and ti >= 1500 and (inversion or (tr and tr >= 4000)):
        return Assignment("flair", f"inversion recovery, TI {ti:g} ms (fluid suppressed)")
    weighting, why = None, ""
    if words & _T1_WORDS:
        weighting, why = "t1", "T1 in the description"
    elif words & _T2_WORDS:
        weighting, why = "t2", "T2 in the description"
    elif tr and te and tr < 1000 and te < 30:
        weighting, why = "t1", f"short TR {tr:g} / TE {te:g} ms"
    elif ti and ti < 1300 and te and te < 10:
        weighting, why = "t1", f"inversion-prepared gradient echo (TI {ti:g}, TE {te:g} ms)"
    elif tr and te and tr >= 2000 and te >= 60:
        weighting, why = "t2", f"long TR {tr:g} / TE {te:g} ms"
    if weighting == "t2":
        return Assignment("t2", why)
    if weighting == "t1":
        if agent and not words & _PRE_WORDS:
            return Assignment("t1ce", f"{why}, contrast agent {agent}")
        if words & _POST_WORDS and not words & _PRE_WORDS:
            return Assignment("t1ce", f"{why}, contrast in the description")
        return Assignment("t1", why + (", no contrast agent" if not agent else ", pre-contrast in the description"))
    return Assignment(None, "no weighting recognised in the header")


def _find(scan: FolderScan, key: str, flag: str) -> Series:
    for s in scan.series:
        if key in (s.uid, s.number):
            return s
    numbers = ", ".join(s.number or s.uid for s in scan.series)
    raise DicomError(scan.folder, f"--{flag} {key}: no such series (series numbers here: {numbers})")


def assign_series(scan: FolderScan, overrides: dict | None = None) -> dict[str, Series]:
    """Sequence -> series for the analysis.  ``overrides`` {sequence: series number or UID} decide first.

    Two candidates for one sequence, or a matching series that is no regular volume, stop with one line.
    A sequence no series matches is left out (the model's optional sequences may be missing)."""
    overrides = {k: v for k, v in (overrides or {}).items() if v}
    chosen: dict[str, Series] = {}
    for seq, key in overrides.items():
        series = _find(scan, str(key), seq)
        if series.problem:
            raise DicomError(series.files[0].parent, f"--{seq} {key}: {series.label()}: {series.problem}")
        chosen[seq] = series
    taken = {s.uid for s in chosen.values()}
    candidates: dict[str, list[Series]] = {s: [] for s in SEQUENCES if s not in chosen}
    for series in scan.series:
        guess = guess_sequence(series).sequence
        if series.uid not in taken and guess in candidates:
            candidates[guess].append(series)
    for seq, found in candidates.items():
        usable = [s for s in found if not s.problem]
        if len(usable) > 1:
            listed = "; ".join(f"{s.number or '?'} '{s.description}'" for s in usable)
            raise DicomError(scan.folder, f"{len(usable)} series look like {SEQUENCE_TITLES[seq]} ({listed}); "
                                          f"choose one with --{seq} SERIES_NUMBER_OR_UID")
        if usable:
            chosen[seq] = usable[0]
        elif found:
            bad = found[0]
            raise DicomError(bad.files[0].parent, f"{bad.label()} ({SEQUENCE_TITLES[seq]}): {bad.problem}")
    if "t1ce" not in chosen:
        raise DicomError(scan.folder, "no T1ce series recognised (the reference grid of the analysis); "
                                      "choose one with --t1ce SERIES_NUMBER_OR_UID")
    return {s: chosen[s] for s in SEQUENCES if s in chosen}
