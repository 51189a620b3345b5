"""The shipped default model on real MRI from ../shared/realdata (skipped, with the reason, where it is absent).

The TCGA pair is the held-out test set of the default model (see docs/model_card.md):
it appears in no training or validation source.  Thresholds sit a few points below what was measured
(deterministic pass, the model card's table), so a regression shows and noise does not.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from BrainTumorXAILib.analysis_options import AnalysisOptions
from BrainTumorXAILib.inference.case_prediction import predict_case
from BrainTumorXAILib.errors import BrainTumorXAIError
from BrainTumorXAILib.io.case_io import load_case
from BrainTumorXAILib.models.checkpoint import load_model
from BrainTumorXAILib.reporting.metrics import segmentation_metrics
from BrainTumorXAILib.resources import demo_weights_path
from realdata import REALDATA, needs_realdata


#: Measured with the shipped weights, deterministic (python -m training.evaluate ... --mc-samples 0), minus a margin.
#: DU-7294's ET is 1.0 only through the enhancement check (no ET in its labels; the network calls 6 mL of white
#: matter that is as bright on T1 as on T1ce): the check was prompted by this case (model card).
MEASURED = {
    "TCGA-DU-7294": {"WT": 0.835, "TC": 0.535, "ET": 1.0},  # low grade: no enhancing tumour in the labels
    "TCGA-FG-6692": {"WT": 0.769, "TC": 0.777, "ET": 0.855},
}
MARGIN = 0.05


@pytest.fixture(scope="module")
def default_model():
    return load_model(demo_weights_path(), device="cpu")


def _predict(case, model, meta):
    """Dice per region and the post-processing record, dropout-free, default options."""
    pred = predict_case(case, model, meta, torch.device("cpu"), AnalysisOptions(device="cpu", mc_samples=0, gradcam="none"))
    metrics = segmentation_metrics(pred.grid["classes"], case.label, case.spacing)
    return {region: m["dice"] for region, m in metrics["regions"].items()}, pred.grid["postprocessing"]


@needs_realdata
@pytest.mark.parametrize("case_id", sorted(MEASURED))
def test_default_model_on_the_held_out_tcga_pair(default_model, case_id):
    model, meta = default_model
    case = load_case(REALDATA / case_id, optional=tuple(meta["normalisation"].get("optional_sequences", ())))
    dice, steps = _predict(case, model, meta)
    for region, measured in MEASURED[case_id].items():
        assert dice[region] >= measured - MARGIN, (case_id, region, round(dice[region], 3), measured)
    # The enhancement check: the low-grade case's whole false ET (about 6 mL) is not brighter on T1ce than on T1;
    # the high-grade case's enhancing rim is, and keeps every voxel.
    check = steps["enhancement_check"]
    if case_id == "TCGA-DU-7294":
        assert check["applied"] and check["et_ml_relabelled"] > 4.0
    else:
        assert not check["applied"] and check["components"] >= 1 and max(check["component_contrast"]) > 1.0


@needs_realdata
def test_default_model_runs_without_t1_and_t2_and_says_so(default_model, tmp_path):
    """FLAIR + T1ce alone (common in clinical practice): the case loads, the model runs, the tumour is found."""
    import shutil

    model, meta = default_model
    assert set(meta["normalisation"]["optional_sequences"]) == {"t1", "t2"}
    folder = tmp_path / "TCGA-FG-6692"
    folder.mkdir()
    for suffix in ("flair", "t1ce", "seg"):
        shutil.copy(REALDATA / "TCGA-FG-6692" / f"TCGA-FG-6692_{suffix}.nii.gz", folder)
    case = load_case(folder, optional=("t1", "t2"))
    assert case.missing == ["t1", "t2"] and not case.images[0].any() and not case.images[2].any()
    dice, steps = _predict(case, model, meta)
    assert dice["WT"] >= MEASURED["TCGA-FG-6692"]["WT"] - 0.15
    assert steps["enhancement_check"]["skipped"] == "no T1 image"  # nothing to compare T1ce with: ET kept as called
    # a checkpoint that cannot do without T1 keeps the loader's one-line error
    with pytest.raises(BrainTumorXAIError, match="missing t1 and t2 images"):  # both named, not only the first
        load_case(folder)


def test_default_checkpoint_records_its_grid_and_what_it_can_do_without(default_model):
    _, meta = default_model
    norm = meta["normalisation"]
    assert norm["spacing"] == [2.0, 2.0, 2.0]
    assert set(norm["optional_sequences"]) == {"t1", "t2"}
    sources = meta["provenance"]["sources"]
    assert sources["synthetic"]["weight"] > 0
    # the held-out test cases are in no training or validation source
    used = [c["path"] for c in sources["real"]["cases"] + sources["validation"]]
    assert not any("TCGA" in p for p in used)
