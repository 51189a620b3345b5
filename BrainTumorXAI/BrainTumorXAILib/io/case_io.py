"""BraTS case folders: loading and validating a case (its files are found by ``case_files``, results are
written by ``nifti_writer``).

A case is one folder with the four MR sequences (and optionally the label map)
in a BraTS naming or any names given by an explicit mapping.  Everything is loaded onto
the grid of one reference sequence; sequences on other grids are resampled
explicitly and reported.  Every problem raises :class:`CaseError` naming the
file.  Input files are only ever read.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import nibabel as nib
import numpy as np

from ..errors import CaseError
from ..runtime import usable_cpus
from .case_files import LABEL_KEY, scan_case
from .grid import grids_overlap, resample_to_grid, same_grid, voxel_spacing
from .labels import CLASS_NAMES, CONVENTIONS, SEQUENCES, detect_label_convention, to_internal
from .nifti_header import nifti_orientation_problem

# Largest affine difference (mm) still counted as the same grid.
_GRID_TOL = 1e-4

#: Threads reading the files of a case (None: one per usable CPU, at most one per file).
LOAD_WORKERS: int | None = None


# --------------------------------------------------------------------------- the case


@dataclass
class Case:
    """One loaded case, every array on the reference sequence's grid."""

    case_id: str
    folder: Path
    naming: str
    files: dict[str, Path]
    images: np.ndarray
    affine: np.ndarray
    reference: str
    header: object
    label: np.ndarray | None = None
    label_convention: str = "brats2021"
    resampled: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)  # absent optional sequences (zero channels)

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(int(n) for n in self.images.shape[1:])

    @property
    def spacing(self) -> tuple[float, float, float]:
        return tuple(float(s) for s in voxel_spacing(self.affine))

    def summary(self) -> dict:
        """JSON-serialisable description of the case."""
        counts = None
        if self.label is not None:
            hist = np.bincount(self.label.ravel(), minlength=len(CLASS_NAMES))
            counts = {name: int(hist[i]) for i, name in enumerate(CLASS_NAMES)}
        return {
            "id": self.case_id,
            "folder": str(self.folder),
            "naming": self.naming,
            "files": {k: str(v) for k, v in self.files.items()},
            "reference": self.reference,
            "shape": list(self.shape),
            "spacing": list(self.spacing),
            "affine": self.affine.tolist(),
            "orientation": "".join(nib.aff2axcodes(self.affine)),
            "label_convention": self.label_convention,
            "resampled": list(self.resampled),
            "missing_sequences": list(self.missing),
            "has_label": self.label is not None,
            "label_voxels": counts,
        }


# --------------------------------------------------------------------------- one-line messages

#: How many distinct values an error message lists before it says how many more there are.
_MAX_LISTED = 8


def _one_line(text) -> str:
    """``text`` with every run of whitespace (newlines included) collapsed to one space."""
    return " ".join(str(text).split())


def _format_affine(affine) -> str:
    """A 4x4 affine on one line: rows in brackets, numbers in %g."""
    rows = np.asarray(affine, dtype=np.float64).reshape(-1, 4)
    return "[" + ", ".join("[" + " ".join(f"{v:g}" for v in row) + "]" for row in rows) + "]"


def _format_values(values, limit: int = _MAX_LISTED) -> str:
    """At most ``limit`` values in %g, then an ellipsis and how many were left out."""
    values = list(values)
    shown = ", ".join(f"{v:g}" for v in values[:limit])
    if len(values) > limit:
        shown += f", … ({len(values) - limit} more)"
    return shown


# --------------------------------------------------------------------------- reading volumes


def _read_nifti(path, contiguous: bool = True) -> tuple[np.ndarray, np.ndarray, object]:
    """Data (float32, 3D), affine and header of a NIfTI file, structurally validated.

    ``contiguous=False`` leaves the data in the file's (Fortran) order, for a caller that copies it anyway.
    """
    path = Path(path)
    if not path.is_file():
        raise CaseError(path, "file not found")
    try:
        img = nib.load(str(path))
        if not isinstance(img, (nib.Nifti1Image, nib.Nifti2Image)):
            raise CaseError(path, f"not a NIfTI image (nibabel reads it as {type(img).__name__})")
        shape = img.shape
        while len(shape) > 3 and shape[-1] == 1:  # trailing singleton dimensions are harmless
            shape = shape[:-1]
        if len(shape) != 3:
            raise CaseError(path, f"{len(shape)}D image of shape {img.shape}; expected a single 3D volume")
        _check_orientation(path)
        data = np.asarray(img.dataobj, dtype=np.float32).reshape(shape)
    except CaseError:
        raise
    except MemoryError:
        raise
    except Exception as exc:  # nibabel, gzip and zlib raise many types for damaged files
        raise CaseError(path, f"cannot read as NIfTI ({type(exc).__name__}: {_one_line(exc)})") from exc
    affine = np.asarray(img.affine, dtype=np.float64)
    if not np.all(np.isfinite(affine)) or abs(np.linalg.det(affine[:3, :3])) < 1e-12:
        raise CaseError(path, f"singular or non-finite affine (voxel-to-world matrix {_format_affine(affine)})")
    bad_nan, bad_inf = int(np.isnan(data).sum()), int(np.isinf(data).sum())
    if bad_nan or bad_inf:
        raise CaseError(path, f"contains {bad_nan} NaN and {bad_inf} infinite values")
    return (np.ascontiguousarray(data) if contiguous else data), affine, img.header


def _check_orientation(path: Path) -> None:
    """Refuse an image without a valid orientation: qform and sform codes 0 and a zero voxel size
    (nibabel would replace the zero size by 1 and the analysis would run on made-up geometry)."""
    problem = nifti_orientation_problem(path)
    if problem:
        raise CaseError(path, problem)


def load_volume(path, contiguous: bool = True) -> tuple[np.ndarray, np.ndarray, object]:
    """(float32 3D array, 4x4 affine, header) of one image; CaseError when it is unusable."""
    data, affine, header = _read_nifti(path, contiguous)
    if not data.any():
        raise CaseError(path, "empty volume (every voxel is 0)")
    if data.max() == data.min():
        raise CaseError(path, f"constant volume (every voxel is {data.flat[0]:g})")
    return data, affine, header


def _onto_reference(path: Path, data, affine, ref_shape, ref_affine, order: int) -> tuple[np.ndarray, bool]:
    """``data`` on the reference grid, and whether it had to be resampled."""
    if same_grid(data.shape, affine, ref_shape, ref_affine, _GRID_TOL):
        return data, False
    if not grids_overlap(data.shape, affine, ref_shape, ref_affine):
        raise CaseError(path, "does not overlap the reference image in world space; cannot resample it "
                              f"(shape {data.shape}, affine {_format_affine(affine)})")
    out = resample_to_grid(data, affine, ref_shape, ref_affine, order=order, cval=0.0)
    if order > 0 and not out.any():
        raise CaseError(path, "nothing of this image lands on the reference grid after resampling")
    return out, True


def _label_convention(path: Path, values: np.ndarray, naming: str) -> str:
    """The convention the label values fit; the file naming decides when the values do not."""
    unique = np.unique(values)
    convention = detect_label_convention(unique) if np.all(unique == np.round(unique)) else None
    if convention is None:
        odd = unique[~np.isin(unique, (0, 1, 2, 3, 4))]
        unexpected = _format_values(odd) if odd.size else "both 3 and 4"
        raise CaseError(path, f"label values fit no BraTS convention: unexpected {unexpected} "
                              f"(found {unique.size} distinct values: {_format_values(unique)}; expected "
                              f"{', '.join(f'{n} {set(t)}' for n, t in CONVENTIONS.items())})")
    if convention == "ambiguous":
        return "brats2023" if naming == "brats2023" else "brats2021"
    return convention


def _load_label(path: Path, naming: str, ref_shape, ref_affine, read=None) -> tuple[np.ndarray, str, bool]:
    data, affine, _ = read or _read_nifti(path, contiguous=False)
    convention = _label_convention(path, data, naming)
    data, resampled = _onto_reference(path, data, affine, ref_shape, ref_affine, order=0)
    return np.ascontiguousarray(to_internal(data.astype(np.uint8), convention)), convention, resampled


def load_case(path, mapping: dict | None = None, reference: str = "t1ce", load_label: bool = True,
              optional: tuple[str, ...] = ()) -> Case:
    """Load and validate a case folder; all volumes on the ``reference`` sequence's grid.

    Sequences in ``optional`` may be absent: their channel is all zeros and ``Case.missing`` names them.
    """
    if reference not in SEQUENCES:
        raise ValueError(f"unknown reference sequence {reference!r}; expected one of {', '.join(SEQUENCES)}")
    if reference in optional:
        raise ValueError(f"the reference sequence {reference!r} cannot be optional")
    found = scan_case(path, mapping, optional)
    # Every file is read and checked in a thread of its own (gzip inflation and numpy's casts release the
    # GIL); the results are taken in the serial order, so the first bad file in that order is the one named.
    # The file's Fortran-ordered data is copied once, into the stack.
    order = [reference] + [seq for seq in SEQUENCES if seq in found.files and seq != reference]
    with_label = load_label and LABEL_KEY in found.files
    with ThreadPoolExecutor(max_workers=LOAD_WORKERS or max(1, min(usable_cpus(), len(order) + with_label)),
                            thread_name_prefix="load-case") as pool:
        reads = {seq: pool.submit(load_volume, found.files[seq], False) for seq in order}
        if with_label:
            reads[LABEL_KEY] = pool.submit(_read_nifti, found.files[LABEL_KEY], False)
        ref_data, ref_affine, header = reads[reference].result()
        images = np.zeros((len(SEQUENCES),) + ref_data.shape, dtype=np.float32)
        resampled = []
        missing = [seq for seq in SEQUENCES if seq not in found.files]
        for c, seq in enumerate(SEQUENCES):
            if seq == reference:
                images[c] = ref_data
                continue
            if seq in missing:
                continue
            data, affine, _ = reads[seq].result()
            images[c], moved = _onto_reference(found.files[seq], data, affine, ref_data.shape, ref_affine, order=1)
            if moved:
                resampled.append(seq)
        label_read = reads[LABEL_KEY].result() if with_label else None
    label = None
    convention = "brats2023" if found.naming == "brats2023" else "brats2021"
    if with_label:
        label, convention, moved = _load_label(found.files[LABEL_KEY], found.naming, ref_data.shape, ref_affine,
                                               label_read)
        if moved:
            resampled.append(LABEL_KEY)
    return Case(case_id=found.case_id, folder=Path(path), naming=found.naming, files=found.files, images=images,
                affine=ref_affine, reference=reference, header=header, label=label,
                label_convention=convention, resampled=resampled, missing=missing)
