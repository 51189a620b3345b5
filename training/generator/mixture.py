"""The training set as a mixture of sources: synthetic patches made on the fly and real labelled cases.

A sources file (JSON) says what to mix::

    {"synthetic": {"weight": 0.5, "settings": {"spacing": 2.0, ...}},
     "real": {"weight": 0.3, "cases": [{"path": "BRATS2013/pat0001", "labels": "expert"}, …]},
     "inserted": {"weight": 0.2, "settings": {"kinds": {...}}},
     "validation": [{"path": "BRATS2013/pat0005", "labels": "expert"}, …],
     "sequence_dropout": {"t1": 0.3, "t2": 0.3}}

Case paths are relative to the data root (``training.train --data-root``).  Each sample picks a source by
weight (seeded per (seed, epoch, index), so a resumed run draws the same batches); a real case is picked uniformly,
a patch cut with tumour oversampling and augmented as in ``training.data``; an ``inserted`` sample
paints a generator tumour into a real training case away from its own tumour (``insertion``) and is
augmented as a real patch.  Sequence dropout
zeroes T1 and/or T2 of a sample (FLAIR and T1ce always stay), so the network learns to work
without them; cases that lack a sequence are always seen without it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from BrainTumorXAILib.errors import BrainTumorXAIError
from BrainTumorXAILib.io.labels import SEQUENCES

from ..data import EpochSampledDataset, PreparedCase, augment, extract_patch, random_flips
from .insertion import InsertSettings, inserted_patch, insertion_centres
from .real import prepare_real, read_real
from .synthetic import SynthSettings, synthetic_patch

LABEL_QUALITIES = ("expert", "silver")


@dataclass
class SourceSpec:
    synthetic_weight: float
    synth: SynthSettings
    real_weight: float
    real: list  # [{"path": Path, "labels": "expert"|"silver"}]
    validation: list
    sequence_dropout: dict
    optional_sequences: tuple
    inserted_weight: float = 0.0
    insert: InsertSettings = field(default_factory=InsertSettings)

    def record(self) -> dict:
        """JSON-ready description for config.json and the checkpoint's provenance."""
        return {"synthetic": {"weight": self.synthetic_weight, "settings": vars(self.synth)},
                "real": {"weight": self.real_weight, "cases": [_case_record(c) for c in self.real]},
                "inserted": {"weight": self.inserted_weight, "settings": vars(self.insert)},
                "validation": [_case_record(c) for c in self.validation],
                "sequence_dropout": self.sequence_dropout, "optional_sequences": list(self.optional_sequences)}


def _case_record(case: dict) -> dict:
    return {"path": str(case["path"]), "labels": case["labels"]}


def _cases(items, base: Path, where: str) -> list:
    out = []
    for item in items or []:
        item = {"path": item} if isinstance(item, str) else dict(item)
        quality = item.get("labels", "expert")
        if quality not in LABEL_QUALITIES:
            raise BrainTumorXAIError(f"{where}: labels must be one of {', '.join(LABEL_QUALITIES)}, got {quality!r}")
        out.append({"path": (base / item["path"]).resolve(), "labels": quality})
    return out


def load_sources(path: Path, data_root: Path) -> SourceSpec:
    """The sources file ``path``; its real cases' paths are relative to ``data_root``."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise BrainTumorXAIError(f"{path}: cannot read the sources file ({exc})") from None
    base = Path(data_root)
    synth = data.get("synthetic", {})
    real = data.get("real", {})
    inserted = data.get("inserted", {})
    dropout = {k: float(v) for k, v in data.get("sequence_dropout", {}).items()}
    bad = sorted(set(dropout) - {"t1", "t2"})
    if bad:
        raise BrainTumorXAIError(f"{path}: only t1 and t2 may be dropped (FLAIR and T1ce carry the tumour), got {bad}")
    spec = SourceSpec(float(synth.get("weight", 0.0)), SynthSettings(**synth.get("settings", {})),
                      float(real.get("weight", 0.0)), _cases(real.get("cases"), base, str(path)),
                      _cases(data.get("validation"), base, str(path)), dropout,
                      tuple(sorted(set(dropout) | _absent_anywhere(data))),
                      float(inserted.get("weight", 0.0)), _insert_settings(path, inserted, synth))
    if spec.synthetic_weight <= 0 and (spec.real_weight + spec.inserted_weight <= 0 or not spec.real):
        raise BrainTumorXAIError(f"{path}: no source to train on (give synthetic, real or inserted a weight > 0)")
    return spec


def _insert_settings(path: Path, inserted: dict, synth: dict) -> InsertSettings:
    """Insertion happens on the network grid, the synthetic source's spacing unless it says its own."""
    settings = dict(inserted.get("settings", {}))
    settings.setdefault("spacing", synth.get("settings", {}).get("spacing", 2.0))
    try:
        return InsertSettings(**settings)
    except TypeError as exc:
        raise BrainTumorXAIError(f"{path}: inserted settings: {exc}") from None


def _absent_anywhere(data: dict) -> set:
    return set(data.get("optional_sequences", []))


class RealStore:
    """Prepared real cases by key (lazy, kept in memory); the interface of ``training.data.CaseStore``."""

    def __init__(self, cases: list, normalisation: dict, log=print):
        self.normalisation, self.log = normalisation, log
        self.items = {Path(c["path"]).name: c for c in cases}
        self.cases: dict[str, PreparedCase] = {}
        self.bad: dict[str, str] = {}

    def keys(self) -> list[str]:
        return sorted(self.items)

    def get(self, key: str) -> PreparedCase | None:
        if key in self.cases or key in self.bad:
            return self.cases.get(key)
        item = self.items[key]
        try:
            case = read_real(item["path"])
            image, label, transform = prepare_real(case, self.normalisation)
        except (BrainTumorXAIError, ValueError, OSError) as exc:
            self.bad[key] = str(exc)
            self.log(f"skipping case {key}: {exc}")
            return None
        self.cases[key] = PreparedCase(case.case_id, image, label, transform, case.source)
        return self.cases[key]

    def usable(self, keys) -> list[str]:
        return [k for k in keys if self.get(k) is not None]


class MixtureDataset(EpochSampledDataset):
    """Samples drawn from the sources by weight."""

    def __init__(self, spec: SourceSpec, store: RealStore, real_keys: list[str], cfg, length: int):
        super().__init__(cfg, length)
        self.spec, self.store, self.real_keys = spec, store, list(real_keys)
        hosts = 1.0 if self.real_keys else 0.0
        weights = np.array([spec.synthetic_weight, spec.real_weight * hosts, spec.inserted_weight * hosts])
        if weights.sum() <= 0:
            raise BrainTumorXAIError("no usable training source (no synthetic weight and no usable real case)")
        self.weights = weights / weights.sum()
        self._centres: dict[str, np.ndarray] = {}

    def _host_centres(self, key: str, case: PreparedCase) -> np.ndarray:
        if key not in self._centres:
            self._centres[key] = insertion_centres(case.image, case.label, self.spec.insert.spacing,
                                                   self.spec.insert.margin_mm)
        return self._centres[key]

    def __getitem__(self, index: int):
        rng = self.rng(index)
        u = rng.random()
        if u < self.weights[0]:
            image, label = synthetic_patch(rng, self.cfg.patch, self.spec.synth)
            image, label = torch.from_numpy(image), torch.from_numpy(label.astype(np.int64))
            if self.cfg.flip:  # the generator randomises everything else itself
                image, label = random_flips(image, label, rng)
        else:
            key = self.real_keys[int(rng.integers(len(self.real_keys)))]
            case = self.store.get(key)
            if u < self.weights[0] + self.weights[1]:
                image, label = extract_patch(case.image, case.label, self.cfg.patch, rng,
                                             self.cfg.foreground_fraction)
            else:
                image, label = inserted_patch(rng, case.image, case.label, self.cfg.patch, self.spec.insert,
                                              self._host_centres(key, case))
            image, label = augment(torch.from_numpy(image), torch.from_numpy(label.astype(np.int64)), self.cfg, rng)
            absent = [c for c in range(case.image.shape[0]) if not case.image[c].any()]
            image[absent] = 0.0  # intensity augmentation must not invent a sequence the case lacks
        image = image.clone()
        for seq, p in self.spec.sequence_dropout.items():
            if rng.random() < p:
                image[SEQUENCES.index(seq)] = 0.0
        return image.contiguous(), label.contiguous()
