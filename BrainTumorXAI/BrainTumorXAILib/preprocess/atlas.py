"""The atlas the model's training data lives in, and the rigid registration of the brain-extracted T1ce onto it.

``sri24``: the SRI24 T1 brain template on the BraTS grid (240 x 240 x 155, 1 mm), shipped in
``Resources/Atlas/SRI24`` (CC BY-SA 3.0, Rohlfing et al. 2010; licence and citation beside it).
``mni152``: nilearn's MNI152 2009 template (1 mm) and brain mask.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import nibabel as nib
import numpy as np
import SimpleITK as sitk

from ..errors import BrainTumorXAIError
from ..resources import resources_dir
from .coregister import RigidResult, register_rigid
from .sitk_images import to_sitk

SRI24_DIR = "Atlas/SRI24"
#: Iterations per level of the atlas registration: its metric, sampled at random over a brain against a template,
#: keeps the optimiser stepping long after the pose stopped changing.
ATLAS_ITERATIONS = 80


@dataclass
class Atlas:
    name: str
    template: sitk.Image  # T1, brain only, zero outside; its grid is the analysis grid
    mask: sitk.Image  # uint8 brain mask on the same grid
    affine: np.ndarray  # the grid's RAS affine (for the atlas-space case)

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(int(n) for n in self.template.GetSize())


def _from_nibabel(name: str, template, mask) -> Atlas:
    t = np.asarray(template.dataobj, np.float32).reshape(template.shape[:3])
    m = (np.asarray(mask.dataobj).reshape(mask.shape[:3]) > 0).astype(np.uint8)
    return Atlas(name, to_sitk(t * m, template.affine), to_sitk(m, mask.affine, sitk.sitkUInt8),
                 np.asarray(template.affine, np.float64))


def load_atlas(name: str = "sri24") -> Atlas:
    if name == "sri24":
        folder = resources_dir() / SRI24_DIR
        template, mask = folder / "sri24_t1_brain.nii.gz", folder / "sri24_brain_mask.nii.gz"
        if not template.is_file():
            raise BrainTumorXAIError(f"{template}: the SRI24 atlas is not installed (reinstall braintumorxai)")
        return _from_nibabel(name, nib.load(str(template)), nib.load(str(mask)))
    if name == "mni152":
        from nilearn.datasets import load_mni152_brain_mask, load_mni152_template

        return _from_nibabel(name, load_mni152_template(resolution=1), load_mni152_brain_mask(resolution=1))
    raise BrainTumorXAIError(f"unknown atlas {name!r} (sri24, mni152)")


def register_to_atlas(t1ce_brain: sitk.Image, brain: sitk.Image, atlas: Atlas, seed: int = 1) -> RigidResult:
    """Rigid transform atlas point -> native T1ce point, the template registered onto the brain-extracted T1ce.

    The native brain is the fixed image (a few times fewer voxels than the 1 mm atlas grid, and only its ``brain``
    mask is sampled); the rigid result is inverted exactly.  The start aligns the two brains' centres of mass (the
    scanner's and the atlas's coordinates differ by tens of centimetres); rotation starts from the scanner's axes.
    """
    fixed = sitk.Cast(t1ce_brain, sitk.sitkFloat32)
    template = _brain_box(atlas)
    start = sitk.CenteredTransformInitializer(fixed, template, sitk.Euler3DTransform(),
                                              sitk.CenteredTransformInitializerFilter.MOMENTS)
    found = register_rigid(fixed, template, initial=start, fixed_mask=brain, seed=seed,
                           iterations=ATLAS_ITERATIONS)
    inverse = sitk.Euler3DTransform()
    inverse.SetCenter(found.transform.GetCenter())
    rotation = np.asarray(found.transform.GetMatrix()).reshape(3, 3)
    inverse.SetMatrix(rotation.T.ravel().tolist())
    # x = R^-1 (y - c - t) + c for y = R (x - c) + c + t: about the same centre the translation is -R^-1 t.
    inverse.SetTranslation((-rotation.T @ np.asarray(found.transform.GetTranslation())).tolist())
    return dataclasses.replace(found, transform=inverse)


def _brain_box(atlas: Atlas, margin: int = 12) -> sitk.Image:
    """The template cropped to its brain and a margin (same physical space): ITK filters the whole moving image
    at every pyramid level, and two thirds of the atlas grid are empty."""
    stats = sitk.LabelShapeStatisticsImageFilter()
    stats.Execute(atlas.mask)
    x, y, z, sx, sy, sz = stats.GetBoundingBox(1)
    size = np.asarray(atlas.template.GetSize())
    lo = np.maximum(np.asarray((x, y, z)) - margin, 0)
    hi = np.minimum(np.asarray((x + sx, y + sy, z + sz)) + margin, size)
    return sitk.RegionOfInterest(atlas.template, (hi - lo).tolist(), lo.tolist())
