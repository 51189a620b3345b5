"""The network grid: a case's images reoriented, resampled, cropped and padded for the network, with an
exact inverse for its outputs.

``preprocess`` takes a case's images on their own grid and returns the network
input: optionally resampled to a target spacing, cropped around the brain,
zero-padded to a size the U-Net accepts, normalised inside the brain mask.
The returned :class:`PreprocessTransform` records every step so that any map
computed on the network grid is put back onto the case grid with ``invert``:
without resampling that is pure indexing, voxel for voxel.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from nibabel import orientations as nio

from .grid import mask_box, resample_to_grid, resampled_affine, same_grid, voxel_to_voxel
from .intensity import NORMALISATIONS, _as_channels, brain_mask, normalise

CROP_MODES = ("brain", "fixed", "none")

#: Axis order the network sees, whatever the header: BraTS's own (LPS), so that
#: BraTS data passes unchanged and a RAS, permuted or flipped file is turned
#: into the same array layout by exact axis flips/permutations (no interpolation).
NETWORK_AXCODES = ("L", "P", "S")


# --------------------------------------------------------------------------- the transform


def _ints(values) -> tuple[int, int, int]:
    return tuple(int(v) for v in values)


@dataclass
class PreprocessTransform:
    """Every geometric step between the input grid and the network grid.

    input grid --(flip/permute axes to NETWORK_AXCODES)--> reoriented grid
    --(resample to target_spacing, if any)--> resampled grid
    --(crop [crop_start, crop_stop))--> --(zero-pad pad_before/pad_after)--> network grid.
    ``resampled_affine`` refers to the reoriented (and resampled) grid.
    """

    input_shape: tuple[int, int, int]
    input_affine: np.ndarray
    target_spacing: tuple[float, float, float] | None
    resampled_shape: tuple[int, int, int]
    resampled_affine: np.ndarray
    crop_start: tuple[int, int, int]
    crop_stop: tuple[int, int, int]
    pad_before: tuple[int, int, int]
    pad_after: tuple[int, int, int]
    output_shape: tuple[int, int, int]
    method: str = "zscore"
    crop: str = "brain"
    reorient: bool = True

    def __post_init__(self) -> None:
        self.input_affine = np.asarray(self.input_affine, dtype=np.float64)
        self.resampled_affine = np.asarray(self.resampled_affine, dtype=np.float64)
        for name in ("input_shape", "resampled_shape", "crop_start", "crop_stop", "pad_before", "pad_after",
                     "output_shape"):
            setattr(self, name, _ints(getattr(self, name)))
        if self.target_spacing is not None:
            self.target_spacing = tuple(float(s) for s in self.target_spacing)

    def __eq__(self, other) -> bool:  # the generated __eq__ cannot compare numpy arrays
        return isinstance(other, PreprocessTransform) and self.to_dict() == other.to_dict()

    @property
    def _ornt(self) -> np.ndarray:
        """nibabel orientation transform input axes -> network axes (identity when not reorienting)."""
        if not self.reorient:
            return np.array([[0, 1], [1, 1], [2, 1]], dtype=float)
        return nio.ornt_transform(nio.io_orientation(self.input_affine), nio.axcodes2ornt(NETWORK_AXCODES))

    @property
    def reoriented_shape(self) -> tuple[int, int, int]:
        return _ints(np.array(self.input_shape)[np.argsort(self._ornt[:, 0])])

    @property
    def reoriented_affine(self) -> np.ndarray:
        return self.input_affine @ nio.inv_ornt_aff(self._ornt, self.input_shape)

    @property
    def resamples(self) -> bool:
        """Whether the network grid has a different spacing from the input grid."""
        return self.target_spacing is not None and not same_grid(
            self.reoriented_shape, self.reoriented_affine, self.resampled_shape, self.resampled_affine)

    def _reoriented(self, volume: np.ndarray) -> np.ndarray:
        return _apply_ornt(volume, self._ornt)

    def _unreoriented(self, volume: np.ndarray) -> np.ndarray:
        return _apply_ornt(volume, nio.ornt_transform(nio.axcodes2ornt(NETWORK_AXCODES), nio.io_orientation(
            self.input_affine)) if self.reorient else self._ornt)

    @property
    def network_affine(self) -> np.ndarray:
        """World position of each network voxel: network index v is resampled index v + start - pad."""
        shift = np.eye(4)
        shift[:3, 3] = np.subtract(self.crop_start, self.pad_before)
        return self.resampled_affine @ shift

    def _check(self, volume: np.ndarray, shape: tuple[int, int, int], what: str) -> np.ndarray:
        volume = np.asarray(volume)
        if volume.shape[-3:] != shape:
            raise ValueError(f"{what} volume has spatial shape {volume.shape[-3:]}, expected {shape}")
        return volume

    def to_resampled_grid(self, volume, order: int = 1, fill: float = 0.0) -> np.ndarray:
        """Input grid -> resampled grid (the same array when no target spacing applies)."""
        volume = self._reoriented(self._check(volume, self.input_shape, "input"))
        if not self.resamples:
            return volume
        return resample_to_grid(volume, self.reoriented_affine, self.resampled_shape, self.resampled_affine,
                                order=order, cval=fill)

    def crop_and_pad(self, volume, fill: float = 0.0) -> np.ndarray:
        """Resampled grid -> network grid: crop, then pad with ``fill``."""
        volume = self._check(volume, self.resampled_shape, "resampled")
        cropped = volume[(Ellipsis, *(slice(a, b) for a, b in zip(self.crop_start, self.crop_stop)))]
        pads = [(0, 0)] * (volume.ndim - 3) + list(zip(self.pad_before, self.pad_after))
        return np.pad(cropped, pads, mode="constant", constant_values=fill)

    def apply(self, volume, order: int = 1, fill: float = 0.0) -> np.ndarray:
        """Input grid (..., X, Y, Z) -> network grid (..., x, y, z); padding gets ``fill``."""
        return self.crop_and_pad(self.to_resampled_grid(volume, order, fill), fill)

    def invert(self, volume, order: int = 1, fill: float = 0.0) -> np.ndarray:
        """Network grid (..., x, y, z) -> input grid (..., X, Y, Z).

        Removes the padding, puts the crop back into a ``fill``-valued volume and,
        only if a target spacing was used, resamples back onto the input grid.
        """
        volume = self._check(volume, self.output_shape, "network")
        inner = tuple(slice(b, n - a) for b, a, n in zip(self.pad_before, self.pad_after, self.output_shape))
        out = np.full(volume.shape[:-3] + self.resampled_shape, fill, dtype=volume.dtype)
        out[(Ellipsis, *(slice(a, b) for a, b in zip(self.crop_start, self.crop_stop)))] = volume[(Ellipsis, *inner)]
        if self.resamples:
            out = resample_to_grid(out, self.resampled_affine, self.reoriented_shape, self.reoriented_affine,
                                   order=order, cval=fill)
        return np.ascontiguousarray(self._unreoriented(out))

    def to_dict(self) -> dict:
        """JSON-serialisable record (lists and plain numbers only)."""
        return {
            "input_shape": list(self.input_shape),
            "input_affine": self.input_affine.tolist(),
            "target_spacing": None if self.target_spacing is None else list(self.target_spacing),
            "resampled_shape": list(self.resampled_shape),
            "resampled_affine": self.resampled_affine.tolist(),
            "crop_start": list(self.crop_start),
            "crop_stop": list(self.crop_stop),
            "pad_before": list(self.pad_before),
            "pad_after": list(self.pad_after),
            "output_shape": list(self.output_shape),
            "method": self.method,
            "crop": self.crop,
            "reorient": self.reorient,
        }

    @classmethod
    def from_dict(cls, data: dict) -> PreprocessTransform:
        return cls(**data)


def _apply_ornt(volume: np.ndarray, ornt: np.ndarray) -> np.ndarray:
    """nibabel's apply_orientation on the last three axes (leading channel axes allowed)."""
    lead = volume.ndim - 3
    moved = np.moveaxis(volume, list(range(lead)), list(range(3, 3 + lead))) if lead else volume
    out = nio.apply_orientation(moved, ornt)
    return np.moveaxis(out, list(range(3, 3 + lead)), list(range(lead))) if lead else out


# --------------------------------------------------------------------------- preprocess


def _spacing_triple(spacing) -> tuple[float, float, float] | None:
    if spacing is None:
        return None
    values = np.broadcast_to(np.asarray(spacing, dtype=np.float64), (3,))
    if not np.all(np.isfinite(values)) or np.any(values <= 0):
        raise ValueError(f"spacing must be positive millimetres, got {spacing!r}")
    return tuple(float(v) for v in values)


def _bounding_box(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """[start, stop) of the mask's non-zero voxels per axis."""
    box = mask_box(mask)
    if box is None:
        raise ValueError("the brain mask is empty: no brain to crop around")
    return np.array([b.start for b in box]), np.array([b.stop for b in box])


def _crop_box(mask: np.ndarray, crop: str, window: int, margin: int) -> tuple[np.ndarray, ...]:
    """(crop_start, crop_stop, pad_before, pad_after) before rounding up to ``multiple_of``."""
    shape = np.array(mask.shape)
    zeros = np.zeros(3, dtype=np.int64)
    if crop == "none":
        return zeros, shape, zeros, zeros
    lo, hi = _bounding_box(mask)
    if crop == "brain":
        return np.maximum(lo - margin, 0), np.minimum(hi + margin, shape), zeros, zeros
    # 'fixed': a window^3 box centred on the brain box; the part outside the volume is padding.
    start = (lo + hi) // 2 - window // 2
    stop = start + window
    crop_start, crop_stop = np.clip(start, 0, shape), np.clip(stop, 0, shape)
    return crop_start, crop_stop, crop_start - start, stop - crop_stop


def _round_up_padding(size: np.ndarray, multiple_of: int, minimum: int) -> tuple[np.ndarray, np.ndarray]:
    """Extra (before, after) padding so that each size is a multiple of ``multiple_of`` and >= ``minimum``."""
    m = max(1, int(multiple_of))
    target = np.maximum(size, minimum)
    target = -(-target // m) * m
    extra = target - size
    return extra // 2, extra - extra // 2


def preprocess(images, affine, *, method: str = "zscore", crop: str = "brain", window: int = 128, spacing=None,
               margin: int = 4, multiple_of: int = 16, mask=None, reorient: bool = True) -> tuple[np.ndarray, np.ndarray, PreprocessTransform]:
    """Images (C, X, Y, Z) on the grid ``affine`` -> (network input, network brain mask, transform).

    Steps: flip/permute axes to ``NETWORK_AXCODES`` (exact; ``reorient=False`` keeps the
    stored axis order) -> resample to ``spacing`` mm (trilinear; None keeps the native grid) ->
    crop ('brain': brain box + ``margin`` voxels; 'fixed': a ``window``^3 box on the
    brain box centre; 'none') -> zero-pad each size to a multiple of ``multiple_of``
    (and to at least ``window`` for 'fixed') -> normalise inside the brain mask.
    ``mask`` defaults to :func:`brain_mask` of the images.
    """
    if crop not in CROP_MODES:
        raise ValueError(f"unknown crop {crop!r}; expected one of {', '.join(CROP_MODES)}")
    if method not in NORMALISATIONS:
        raise ValueError(f"unknown normalisation {method!r}; expected one of {', '.join(NORMALISATIONS)}")
    images = _as_channels(images)
    affine = np.asarray(affine, dtype=np.float64)
    mask = brain_mask(images) if mask is None else np.asarray(mask, dtype=bool)
    if mask.shape != images.shape[1:]:
        raise ValueError(f"mask shape {mask.shape} does not match images {images.shape[1:]}")
    target = _spacing_triple(spacing)
    oriented = PreprocessTransform(images.shape[1:], affine, None, images.shape[1:], affine, (0, 0, 0),
                                   images.shape[1:], (0, 0, 0), (0, 0, 0), images.shape[1:], method, crop, reorient)
    or_affine, or_shape = oriented.reoriented_affine, oriented.reoriented_shape
    if target is None:
        res_affine, res_shape = or_affine, or_shape
    else:
        res_affine, res_shape = resampled_affine(or_affine, or_shape, target)
    partial = PreprocessTransform(images.shape[1:], affine, target, res_shape, res_affine, (0, 0, 0), res_shape,
                                  (0, 0, 0), (0, 0, 0), res_shape, method, crop, reorient)
    # Resample once; the crop box is chosen on the resampled grid.
    res_images = partial.to_resampled_grid(images.astype(np.float32, copy=False), order=1)
    res_mask = partial.to_resampled_grid(mask.astype(np.uint8), order=0).astype(bool)
    start, stop, before, after = _crop_box(res_mask, crop, int(window), int(margin))
    more_before, more_after = _round_up_padding(stop - start + before + after, multiple_of,
                                                int(window) if crop == "fixed" else 0)
    before, after = before + more_before, after + more_after
    transform = PreprocessTransform(images.shape[1:], affine, target, res_shape, res_affine, start, stop, before,
                                    after, stop - start + before + after, method, crop, reorient)
    net_mask = transform.crop_and_pad(res_mask, fill=False)
    net_images = transform.crop_and_pad(res_images)
    return normalise(net_images, net_mask, method), net_mask, transform


def invert_stack(transform, volumes, fills) -> np.ndarray:
    """``transform.invert(v, order=1, fill=f)`` for each volume, stacked (float32).

    When the network grid is an axis-aligned scaling of the input grid (always,
    after reorientation) trilinear interpolation is separable: three 1D linear
    interpolations, each a (destination x source) matrix product in torch (all
    cores), instead of one scipy ``affine_transform`` per map.  Only the output box whose
    interpolation taps reach the network crop is computed; the rest is ``fill``.
    Same values (scipy's order 1, mode 'nearest', cval outside the half-voxel
    margin) up to float rounding; anything else takes ``transform.invert``.
    """
    volumes = [np.asarray(v, np.float32) for v in volumes]
    if not volumes:
        return np.zeros((0, *transform.input_shape), np.float32)
    if not transform.resamples:
        return np.stack([transform.invert(v, order=1, fill=f) for v, f in zip(volumes, fills)]).astype(np.float32)
    matrix = voxel_to_voxel(transform.resampled_affine, transform.reoriented_affine)
    if np.abs(matrix[:3, :3] - np.diag(np.diag(matrix[:3, :3]))).max() > 1e-9:
        return np.stack([transform.invert(v, order=1, fill=f) for v, f in zip(volumes, fills)]).astype(np.float32)
    plan = [_axis_taps(matrix[a, a], matrix[a, 3], transform.resampled_shape[a], transform.reoriented_shape[a],
                       transform.crop_start[a], transform.crop_stop[a]) for a in range(3)]
    inner = tuple(slice(b, n - a) for b, a, n in zip(transform.pad_before, transform.pad_after, transform.output_shape))
    # The interpolation matrices depend on the grids only: built once for every map.
    weights = None if any(p is None for p in plan) else [p.matrix() for p in plan]
    out = _plain_pages_empty((len(volumes), *transform.input_shape))
    for ch, (volume, fill) in enumerate(zip(volumes, fills)):
        # A view of out[ch] in the network's axis order (flips/permutations are views): written in place.
        target = transform._reoriented(out[ch])
        if not np.shares_memory(target, out[ch]):
            target = np.empty(transform.reoriented_shape, np.float32)
        target.fill(float(fill))
        if weights is not None:
            target[tuple(p.rows for p in plan)] = _interpolate_box(volume[inner], plan, weights, float(fill))
        if not np.shares_memory(target, out[ch]):
            out[ch] = transform._unreoriented(target)
    return out


def _plain_pages_empty(shape) -> np.ndarray:
    """An uninitialised float32 array in memory that numpy has not advised for transparent huge pages
    (torch's allocator does not advise).  The maps back on the case grid are large for a real-size case;
    touched first as huge pages they are slow where the kernel must compact memory to get them."""
    return torch.empty(tuple(int(n) for n in shape), dtype=torch.float32).numpy()


@dataclass
class _AxisTaps:
    """Linear interpolation along one axis, for the output rows whose taps reach the crop."""

    rows: slice  # output rows computed (all others are the fill value)
    src: tuple[int, int]  # source rows [lo, hi) those taps read
    crop: tuple[int, int]  # the crop [start, stop) in source rows
    lo: np.ndarray  # first tap, relative to src[0]
    hi: np.ndarray  # second tap, relative to src[0]
    weight: np.ndarray  # weight of the second tap

    def matrix(self):
        """(output rows x source rows) float32 interpolation matrix, as a torch tensor."""
        w = np.zeros((self.lo.size, self.src[1] - self.src[0]), np.float64)
        rows = np.arange(self.lo.size)
        np.add.at(w, (rows, self.lo), 1.0 - self.weight)
        np.add.at(w, (rows, self.hi), self.weight)
        return torch.from_numpy(w.astype(np.float32))


def _axis_taps(scale: float, offset: float, n_src: int, n_dst: int, crop_start: int, crop_stop: int):
    """``_AxisTaps`` of destination voxel d sampling source coordinate scale * d + offset (None: no row
    reaches the crop).  Coordinates beyond half a voxel outside the source are fill; within it, the edge
    value (scipy's mode 'nearest'), as ``resample_to_grid``."""
    c = scale * np.arange(n_dst, dtype=np.float64) + offset
    inside = (c >= -0.5 - 1e-6) & (c <= n_src - 0.5 + 1e-6)
    c = np.clip(c, 0.0, n_src - 1)
    i0 = np.minimum(np.floor(c).astype(np.int64), max(n_src - 2, 0))
    i1 = np.minimum(i0 + 1, n_src - 1)
    reach = inside & (((i0 >= crop_start) & (i0 < crop_stop)) | ((i1 >= crop_start) & (i1 < crop_stop)))
    rows = np.flatnonzero(reach)
    if rows.size == 0:
        return None
    rows = slice(int(rows[0]), int(rows[-1]) + 1)  # c is monotone: the rows reaching the crop are contiguous
    i0, i1, w = i0[rows], i1[rows], c[rows] - i0[rows]
    lo, hi = int(i0.min()), int(i1.max()) + 1
    return _AxisTaps(rows, (lo, hi), (crop_start, crop_stop), i0 - lo, i1 - lo, w)


def _interpolate_box(cropped: np.ndarray, plan, weights, fill: float) -> np.ndarray:
    """The network crop (fill around it) interpolated onto the output rows of ``plan``, axis by axis."""
    src = torch.full(tuple(p.src[1] - p.src[0] for p in plan), fill, dtype=torch.float32)
    # The crop rows the taps read (all of them when upsampling; a coarser output may skip some).
    used = [(max(p.crop[0], p.src[0]), min(p.crop[1], p.src[1])) for p in plan]
    src[tuple(slice(a - p.src[0], b - p.src[0]) for (a, b), p in zip(used, plan))] = torch.from_numpy(
        np.ascontiguousarray(cropped[tuple(slice(a - p.crop[0], b - p.crop[0]) for (a, b), p in zip(used, plan))]))
    # Linear interpolation along an axis is a (destination x source) matrix with two weights a row
    # (``weights``): a matrix product (BLAS) beats two gathers and a lerp.
    grid = torch.einsum("ia,abc->ibc", weights[0], src)
    grid = torch.einsum("jb,ibc->ijc", weights[1], grid)
    grid = torch.einsum("ibc,kc->ibk", grid, weights[2])
    return grid.numpy()
