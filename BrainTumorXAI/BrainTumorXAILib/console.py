"""What ``braintumorxai analyze`` shows in a terminal: one progress bar, then where everything went."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from tqdm import tqdm

from .reporting.evidence_table import evidence_text
from .reporting.locality_text import locality_note

#: Stage names as a reader says them (the codes are what --progress-json and the Slicer module read).
STAGE_WORDS = {"load": "loading the case", "preprocess": "preprocessing", "inference": "segmenting",
               "resample": "back to the case grid", "outputs": "writing outputs", "done": "done"}
#: No ETA before this much of the bar has moved since the first network window: the early stages are
#: short and say nothing about the inference rate.
ETA_AFTER_FRACTION = 0.1


def _clock(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 60}:{seconds % 60:02d}"


class AnalysisProgress:
    """A tqdm bar over 0..100 % fed by a JobControl callback: the stage in words, the stage's own message
    (e.g. "window 3/8"), elapsed time, and an ETA measured from the inference rate once it is known."""

    def __init__(self, stream=None, clock=time.monotonic):
        self._clock = clock
        self._start = clock()
        self._origin: tuple[float, float] | None = None  # (time, fraction) at the first inference report
        self.bar = tqdm(total=100, file=stream or sys.stderr, dynamic_ncols=True, bar_format=self._FORMAT)
        self.fractions: list[float] = []

    _FORMAT = "{desc}: {percentage:3.0f}%|{bar}| "

    def eta(self, fraction: float) -> float | None:
        """Seconds left by the rate since inference began; None until that rate is measured."""
        if self._origin is None:
            return None
        t0, f0 = self._origin
        if fraction - f0 < ETA_AFTER_FRACTION:
            return None
        return (self._clock() - t0) / (fraction - f0) * (1.0 - fraction)

    def __call__(self, stage: str, fraction: float, message: str = "") -> None:
        if stage == "inference" and self._origin is None:
            self._origin = (self._clock(), fraction)
        self.fractions.append(fraction)
        eta = self.eta(fraction)
        timing = f"{_clock(self._clock() - self._start)} elapsed" + (f", about {_clock(eta)} left" if eta else "")
        self.bar.set_description_str(STAGE_WORDS.get(stage, stage), refresh=False)
        tail = f"{message}  [{timing}]" if message else f"[{timing}]"
        self.bar.bar_format = self._FORMAT + tail.replace("{", "{{").replace("}", "}}")  # tqdm's postfix adds ", "
        self.bar.n = round(100 * fraction)
        self.bar.refresh()

    def close(self) -> None:
        self.bar.close()


def print_analysis(summary: dict, out: Path, stream=None) -> None:
    """Volumes, Dice when a reference exists, what was missing or skipped, and where every output went."""
    def say(line: str) -> None:
        print(line, file=stream or sys.stdout)

    out = Path(out)
    vols = summary["volumes_cm3"]["regions"]
    say(f"case {summary['case']['id']}")
    clinical = summary.get("preprocessing_clinical") or {}
    if clinical:  # what was matched to what, and whether the raw scans were preprocessed (issue 26)
        say("files: " + ", ".join(f"{k} {Path(v).name}" for k, v in clinical["files"].items())
            + f" (matched by {clinical['matched_by']})")
        say(f"preprocessing: {clinical['mode']} ({clinical['reason']})")
    say("volumes (cm3): " + ", ".join(f"{k} {v:.1f}" for k, v in vols.items()))
    metrics = summary.get("metrics")
    if metrics:
        say("dice: " + ", ".join(f"{k} {v['dice']:.3f}" for k, v in metrics["regions"].items()))
        say("hd95 (mm): " + ", ".join(f"{k} {v['hd95']:.1f}" for k, v in metrics["regions"].items()))
    missing = summary.get("missing_sequences") or []
    if missing:
        say(f"missing: {', '.join(s.upper() for s in missing)}; the model ran without "
            f"{'it' if len(missing) == 1 else 'them'}")
    check = ((summary.get("postprocessing") or {}).get("enhancement_check") or {})
    if check.get("skipped"):
        say(f"enhancement check (is ET brighter on T1ce than on T1?) skipped: {check['skipped']}")
    fallback = [name for name, used in (summary.get("gradcam_fallback_all_voxels") or {}).items() if used]
    if fallback:
        say(f"grad-cam: {', '.join(fallback)} not predicted anywhere; "
            "explained over all brain voxels instead (a weak, unspecific map)")
    note = locality_note(summary.get("gradcam_locality"))
    if note:
        say(f"grad-cam: {note[0].lower()}{note[1:]}")
    evidence = evidence_text(summary.get("sequence_evidence"))
    if evidence:
        say("sequence evidence (share of each class's evidence; an attribution of the network's output, "
            "not proof of tumour):\n" + evidence)
    say(f"outputs in {out}:")
    outputs = summary.get("outputs") or {}
    if outputs.get("seg"):
        say(f"  segmentation  {out / outputs['seg']}")
    say(f"  maps          {out}/ (prob_*, mc_variance_*, entropy, gradcam_* .nii.gz)")
    figures = sorted((out / "figures").glob("*.png"))
    if figures:
        say(f"  figures       {out / 'figures'}/ ({len(figures)} PNG: overview, probabilities, uncertainty, "
            "Grad-CAM, where to look ...)")
    if outputs.get("surfaces"):
        say(f"  surfaces      {out / 'surfaces'}/")
    if summary.get("dicom_outputs"):
        say(f"  DICOM SEG and {len(summary['dicom_outputs']['maps'])} parametric maps  "
            f"{summary['dicom_outputs']['folder']}")
    if summary.get("scene"):
        say(f"  3D Slicer scene  {summary['scene']}")
    say(f"  summary       {out / 'summary.json'}")
    say(f"total {summary['timings_s']['total']:.1f} s on {summary['device']}")
