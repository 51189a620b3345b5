"""Cases for training: discovery, the deterministic split, preprocessing cache, patch sampling, augmentation.

A case is preprocessed exactly as ``analyze`` will preprocess it at inference
(BrainTumorXAILib.io.network_grid), once, and kept in memory.  Every random
choice of a training sample comes from a generator seeded by
(seed, epoch, index), so a resumed run draws the very same batches.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from BrainTumorXAILib.io.case_files import list_cases
from BrainTumorXAILib.io.case_io import load_case
from BrainTumorXAILib.errors import BrainTumorXAIError
from BrainTumorXAILib.io.intensity import brain_mask
from BrainTumorXAILib.io.network_grid import PreprocessTransform, preprocess

CACHE_INDEX = "index.json"


@dataclass
class PreparedCase:
    case_id: str
    image: np.ndarray  # (4, x, y, z) float32 (float16 from a cache: half the memory), normalised, network grid
    label: np.ndarray  # (x, y, z) uint8 internal classes, network grid
    transform: PreprocessTransform
    source: str
    files: dict | None = None  # sequence -> source file
    spacing: tuple | None = None  # source voxel size (mm)


def prepare_case(folder: Path, normalisation: dict) -> PreparedCase:
    """Load + preprocess one raw case folder as inference will (labels by nearest neighbour)."""
    case = load_case(folder)
    if case.label is None:
        raise BrainTumorXAIError(f"{folder}: no ground-truth segmentation (_seg / -seg) to train on")
    mask = brain_mask(case.images)
    image, _, transform = preprocess(case.images, case.affine, method=normalisation["method"],
                                     crop=normalisation["crop"], window=normalisation["window"],
                                     spacing=normalisation["spacing"], multiple_of=normalisation["multiple_of"],
                                     mask=mask, reorient=normalisation.get("reorient", True))
    label = transform.apply(case.label, order=0).astype(np.uint8)
    files = {k: str(v) for k, v in case.files.items()}
    return PreparedCase(case.case_id, image.astype(np.float32), label, transform, str(folder), files,
                        tuple(float(v) for v in case.spacing))


def save_prepared(case: PreparedCase, cache_dir: Path) -> dict:
    # Named by folder, as split.json and training.evaluate name cases (a folder may differ from its file prefix).
    key = Path(case.source).name
    np.savez_compressed(cache_dir / f"{key}.npz", image=case.image.astype(np.float16), label=case.label)
    record = {"key": key, "case_id": case.case_id, "file": f"{key}.npz", "source": case.source,
              "source_files": case.files, "source_spacing": case.spacing, "transform": case.transform.to_dict()}
    (cache_dir / f"{key}.json").write_text(json.dumps(record, indent=1))
    return record


def load_prepared(cache_dir: Path, record: dict) -> PreparedCase:
    # float16 stays float16 in memory; patches are widened to float32 when cut out.
    with np.load(cache_dir / record["file"]) as z:
        return PreparedCase(record["case_id"], z["image"], z["label"].astype(np.uint8),
                            PreprocessTransform.from_dict(record["transform"]), record["source"],
                            record.get("source_files"), record.get("source_spacing"))


def discover(data_dir: Path) -> tuple[str, list, dict | None]:
    """('cache', index records, its preprocessing) for a preprocess cache, else ('raw', case folders, None)."""
    data_dir = Path(data_dir)
    if (data_dir / CACHE_INDEX).exists():
        index = json.loads((data_dir / CACHE_INDEX).read_text())
        return "cache", index["cases"], index.get("normalisation")
    if not data_dir.is_dir():
        raise BrainTumorXAIError(f"{data_dir}: data folder not found")
    return "raw", list_cases(data_dir), None


def case_key(item) -> str:
    if isinstance(item, dict):
        return item.get("key", item["case_id"])
    return Path(item).name


def make_split(keys: list[str], fractions, seed: int) -> dict[str, list[str]]:
    """Deterministic train/val/test split by case id (a hash of id and seed orders the cases)."""
    order = sorted(keys, key=lambda k: hashlib.sha256(f"{seed}:{k}".encode()).hexdigest())
    n = len(order)
    n_val = max(1, round(fractions[1] * n)) if n >= 3 else 0
    n_test = max(1, round(fractions[2] * n)) if n >= 4 else 0
    n_train = n - n_val - n_test
    return {"train": sorted(order[:n_train]), "val": sorted(order[n_train:n_train + n_val]),
            "test": sorted(order[n_train + n_val:])}


class CaseStore:
    """Prepared cases by id, loaded lazily and kept in memory; bad cases reported once and skipped."""

    def __init__(self, data_dir: Path, normalisation: dict, log=print):
        self.data_dir = Path(data_dir)
        self.normalisation = normalisation
        self.kind, items, self.cache_normalisation = discover(self.data_dir)
        self.items = {case_key(i): i for i in items}
        self.cases: dict[str, PreparedCase] = {}
        self.bad: dict[str, str] = {}
        self.log = log

    def keys(self) -> list[str]:
        return sorted(self.items)

    def get(self, key: str) -> PreparedCase | None:
        if key in self.cases:
            return self.cases[key]
        if key in self.bad:
            return None
        try:
            item = self.items[key]
            case = load_prepared(self.data_dir, item) if self.kind == "cache" else prepare_case(item, self.normalisation)
        except (BrainTumorXAIError, ValueError, OSError) as exc:
            self.bad[key] = str(exc)
            self.log(f"skipping case {key}: {exc}")
            return None
        self.cases[key] = case
        return case

    def usable(self, keys) -> list[str]:
        return [k for k in keys if self.get(k) is not None]


def sample_generator(seed: int, epoch: int, index: int) -> np.random.Generator:
    return np.random.default_rng([seed, epoch, index])


class EpochSampledDataset(Dataset):
    """``length`` random samples per epoch; sample ``index`` of epoch ``e`` is drawn from the generator
    seeded by (seed, e, index), so a resumed run or another worker count draws the same batches."""

    def __init__(self, cfg, length: int):
        self.cfg, self.length, self.epoch = cfg, int(length), 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.length

    def rng(self, index: int) -> np.random.Generator:
        return sample_generator(self.cfg.seed, self.epoch, index)


class PatchDataset(EpochSampledDataset):
    """Random patches from the training cases."""

    def __init__(self, store: CaseStore, keys: list[str], cfg, length: int):
        super().__init__(cfg, length)
        self.store, self.keys = store, list(keys)
        if not self.keys:
            raise BrainTumorXAIError(f"{store.data_dir}: no usable training case")

    def __getitem__(self, index: int):
        rng = self.rng(index)
        case = self.store.get(self.keys[int(rng.integers(len(self.keys)))])
        image, label = extract_patch(case.image, case.label, self.cfg.patch, rng, self.cfg.foreground_fraction)
        image, label = augment(torch.from_numpy(image), torch.from_numpy(label.astype(np.int64)), self.cfg, rng)
        return image, label


def extract_patch(image: np.ndarray, label: np.ndarray, size: int, rng: np.random.Generator,
                  foreground_fraction: float) -> tuple[np.ndarray, np.ndarray]:
    """A size^3 patch; with ``foreground_fraction`` probability centred on a tumour voxel of a random class."""
    shape = np.array(label.shape)
    centre = None
    if rng.random() < foreground_fraction:
        present = [c for c in (1, 2, 3) if np.any(label == c)]
        if present:
            voxels = np.argwhere(label == present[int(rng.integers(len(present)))])
            centre = voxels[int(rng.integers(len(voxels)))]
    if centre is None:
        centre = np.array([rng.integers(0, s) for s in shape])
    return cut_patch(image, label, centre, size)


def patch_start(centre, size: int, shape) -> np.ndarray:
    """First voxel of the size^3 patch around ``centre``, shifted to stay inside a volume of ``shape``."""
    shape = np.asarray(shape)
    return np.clip(np.asarray(centre) - size // 2, 0, np.maximum(shape - size, 0))


def cut_patch(image: np.ndarray, label: np.ndarray, centre, size: int) -> tuple[np.ndarray, np.ndarray]:
    """The size^3 patch around ``centre`` (voxel), from ``patch_start``; zero-padded (background) where the
    volume is smaller than the patch.  Fresh C-ordered arrays: the caller may write into them."""
    box = tuple(slice(int(a), int(a) + size) for a in patch_start(centre, size, label.shape))
    img = image[(slice(None), *box)].astype(np.float32, order="C")  # astype copies
    lab = label[box].copy(order="C")
    pad = [(0, size - s) for s in lab.shape]
    if any(p[1] for p in pad):
        img = np.pad(img, [(0, 0)] + pad)
        lab = np.pad(lab, pad)
    return img, lab


def random_flips(image: torch.Tensor, label: torch.Tensor, rng: np.random.Generator):
    """Each axis flipped with probability 1/2 (image (C, ...) and label (...) alike)."""
    for axis in range(3):
        if rng.random() < 0.5:
            image, label = image.flip(axis + 1), label.flip(axis)
    return image, label


def augment(image: torch.Tensor, label: torch.Tensor, cfg, rng: np.random.Generator):
    """Flips, small rotation/scaling (same grid for image and label), intensity shift/scale, gamma, noise."""
    if cfg.flip:
        image, label = random_flips(image, label, rng)
    if rng.random() < cfg.spatial_prob:
        image, label = _rotate_scale(image, label, rng, cfg.rotate_deg, cfg.scale)
    channels = image.shape[0]
    scale = torch.from_numpy(rng.uniform(1 - cfg.intensity_scale, 1 + cfg.intensity_scale, channels)).float()
    shift = torch.from_numpy(rng.uniform(-cfg.intensity_shift, cfg.intensity_shift, channels)).float()
    image = image * scale[:, None, None, None] + shift[:, None, None, None]
    if rng.random() < cfg.gamma_prob:
        image = _gamma(image, float(rng.uniform(1 - cfg.gamma, 1 + cfg.gamma)))
    if rng.random() < cfg.noise_prob:
        noise = torch.from_numpy(rng.standard_normal(image.shape).astype(np.float32))
        image = image + cfg.noise_std * noise
    return image.contiguous(), label.contiguous()


def _gamma(image: torch.Tensor, gamma: float) -> torch.Tensor:
    """Gamma on each channel rescaled to [0, 1], then back to its range."""
    lo = image.amin(dim=(1, 2, 3), keepdim=True)
    hi = image.amax(dim=(1, 2, 3), keepdim=True)
    span = (hi - lo).clamp_min(1e-6)
    return ((image - lo) / span).pow(gamma) * span + lo


def _rotate_scale(image: torch.Tensor, label: torch.Tensor, rng: np.random.Generator, max_deg: float, max_scale: float):
    angles = np.deg2rad(rng.uniform(-max_deg, max_deg, 3))
    s = rng.uniform(1 - max_scale, 1 + max_scale)
    cx, cy, cz = np.cos(angles)
    sx, sy, sz = np.sin(angles)
    rx = np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
    ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    rz = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
    theta = np.zeros((1, 3, 4), np.float32)
    theta[0, :, :3] = (rz @ ry @ rx) / s
    grid = F.affine_grid(torch.from_numpy(theta), (1, 1, *image.shape[1:]), align_corners=False)
    img = F.grid_sample(image[None], grid, mode="bilinear", padding_mode="zeros", align_corners=False)[0]
    lab = F.grid_sample(label[None, None].float(), grid, mode="nearest", padding_mode="zeros", align_corners=False)
    return img, lab[0, 0].long()

