"""A checkpoint's uncertainty-quality card: how far its maps can be trusted, measured on validation cases.

Stored in the checkpoint's ``provenance["trust"]`` (it travels with the weights), or in a side file
``<checkpoint>.trust.json`` next to it (e.g. ``demo_weights.trust.json``); the provenance wins.  ``analyze``
copies the validated card into ``summary.json["model"]["trust"]`` (``None``: not measured), so the Slicer
results table and the web page read it from the summary, without torch.

Format (``format`` must be ``TRUST_FORMAT``; everything else optional, unknown keys dropped)::

    {"format": "braintumorxai-trust/1",
     "source": "training.evaluate on 40 BraTS 2021 validation cases, MC 20",  # free text, <= 200 chars
     "cases": 40,
     "estimator": "mc_dropout",          # mc_dropout | tta | ensemble | combined | deterministic
     "temperature": 1.31,                # the temperature the figures were measured with (None: none)
     "regions": {"WT": {"ece": 0.031, "auroc_entropy": 0.91, "auprc_entropy": 0.42,
                        "qubrats": 0.88, "qubrats_zero": 0.80, "qubrats_deterministic": 0.86},
                 "TC": {...}, "ET": {...}}}

Every figure is a finite number in [0, 1] (else dropped).  Reading is safe: a JSON file of at most 64 kB or a
plain dict, nothing executed; anything malformed reads as "not measured".
"""

from __future__ import annotations

import json
import math
from pathlib import Path

TRUST_FORMAT = "braintumorxai-trust/1"
NOT_MEASURED = "not measured for this checkpoint"
REGION_NAMES = ("WT", "TC", "ET")
#: Figure key -> short title (tables, page).
FIGURES = {"ece": "ECE", "auroc_entropy": "AUROC", "auprc_entropy": "AUPRC", "qubrats": "QU-BraTS",
           "qubrats_zero": "QU-BraTS (zero)", "qubrats_deterministic": "QU-BraTS (det.)"}
ESTIMATORS = ("mc_dropout", "tta", "ensemble", "combined", "deterministic")
MAX_SIDE_FILE_BYTES = 64 * 1024


def _unit(value) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    v = float(value)
    return v if math.isfinite(v) and 0.0 <= v <= 1.0 else None


def validate_trust(card) -> dict | None:
    """The card cleaned to the format above, or None (not a card, wrong format, no figure at all)."""
    if not isinstance(card, dict) or card.get("format") != TRUST_FORMAT:
        return None
    regions = {}
    for region in REGION_NAMES:
        got = (card.get("regions") or {}).get(region) if isinstance(card.get("regions"), dict) else None
        if isinstance(got, dict):
            figures = {k: _unit(got.get(k)) for k in FIGURES}
            figures = {k: v for k, v in figures.items() if v is not None}
            if figures:
                regions[region] = figures
    if not regions:
        return None
    out = {"format": TRUST_FORMAT, "regions": regions}
    if isinstance(card.get("source"), str):
        out["source"] = card["source"][:200]
    if isinstance(card.get("cases"), int) and not isinstance(card.get("cases"), bool) and card["cases"] >= 0:
        out["cases"] = card["cases"]
    if card.get("estimator") in ESTIMATORS:
        out["estimator"] = card["estimator"]
    t = card.get("temperature")
    if isinstance(t, (int, float)) and not isinstance(t, bool) and math.isfinite(t) and t > 0:
        out["temperature"] = float(t)
    return out


def side_file(weights) -> Path:
    weights = Path(weights)
    return weights.with_name(weights.name.rsplit(".", 1)[0] + ".trust.json")


def read_side_file(weights) -> dict | None:
    """The validated card of ``<checkpoint>.trust.json`` (None when absent, too big or malformed)."""
    path = side_file(weights)
    try:
        if not path.is_file() or path.stat().st_size > MAX_SIDE_FILE_BYTES:
            return None
        return validate_trust(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError):
        return None


def checkpoint_trust(meta: dict | None, weights=None) -> dict | None:
    """The checkpoint's card: ``provenance["trust"]``, else the side file next to ``weights``; None if neither."""
    provenance = (meta or {}).get("provenance") if isinstance(meta, dict) else None
    card = validate_trust(provenance.get("trust")) if isinstance(provenance, dict) else None
    if card is None and weights is not None:
        card = read_side_file(weights)
    return card


def summary_trust(summary: dict | None) -> dict | None:
    """The card of the checkpoint that produced a summary.json (``model.trust``, else ``model.provenance.trust``)."""
    model = (summary or {}).get("model") if isinstance(summary, dict) else None
    if not isinstance(model, dict):
        return None
    card = validate_trust(model.get("trust"))
    if card is None and isinstance(model.get("provenance"), dict):
        card = validate_trust(model["provenance"].get("trust"))
    return card


def region_text(card: dict | None, region: str) -> str:
    """One line per region for tables: 'ECE 0.031 · AUROC 0.910 · QU-BraTS 0.880 (zero 0.800)' or NOT_MEASURED."""
    figures = ((card or {}).get("regions") or {}).get(region)
    if not figures:
        return NOT_MEASURED
    parts = [f"{FIGURES[k]} {figures[k]:.3f}" for k in ("ece", "auroc_entropy", "auprc_entropy", "qubrats")
             if k in figures]
    if "qubrats" in figures and "qubrats_zero" in figures:
        parts[-1] += f" (zero {figures['qubrats_zero']:.3f})"
    return " · ".join(parts)


def card_source(card: dict | None) -> str:
    """Where the figures come from, one line ('' without a card)."""
    if not card:
        return ""
    bits = [card.get("source") or "validation"]
    if card.get("cases") is not None:
        bits.append(f"{card['cases']} cases")
    if card.get("estimator"):
        bits.append(card["estimator"])
    if card.get("temperature") is not None:
        bits.append(f"T = {card['temperature']:.3g}")
    return ", ".join(bits)
