"""Labelled real cases for training and validation, prepared exactly as ``analyze`` prepares its input.

Two layouts are read: BraTS folders (2020/21 or 2023/24 names, through ``load_case``; sequences
the checkpoint may do without can be absent) and BRATS 2013 folders as republished by DeepMedic
(``Flair_subtrMeanDivStd``, ``T1c_subtrMeanDivStd``, ``OTMultiClass``, ``brainmask``: FLAIR and T1c
only, z-scored with a constant background, labels {1 necrosis, 2 oedema, 3 non-enhancing, 4 enhancing}).
Absent sequences are zero channels after normalisation: what the network sees at inference too.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np

from BrainTumorXAILib.errors import BrainTumorXAIError
from BrainTumorXAILib.io.case_io import load_case
from BrainTumorXAILib.inference.case_prediction import network_input
from BrainTumorXAILib.io.labels import SEQUENCES

BRATS2013_FILES = {"flair": "Flair_subtrMeanDivStd", "t1ce": "T1c_subtrMeanDivStd"}
BRATS2013_LABELS = "OTMultiClass"
BRATS2013_MASK = "brainmask"
#: BRATS 2013 label -> internal class (non-enhancing 3 joins necrosis as BraTS 2017+ does).
BRATS2013_TO_INTERNAL = {0: 0, 1: 1, 2: 2, 3: 1, 4: 3}


@dataclass
class RealCase:
    case_id: str
    images: np.ndarray  # (4, X, Y, Z) raw intensities, zeros for absent sequences
    present: tuple[str, ...]
    label: np.ndarray  # internal classes
    affine: np.ndarray
    source: str

    @property
    def missing(self) -> list[str]:
        return [s for s in SEQUENCES if s not in self.present]


def _nifti(folder: Path, stem: str) -> Path | None:
    for ext in (".nii.gz", ".nii"):
        if (folder / f"{stem}{ext}").is_file():
            return folder / f"{stem}{ext}"
    return None


def is_brats2013(folder: Path) -> bool:
    return _nifti(Path(folder), BRATS2013_LABELS) is not None


def read_brats2013(folder: Path) -> RealCase:
    folder = Path(folder)
    paths = {seq: _nifti(folder, stem) for seq, stem in BRATS2013_FILES.items()}
    for name, path in [*paths.items(), ("labels", _nifti(folder, BRATS2013_LABELS)),
                       ("brain mask", _nifti(folder, BRATS2013_MASK))]:
        if path is None:
            raise BrainTumorXAIError(f"{folder}: BRATS 2013 case without its {name} file")
    ref = nib.load(paths["flair"])
    brain = np.asarray(nib.load(_nifti(folder, BRATS2013_MASK)).dataobj) > 0.5
    raw = np.rint(np.asarray(nib.load(_nifti(folder, BRATS2013_LABELS)).dataobj)).astype(np.int64)
    unknown = sorted(set(np.unique(raw).tolist()) - set(BRATS2013_TO_INTERNAL))
    if unknown:
        raise BrainTumorXAIError(f"{_nifti(folder, BRATS2013_LABELS)}: labels {unknown} are not BRATS 2013 labels")
    label = np.vectorize(BRATS2013_TO_INTERNAL.get, otypes=[np.uint8])(raw)
    images = np.zeros((len(SEQUENCES), *ref.shape), np.float32)
    for seq, path in paths.items():
        data = np.asarray(nib.load(path).dataobj, dtype=np.float32)
        # Shift so the brain's minimum sits just above 0, and clear the constant background,
        # so that "non-zero = brain" holds as in BraTS files.
        data = np.where(brain, data - data[brain].min() + 1.0, 0.0)
        images[SEQUENCES.index(seq)] = data
    return RealCase(folder.name, images, tuple(paths), label, np.asarray(ref.affine, np.float64), str(folder))


def read_brats(folder: Path, optional: tuple[str, ...] = ()) -> RealCase:
    case = load_case(folder, optional=optional)
    if case.label is None:
        raise BrainTumorXAIError(f"{folder}: no ground-truth segmentation (_seg / -seg) to train on")
    present = tuple(s for s in SEQUENCES if s not in case.missing)
    images = np.asarray(case.images, np.float32)
    return RealCase(case.case_id, images, present, case.label.astype(np.uint8), case.affine, str(folder))


def read_real(folder: Path, optional: tuple[str, ...] = ("t1", "t2")) -> RealCase:
    return read_brats2013(folder) if is_brats2013(folder) else read_brats(folder, optional)


def prepare_real(case: RealCase, normalisation: dict):
    """(image (4, ...) float32 on the network grid, label uint8, transform): exactly what ``analyze`` feeds the
    network (``network_input``), absent channels 0."""
    image, _, transform, _ = network_input(case, {"sequences": list(SEQUENCES), "normalisation": normalisation})
    label = transform.apply(case.label, order=0).astype(np.uint8)
    return image, label, transform
