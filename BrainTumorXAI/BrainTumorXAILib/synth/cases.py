"""Synthetic cases in memory and on disk (the BraTS layout), and the shipped sample case."""

from __future__ import annotations

import dataclasses
import errno
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np

from ..io.labels import NAMINGS, SEQUENCES, from_internal
from .anatomy import _atlas, _brain_crop, _grid_to_template, _mass_effect, _pick_centre, _resample_anatomy, default_affine
from .contrasts import _render
from .params import CaseParams, _apply_overrides, _draw_params, _equivalent_radius
from .phantom_tumour import _tumour


#: Grid presets for the command line: (shape, isotropic spacing in mm).
SIZE_PRESETS: dict[str, tuple[tuple[int, int, int], float]] = {
    "brats": ((240, 240, 155), 1.0),
    "small": ((120, 120, 78), 2.0),  # same field of view at 2 mm
}


SAMPLE_CASE_ID = "BraTS2021_Sample"
SAMPLE_CASE_SEED = 2026

# --------------------------------------------------------------------------- public API


@dataclass(frozen=True)
class SynthCase:
    """One synthetic case in memory (full grid)."""

    images: dict[str, np.ndarray]  # sequence -> int16, keys in SEQUENCES order
    classes: np.ndarray  # uint8 internal classes 0..3
    brain: np.ndarray  # bool brain mask (images are 0 outside)
    tissue: dict[str, np.ndarray]  # 'gm', 'wm', 'csf' float32 fractions (after mass effect)
    affine: np.ndarray  # default BraTS-like header
    params: CaseParams


def _seed_sequence(seed: int | np.random.SeedSequence) -> np.random.SeedSequence:
    return seed if isinstance(seed, np.random.SeedSequence) else np.random.SeedSequence(int(seed))


def _check_grid(shape, spacing) -> tuple[tuple[int, int, int], float]:
    shape = tuple(int(n) for n in shape)
    if len(shape) != 3 or min(shape) < 8:
        raise ValueError(f"shape must be three sizes of at least 8 voxels, got {shape}")
    if not (float(spacing) > 0 and math.isfinite(float(spacing))):
        raise ValueError(f"spacing must be a positive number of mm, got {spacing}")
    return shape, float(spacing)


def synthesize(seed: int | np.random.SeedSequence, *, shape=(240, 240, 155), spacing: float = 1.0,
               rng_params: Mapping[str, object] | None = None) -> SynthCase:  # fmt: skip
    """Build one case in memory; deterministic in (seed, shape, spacing, rng_params)."""
    shape, spacing = _check_grid(shape, spacing)
    rng = np.random.default_rng(_seed_sequence(seed))
    atlas = _atlas()
    params = _apply_overrides(_draw_params(rng), rng_params)
    centre_mni = np.asarray(params.centre_mni) if params.centre_mni is not None else _pick_centre(rng, atlas, params)
    params = dataclasses.replace(params, centre_mni=tuple(float(v) for v in centre_mni))

    affine = default_affine(shape, spacing)
    m = _grid_to_template(params, affine, atlas)
    pad = int(math.ceil(params.mass_effect_mm / spacing)) + 2
    crop = _brain_crop(m, atlas, shape, pad)
    anatomy = _resample_anatomy(atlas, m, crop)

    # Tumour centre in crop voxels, and the box that holds the tumour and its mass effect.
    inv = np.linalg.inv(m) @ np.linalg.inv(atlas.affine)
    centre = inv[:3, :3] @ centre_mni + inv[:3, 3] - np.array([s.start for s in crop])
    radius = _equivalent_radius(params.wt_volume_cm3 * 1000.0)
    reach = 0.6 * radius
    half = max(1.9 * radius + 6.0, 3.0 * reach) / spacing
    box = tuple(slice(int(max(0, math.floor(c - half))), int(min(n, math.ceil(c + half) + 1)))
                for c, n in zip(centre, anatomy.gm.shape))  # fmt: skip
    _mass_effect(anatomy, atlas, m, crop, box, centre, params.mass_effect_mm, reach, spacing)
    box_classes = _tumour(rng, params, anatomy, box, centre, spacing)
    crop_images = _render(rng, anatomy, box_classes, box, spacing)

    classes = np.zeros(shape, np.uint8)
    classes[crop][box] = box_classes
    brain = np.zeros(shape, bool)
    brain[crop] = anatomy.brain
    images = {}
    for seq in SEQUENCES:
        images[seq] = np.zeros(shape, np.int16)
        images[seq][crop] = crop_images[seq]
    tissue = {}
    for name in ("gm", "wm", "csf"):
        tissue[name] = np.zeros(shape, np.float32)
        tissue[name][crop] = getattr(anatomy, name)
    return SynthCase(images=images, classes=classes, brain=brain, tissue=tissue, affine=affine, params=params)


def case_file_names(case_id: str, naming: str) -> dict[str, str]:
    """File name of each sequence and of 'seg' for ``case_id`` under ``naming``."""
    if naming not in NAMINGS:
        raise ValueError(f"unknown naming {naming!r}; expected one of {', '.join(NAMINGS)}")
    return {key: f"{case_id}{suffix}.nii.gz" for key, suffix in NAMINGS[naming].items()}


def _check_affine(affine) -> np.ndarray:
    a = np.asarray(affine, dtype=np.float64)
    if a.shape != (4, 4) or not np.all(np.isfinite(a)) or abs(np.linalg.det(a[:3, :3])) < 1e-9:
        raise ValueError("affine must be a finite, invertible 4x4 matrix")
    return a


def _refuse_overwrite(case_dir: Path) -> None:
    if case_dir.exists() and (not case_dir.is_dir() or any(case_dir.iterdir())):
        raise FileExistsError(errno.EEXIST, "refusing to overwrite an existing case folder", str(case_dir))


def _write_case(case_dir: Path, case_id: str, case: SynthCase, naming: str, affine: np.ndarray) -> None:
    names = case_file_names(case_id, naming)
    case_dir.mkdir(parents=True, exist_ok=True)
    arrays = dict(case.images, seg=from_internal(case.classes, naming))
    for key, array in arrays.items():
        img = nib.Nifti1Image(array, affine)
        img.header.set_data_dtype(array.dtype)
        img.set_sform(affine, code=1)  # scanner coordinates, as BraTS files
        img.set_qform(affine, code=1)
        img.header.set_xyzt_units("mm", "sec")
        nib.save(img, case_dir / names[key])


def generate_case(out_dir: str | Path, case_id: str, seed: int | np.random.SeedSequence, *,
                  naming: str = "brats2021", shape=(240, 240, 155), spacing: float = 1.0,
                  affine=None, rng_params: Mapping[str, object] | None = None) -> Path:  # fmt: skip
    """Write one synthetic case as ``out_dir/<case_id>/`` in the BraTS layout; return that folder.

    ``affine`` replaces the default BraTS-like header geometry (voxel content is
    unchanged).  Raises FileExistsError if the case folder exists and is not empty.
    """
    case_file_names(case_id, naming)  # validate naming before the slow part
    header = None if affine is None else _check_affine(affine)
    case_dir = Path(out_dir) / case_id
    _refuse_overwrite(case_dir)
    case = synthesize(seed, shape=shape, spacing=spacing, rng_params=rng_params)
    _write_case(case_dir, case_id, case, naming, case.affine if header is None else header)
    return case_dir


def case_id_for(index: int, naming: str = "brats2021", prefix: str | None = None) -> str:
    """BraTS-style id of the ``index``-th case: BraTS2021_00000 or BraTS-GLI-00000-000."""
    if naming == "brats2023":
        return f"{prefix or 'BraTS-GLI'}-{index:05d}-000"
    case_file_names("x", naming)  # validates naming
    return f"{prefix or 'BraTS2021'}_{index:05d}"


def generate_cases(out_dir: str | Path, n: int, seed: int, *, naming: str = "brats2021",
                   shape=(240, 240, 155), spacing: float = 1.0, prefix: str | None = None,
                   progress: Callable[[int, int], None] | None = None) -> list[Path]:  # fmt: skip
    """Write ``n`` cases; case k uses the k-th spawned child of SeedSequence(seed), so it
    does not depend on ``n``.  ``progress(i, n)`` is called after each case (i from 1)."""
    if n < 0:
        raise ValueError(f"number of cases must be >= 0, got {n}")
    ids = [case_id_for(k, naming, prefix) for k in range(n)]
    for case_id in ids:  # fail before writing anything
        _refuse_overwrite(Path(out_dir) / case_id)
    children = np.random.SeedSequence(int(seed)).spawn(n)
    paths = []
    for k, (case_id, child) in enumerate(zip(ids, children)):
        paths.append(generate_case(out_dir, case_id, child, naming=naming, shape=shape, spacing=spacing))
        if progress is not None:
            progress(k + 1, n)
    return paths


_SAMPLE_README = """# Sample case (synthetic)

`{case_id}` is **synthetic**, not patient data: MNI152 anatomy (the templates
shipped with nilearn) with a simulated glioma, made by
`BrainTumorXAILib.synth` in the BraTS 2021 layout (labels 0, 1 NCR, 2 ED, 4 ET).

- grid: 'small' preset, {shape} voxels of {spacing:g} mm
- seed: {seed}
- regenerate (after deleting the `.nii.gz` files here):

      python -m BrainTumorXAILib.synth --sample Resources/SampleCase
"""


def write_sample_case(dest: str | Path, seed: int = SAMPLE_CASE_SEED) -> Path:
    """(Re)create the shipped sample case: files ``BraTS2021_Sample_*`` directly in ``dest``."""
    dest = Path(dest)
    existing = sorted(dest.glob("*.nii.gz")) if dest.is_dir() else []
    if existing:
        raise FileExistsError(errno.EEXIST, "refusing to overwrite the sample case", str(existing[0]))
    shape, spacing = SIZE_PRESETS["small"]
    case = synthesize(seed, shape=shape, spacing=spacing)
    _write_case(dest, SAMPLE_CASE_ID, case, "brats2021", case.affine)
    readme = _SAMPLE_README.format(case_id=SAMPLE_CASE_ID, shape="x".join(map(str, shape)), spacing=spacing, seed=seed)
    (dest / "README.md").write_text(readme, encoding="utf-8")
    return dest
