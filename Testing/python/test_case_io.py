"""Case folders: naming detection, validation errors, resampling onto the reference, label I/O."""

from __future__ import annotations

import gzip
import json

import nibabel as nib
import numpy as np
import pytest
from BrainTumorXAILib.io import grid
from BrainTumorXAILib.io.case_files import find_case_files, list_cases, scan_case
from BrainTumorXAILib.io.case_io import load_case, load_volume
from BrainTumorXAILib.io.nifti_writer import save_label_map, save_volume
from BrainTumorXAILib.errors import CaseError
from BrainTumorXAILib.io.labels import CONVENTIONS, SEQUENCES
from nifti_factory import (case_files, folder_hashes, lps_affine, make_case, oblique_affine, phantom,
                           world_coordinates, world_ramp, write_nifti)
from scipy import ndimage

ID21, ID23 = "BraTS2021_00007", "BraTS-GLI-00007-000"


@pytest.fixture(autouse=True)
def case_errors_are_one_line(monkeypatch):
    """Every CaseError raised in these tests must be one line: the CLI prints it as the whole diagnosis."""
    original = CaseError.__init__

    def checked(self, path, problem):
        original(self, path, problem)
        assert "\n" not in str(self) and "\r" not in str(self), f"multi-line CaseError: {str(self)!r}"

    monkeypatch.setattr(CaseError, "__init__", checked)


# --------------------------------------------------------------------------- naming


@pytest.mark.parametrize("naming,case_id", [("brats2021", ID21), ("brats2023", ID23)])
@pytest.mark.parametrize("ext", [".nii.gz", ".nii"])
def test_naming_detection(tmp_path, naming, case_id, ext):
    folder = make_case(tmp_path, case_id, naming, ext=ext)
    found = scan_case(folder)
    assert (found.case_id, found.naming) == (case_id, naming)
    assert set(found.files) == {*SEQUENCES, "seg"}
    names = case_files(case_id, naming, ext)
    assert all(found.files[k].name == names[k] for k in found.files)
    assert find_case_files(folder) == (case_id, found.files)


def test_seg_is_optional(tmp_path):
    folder = make_case(tmp_path, ID21, with_seg=False)
    case = load_case(folder)
    assert "seg" not in case.files and case.label is None and case.label_convention == "brats2021"
    case = load_case(make_case(tmp_path, ID23, "brats2023", with_seg=False))
    assert case.label_convention == "brats2023"


def test_explicit_mapping(tmp_path):
    images, classes = phantom()
    folder = tmp_path / "custom"
    mapping = {}
    for seq in SEQUENCES:
        write_nifti(folder / f"patient12_{seq.upper()}.nii", images[seq], lps_affine())
        mapping[seq] = f"patient12_{seq.upper()}.nii"
    write_nifti(tmp_path / "elsewhere" / "mask.nii.gz", classes * 1, lps_affine(), dtype=np.uint8)  # values 0..3
    mapping["seg"] = str(tmp_path / "elsewhere" / "mask.nii.gz")  # absolute path also works
    case = load_case(folder, mapping=mapping)
    assert case.naming == "explicit" and case.case_id == "patient12"
    assert case.label_convention == "brats2023"  # the values (3 present) decide
    np.testing.assert_array_equal(case.images[SEQUENCES.index("t2")], images["t2"])


def test_explicit_mapping_errors(tmp_path):
    folder = make_case(tmp_path, ID21)
    with pytest.raises(CaseError, match="flair"):
        find_case_files(folder, {s: case_files(ID21, "brats2021")[s] for s in ("t1", "t1ce", "t2")})
    mapping = dict(case_files(ID21, "brats2021"), t2="nope_t2.nii.gz")
    with pytest.raises(CaseError, match="nope_t2.nii.gz"):
        find_case_files(folder, mapping)


def test_missing_sequence_names_expected_file(tmp_path):
    folder = make_case(tmp_path, ID21, replace={"t2": None})
    with pytest.raises(CaseError) as err:
        find_case_files(folder)
    assert "t2" in str(err.value) and f"{ID21}_t2.nii.gz" in str(err.value)


def test_missing_folder_and_not_a_folder(tmp_path):
    with pytest.raises(CaseError, match="does not exist"):
        load_case(tmp_path / "nothing")
    (tmp_path / "file.txt").write_text("x")
    with pytest.raises(CaseError, match="not a folder"):
        load_case(tmp_path / "file.txt")
    (tmp_path / "empty").mkdir()
    with pytest.raises(CaseError, match="no BraTS image files"):
        load_case(tmp_path / "empty")


def test_duplicate_candidates(tmp_path):
    folder = make_case(tmp_path, ID21)
    images, _ = phantom()
    write_nifti(folder / f"{ID21}_flair.nii", images["flair"], lps_affine())
    with pytest.raises(CaseError) as err:
        find_case_files(folder)
    assert f"{ID21}_flair.nii.gz" in str(err.value) and f"{ID21}_flair.nii," in str(err.value) + ","


def test_mixed_conventions(tmp_path):
    folder = make_case(tmp_path, ID21)
    images, _ = phantom()
    write_nifti(folder / f"{ID21}-t2f.nii.gz", images["flair"], lps_affine())
    with pytest.raises(CaseError, match="mixed naming") as err:
        find_case_files(folder)
    assert f"{ID21}-t2f.nii.gz" in str(err.value)


def test_list_cases(tmp_path):
    a = make_case(tmp_path, "BraTS2021_00002")
    b = make_case(tmp_path, ID23, "brats2023")
    (tmp_path / "notes").mkdir()
    assert list_cases(tmp_path) == sorted([a, b])
    assert list_cases(a) == [a]


# --------------------------------------------------------------------------- volume validation


def _volume_error(tmp_path, name, array=None, raw: bytes | None = None) -> str:
    path = tmp_path / name
    if raw is not None:
        path.write_bytes(raw)
    else:
        write_nifti(path, array, lps_affine())
    with pytest.raises(CaseError) as err:
        load_volume(path)
    assert name in str(err.value)
    return str(err.value)


def test_volume_errors(tmp_path):
    good = phantom()[0]["t1"].astype(np.float32)
    assert "4D" in _volume_error(tmp_path, "four_d.nii.gz", np.stack([good, good], axis=-1))
    nan = good.copy()
    nan[3, 3, 3] = np.nan
    assert "NaN" in _volume_error(tmp_path, "nan.nii.gz", nan)
    inf = good.copy()
    inf[4, 4, 4] = np.inf
    assert "infinite" in _volume_error(tmp_path, "inf.nii.gz", inf)
    assert "empty" in _volume_error(tmp_path, "zeros.nii.gz", np.zeros((8, 8, 8), np.float32))
    assert "constant" in _volume_error(tmp_path, "const.nii.gz", np.full((8, 8, 8), 5, np.int16))
    with pytest.raises(CaseError, match="absent.nii.gz.*not found"):
        load_volume(tmp_path / "absent.nii.gz")
    full = gzip.compress(nib.Nifti1Image(good, lps_affine()).to_bytes())
    assert "cannot read" in _volume_error(tmp_path, "truncated.nii.gz", raw=full[: len(full) // 2])
    assert "cannot read" in _volume_error(tmp_path, "text.nii.gz", raw=b"this is not an image\n" * 50)
    assert "cannot read" in _volume_error(tmp_path, "text.nii", raw=b"this is not an image\n" * 50)


def test_singular_affine(tmp_path):
    path = tmp_path / "flat.nii.gz"
    img = nib.Nifti1Image(phantom()[0]["t1"], None)
    img.header.set_sform(np.diag([1.0, 1.0, 0.0, 1.0]), code=1)  # a zero column: no 3D grid
    nib.save(img, path)
    with pytest.raises(CaseError, match="flat.nii.gz.*affine") as err:
        load_volume(path)
    assert "\n" not in str(err.value) and "[[1 0 0 0], [0 1 0 0], [0 0 0 0], [0 0 0 1]]" in str(err.value)


def test_trailing_singleton_dims_are_squeezed(tmp_path):
    good = phantom()[0]["t1"]
    path = write_nifti(tmp_path / "x.nii.gz", good[..., None, None], lps_affine())
    data, affine, _ = load_volume(path)
    assert data.shape == good.shape and data.dtype == np.float32
    np.testing.assert_array_equal(affine, lps_affine())


def test_bad_sequence_in_case_names_file(tmp_path):
    folder = make_case(tmp_path, ID21, replace={"t2": (np.zeros((20, 22, 18), np.int16), None)})
    with pytest.raises(CaseError, match=f"{ID21}_t2.nii.gz.*empty"):
        load_case(folder)


def test_inputs_never_modified(tmp_path):
    folder = make_case(tmp_path, ID21, replace={"flair": (phantom((10, 11, 9))[0]["flair"], lps_affine((2, 2, 2)))})
    before = folder_hashes(folder)
    case = load_case(folder)
    save_label_map(case.label, case, tmp_path / "out" / "seg.nii.gz")
    assert folder_hashes(folder) == before


# --------------------------------------------------------------------------- grids and resampling


def test_resamples_coarser_flair_consistently_in_world(tmp_path):
    ref_affine = lps_affine((1.0, 1.0, 1.0))
    shape = (20, 22, 18)
    # FLAIR on a 2x coarser grid covering the same extent, plus a shift of 0.3 mm.
    coarse_affine, coarse_shape = grid.resampled_affine(ref_affine, shape, 2.0)
    coarse_affine[:3, 3] += (0.3, -0.2, 0.1)
    flair = world_ramp(coarse_shape, coarse_affine)
    folder = make_case(tmp_path, ID21, affine=ref_affine, replace={"flair": (flair, coarse_affine)})
    case = load_case(folder)
    assert case.resampled == ["flair"]
    expected = world_ramp(shape, ref_affine)
    got = case.images[SEQUENCES.index("flair")]
    inner = (slice(2, -2),) * 3  # away from the border, where the coarse grid is extrapolated
    np.testing.assert_allclose(got[inner], expected[inner], atol=1e-3)


def test_resamples_oblique_sequence(tmp_path):
    shape = (20, 22, 18)
    ref_affine = lps_affine()
    centre = world_coordinates(shape, ref_affine).reshape(3, -1).mean(axis=1)
    obl = oblique_affine(spacing=(0.9, 1.1, 1.0))
    obl[:3, 3] += centre - obl[:3, :3] @ (np.array([24, 24, 24]) / 2.0) - obl[:3, 3]
    t1 = world_ramp((25, 25, 25), obl)
    case = load_case(make_case(tmp_path, ID21, replace={"t1": (t1, obl)}))
    assert case.resampled == ["t1"]
    inside = grid.resample_to_grid(np.ones((25, 25, 25), np.float32), obl, shape, ref_affine, order=0) > 0
    inner = ndimage.binary_erosion(inside, iterations=2)  # away from the extrapolated border
    assert inner.sum() > 100
    np.testing.assert_allclose(case.images[0][inner], world_ramp(shape, ref_affine)[inner], atol=1e-3)


def test_no_overlap_is_an_error(tmp_path):
    far = lps_affine(origin=(900.0, 900.0, 900.0))
    folder = make_case(tmp_path, ID21, replace={"t2": (phantom()[0]["t2"], far)})
    with pytest.raises(CaseError, match=f"{ID21}_t2.nii.gz.*overlap") as err:
        load_case(folder)
    assert "\n" not in str(err.value) and "900]" in str(err.value)  # the affine, on the same line


def test_label_on_other_grid_is_resampled_nearest(tmp_path):
    images, classes = phantom()
    flipped = lps_affine() @ np.array([[-1, 0, 0, 19], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]], float)
    seg = classes[::-1].astype(np.uint8)
    seg[seg == 3] = 4
    case = load_case(make_case(tmp_path, ID21, replace={"seg": (seg, flipped)}))
    assert case.resampled == ["seg"]
    np.testing.assert_array_equal(case.label, classes)


def test_reference_choice(tmp_path):
    coarse_affine, coarse_shape = grid.resampled_affine(lps_affine(), (20, 22, 18), 2.0)
    flair = phantom(coarse_shape)[0]["flair"]
    case = load_case(make_case(tmp_path, ID21, replace={"flair": (flair, coarse_affine)}), reference="flair",
                     load_label=False)
    assert case.shape == coarse_shape and case.resampled == ["t1", "t1ce", "t2"] and case.label is None
    np.testing.assert_allclose(case.affine, coarse_affine)


# --------------------------------------------------------------------------- labels


@pytest.mark.parametrize("naming,case_id", [("brats2021", ID21), ("brats2023", ID23)])
def test_label_round_trip(tmp_path, naming, case_id):
    folder = make_case(tmp_path, case_id, naming)
    _, classes = phantom()
    case = load_case(folder)
    assert case.label_convention == naming
    np.testing.assert_array_equal(case.label, classes)
    out = save_label_map(case.label, case, tmp_path / "pred" / "seg.nii.gz")
    img = nib.load(out)
    on_disk = np.asarray(img.dataobj)
    assert on_disk.dtype == np.uint8
    assert set(np.unique(on_disk)) == set(CONVENTIONS[naming])
    np.testing.assert_allclose(img.affine, case.affine)
    assert int(img.header["sform_code"]) == 1 and int(img.header["qform_code"]) == 1
    with open(folder / case_files(case_id, naming)["seg"], "rb") as f:
        original = nib.Nifti1Image.from_bytes(gzip.decompress(f.read()))
    np.testing.assert_array_equal(on_disk, np.asarray(original.dataobj))


def test_label_values_decide_over_naming(tmp_path):
    _, classes = phantom()
    seg = classes.copy()
    seg[seg == 3] = 4  # 2021 values in a 2023-named folder
    case = load_case(make_case(tmp_path, ID23, "brats2023", replace={"seg": (seg, None)}))
    assert case.label_convention == "brats2021"
    np.testing.assert_array_equal(case.label, classes)


def test_ambiguous_labels_follow_naming(tmp_path):
    _, classes = phantom()
    seg = np.minimum(classes, 2)
    for case_id, naming in ((ID23, "brats2023"), (ID21, "brats2021")):
        case = load_case(make_case(tmp_path, case_id, naming, replace={"seg": (seg, None)}))
        assert case.label_convention == naming


@pytest.mark.parametrize("bad,shown", [(7, "7"), (None, "both 3 and 4")])
def test_labels_outside_conventions_rejected(tmp_path, bad, shown):
    _, classes = phantom()
    seg = classes.copy()
    if bad is None:
        seg[tuple(np.argwhere(seg == 3)[0])] = 4  # one ET voxel in 2021 style, the rest 2023
    else:
        seg[0, 0, 0] = bad
    folder = make_case(tmp_path, ID21, replace={"seg": (seg, None)})
    with pytest.raises(CaseError) as err:
        load_case(folder)
    assert f"{ID21}_seg.nii.gz" in str(err.value) and shown in str(err.value)


def test_float_image_as_label_lists_few_values(tmp_path):
    images, _ = phantom()
    noise = np.random.default_rng(0).normal(size=images["t1"].shape).astype(np.float32)  # ~8000 distinct values
    folder = make_case(tmp_path, ID21, replace={"seg": (noise, None)})
    with pytest.raises(CaseError) as err:
        load_case(folder)
    message = str(err.value)
    assert f"{ID21}_seg.nii.gz" in message and "\n" not in message and len(message) < 600
    distinct = np.unique(np.asarray(nib.load(folder / f"{ID21}_seg.nii.gz").dataobj)).size
    assert f"… ({distinct - 8} more)" in message and f"found {distinct} distinct values" in message


def test_empty_label_map_is_fine(tmp_path):
    case = load_case(make_case(tmp_path, ID21, replace={"seg": (np.zeros((20, 22, 18), np.uint8), None)}))
    assert case.label is not None and not case.label.any()


# --------------------------------------------------------------------------- writing and summary


def test_save_volume_keeps_geometry_and_refuses_overwrite(tmp_path):
    case = load_case(make_case(tmp_path, ID21, affine=oblique_affine()))
    prob = np.linspace(0, 1, np.prod(case.shape), dtype=np.float32).reshape(case.shape)
    path = tmp_path / "out" / "prob.nii.gz"
    save_volume(prob, case.affine, path, header=case.header, dtype=np.float32)
    img = nib.load(path)
    np.testing.assert_allclose(img.affine, case.affine, atol=1e-6)
    np.testing.assert_allclose(img.header.get_qform(), case.affine, atol=1e-5)
    np.testing.assert_array_equal(img.get_fdata(dtype=np.float32), prob)
    with pytest.raises(CaseError, match="prob.nii.gz.*exists"):
        save_volume(prob, case.affine, path)
    save_volume(prob * 0.5, case.affine, path, overwrite=True)
    np.testing.assert_array_equal(nib.load(path).get_fdata(dtype=np.float32), prob * 0.5)
    assert [p.name for p in path.parent.iterdir()] == ["prob.nii.gz"]  # no temporary left behind


def test_save_volume_ignores_reference_scaling(tmp_path):
    images, _ = phantom()
    img = nib.Nifti1Image(images["t1ce"], lps_affine())
    img.header.set_slope_inter(2.0, 10.0)
    nib.save(img, tmp_path / "scaled.nii.gz")
    _, affine, header = load_volume(tmp_path / "scaled.nii.gz")
    values = np.arange(20 * 22 * 18, dtype=np.float32).reshape(20, 22, 18) / 7
    save_volume(values, affine, tmp_path / "plain.nii", header=header)
    np.testing.assert_allclose(nib.load(tmp_path / "plain.nii").get_fdata(), values, rtol=1e-6)



def test_gzipped_volumes_are_standard_gzip_of_what_nibabel_writes(tmp_path, monkeypatch):
    """Chunked, threaded compression (zero-heavy chunks run-length coded, dense ones not): any gzip reader
    gets exactly nibabel's uncompressed file, and the bytes do not depend on the number of threads."""
    from BrainTumorXAILib.io import nifti_writer

    monkeypatch.setattr(nifti_writer, "GZIP_CHUNK", 4096)  # many chunks on a small volume
    rng = np.random.default_rng(0)
    values = np.zeros((30, 26, 21), np.float32)
    values[5:25, 4:20, 3:18] = rng.random((20, 16, 15), dtype=np.float32)  # zero outside, dense inside
    values[:, :, -2:] = 1.0  # a non-zero fill: the default strategy
    written = {}
    for workers in (1, 3):
        monkeypatch.setattr(nifti_writer, "_compress_workers", lambda w=workers: w)
        path = save_volume(values, lps_affine(), tmp_path / f"w{workers}.nii.gz", dtype=np.float32)
        written[workers] = path.read_bytes()
    assert written[1] == written[3]
    nib.save(nib.Nifti1Image(values, lps_affine(),
                             header=nifti_writer._output_header(None, lps_affine(), np.float32)), tmp_path / "ref.nii")
    assert gzip.decompress(written[1]) == (tmp_path / "ref.nii").read_bytes()
    np.testing.assert_array_equal(nib.load(tmp_path / "w1.nii.gz").get_fdata(dtype=np.float32), values)

def test_summary_is_json(tmp_path):
    case = load_case(make_case(tmp_path, ID21))
    summary = json.loads(json.dumps(case.summary()))
    assert summary["orientation"] == "LPS" and summary["shape"] == [20, 22, 18]
    assert summary["spacing"] == [1.0, 1.0, 1.0] and summary["has_label"]
    assert sum(summary["label_voxels"].values()) == 20 * 22 * 18


def test_threaded_reading_gives_the_serial_case_and_names_the_first_bad_file(tmp_path, monkeypatch):
    """The files are read in threads; the case is the one-thread case, array for array, and of two bad files
    the first in the serial order (the reference first, then t1, t1ce, t2, flair, then the label) is named."""
    from BrainTumorXAILib.io import case_io

    folder = make_case(tmp_path, ID21)
    monkeypatch.setattr(case_io, "LOAD_WORKERS", 1)
    serial = load_case(folder)
    monkeypatch.setattr(case_io, "LOAD_WORKERS", 4)
    threaded = load_case(folder)
    np.testing.assert_array_equal(threaded.images, serial.images)
    np.testing.assert_array_equal(threaded.label, serial.label)
    np.testing.assert_array_equal(threaded.affine, serial.affine)
    assert threaded.images.flags.c_contiguous and threaded.label.flags.c_contiguous
    files = scan_case(folder).files
    for seq in ("flair", "t2"):  # both constant: t2 comes first in the serial order
        img = nib.load(files[seq])
        nib.save(nib.Nifti1Image(np.ones(img.shape, np.float32), img.affine), files[seq])
    with pytest.raises(CaseError, match="_t2.nii.gz.*constant volume"):
        load_case(folder)
