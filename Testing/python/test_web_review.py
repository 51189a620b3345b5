"""The web viewer's "where to look" list and the checkpoint's uncertainty-quality figures, on a running server.

A results folder made directly (``slicer_results_factory``) with a trust report is put where the server's cache
expects it, so selecting the case shows it at once (no analysis runs).  Every wait has a deadline.
"""

from __future__ import annotations

import json
import os
import re
import contextlib
import shutil
import sys
from pathlib import Path

import pytest

pytest.importorskip("trame_slicer", reason="web extra not installed (pip install 'braintumorxai[web]')")
pytest.importorskip("websocket", reason="websocket-client not installed")

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "web_e2e"))
import driver  # noqa: E402
import protocols  # noqa: E402

DEADLINE_S = 240
REGIONS = [{"rank": 1, "boundary": "ED|background", "volume_ml": 2.0, "mean_entropy": 0.71,
            "peak_ras": [40.0, -25.0, 12.0]},
           {"rank": 2, "boundary": "ET|ED", "volume_ml": 0.5, "mean_entropy": 0.6, "peak_ras": [30.5, -20.0, 5.0]}]


@pytest.fixture(autouse=True)
def _deadline(request):
    with driver.alarm_deadline(request.node.name, DEADLINE_S):
        yield


def _serve(tmp_path, trust):
    from BrainTumorXAILib.reporting.checkpoint_trust import TRUST_FORMAT
    from BrainTumorXAILib.web.jobs import JobOptions, cache_folder
    from slicer_results_factory import make_case_and_results

    case_dir, out, _ = make_case_and_results(tmp_path / "made")
    data, results = tmp_path / "data", tmp_path / "results"
    data.mkdir()
    case_dir = Path(shutil.move(str(case_dir), str(data / case_dir.name)))
    weights = tmp_path / "w.pt"
    weights.write_bytes(b"not used: nothing is analysed")
    summary = json.loads((out / "summary.json").read_text())
    summary["trust_report"] = {"review": {"regions": REGIONS}}
    summary.setdefault("model", {})["trust"] = {
        "format": TRUST_FORMAT, "source": "validation", "cases": 5,
        "regions": {"WT": {"ece": 0.02, "auroc_entropy": 0.93}}} if trust else None
    (out / "summary.json").write_text(json.dumps(summary))
    shutil.copytree(out, cache_folder(results, case_dir, JobOptions(weights=weights, mc_samples=2, gradcam="NCR")))
    port = driver.free_port()
    log = open(tmp_path / "server.log", "wb")
    proc = driver.start_server(data, results, port, ["--weights", str(weights), "--mc-samples", "2",
                                                     "--gradcam", "NCR"], log, env=dict(os.environ))
    return proc, log, f"http://127.0.0.1:{port}", case_dir.name


@contextlib.contextmanager
def _page(tmp_path, trust):
    """A served viewer and a connected page with the prepared case selected; (page, server process)."""
    proc, log, base, case = _serve(tmp_path, trust)
    page = None
    try:
        driver.wait_http(base + "/btx/health", 90)
        page = protocols.TrameConnection(base, timeout=60)
        page.call("trame.state.update", [{"key": "selected_case", "value": case}])
        yield page, proc
    finally:
        if page is not None:
            page.close()
        driver.stop(proc, timeout=30)
        log.close()


def _tumour_centroid(tmp_path) -> list[float]:
    import nibabel as nib
    import numpy as np

    seg = nib.load(next((tmp_path / "results").glob("*/seg.nii.gz")))
    voxels = np.argwhere(np.asarray(seg.dataobj) > 0)
    return list((seg.affine @ np.r_[voxels.mean(axis=0), 1.0])[:3])


def test_where_to_look_centres_the_views_and_shows_the_checkpoint_figures(tmp_path):
    with _page(tmp_path, trust=True) as (page, proc):
        state = page.wait_state(lambda st: st.get("loaded_case") and st.get("review"), 120)
        assert [r["rank"] for r in state["review"]] == [1, 2]
        assert state["review"][1]["boundary"] == "ET|ED" and state["review"][1]["ras"] == "30.5, -20.0, 5.0"
        assert state["trust"]["measured"] and state["trust"]["rows"][0] == {"region": "WT",
                                                                           "text": "ECE 0.020 · AUROC 0.930"}
        assert state["trust"]["rows"][2]["text"] == "not measured for this checkpoint"  # ET: no figure
        # The sequence-evidence table beside the volumes (the factory's model reads T1ce and FLAIR only).
        assert state["evidence"][2] == {"name": "ET", "cells": ["not read", "75 %", "not read", "25 %"]}
        # How near each Grad-CAM map lies to its call, beside the volumes; NCR's (25 %) flagged as lying away.
        volumes = {row["name"]: row for row in state["volumes"]}
        assert (volumes["NCR"]["gradcam"], volumes["NCR"]["gradcam_away"]) == ("25 %", True)
        assert (volumes["ED"]["gradcam"], volumes["ED"]["gradcam_away"]) == ("90 %", False)
        assert volumes["ET"]["gradcam"] == "" and volumes["WT"]["gradcam"] == ""
        assert state["review"][0]["between"] == "edema or normal tissue?"  # the boundary in words
        # The views were centred on the predicted tumour when the results loaded, and the page names each
        # slice view's position.
        tumour = _tumour_centroid(tmp_path)
        assert state["view_centre"]["ras"] == pytest.approx(tumour, abs=1e-2)
        for centre in state["view_centre"]["slices"].values():
            assert centre == pytest.approx(tumour, abs=1e-2)
        for view, axis in (("axial", "S"), ("coronal", "A"), ("sagittal", "R")):  # the made case is oblique
            assert re.fullmatch(axis + r" -?\d+\.\d mm( \(oblique\))?", state["slice_labels"][view]), state["slice_labels"]

        loaded_labels = dict(state["slice_labels"])
        focus = page.trigger("btx_review_jump", 1)
        assert focus["rank"] == 2 and focus["ras"] == pytest.approx([30.5, -20.0, 5.0])
        assert len(focus["slices"]) >= 3  # axial, coronal, sagittal all centred on the region
        for centre in focus["slices"].values():
            assert centre == pytest.approx([30.5, -20.0, 5.0], abs=1e-3)
        state = page.wait_state(lambda st: (st.get("review_focus") or {}).get("rank") == 2
                                and st.get("overlay") == "entropy", 30)
        state = page.wait_state(lambda st: st.get("legend"), 30)
        # the page's slice positions follow the views as they move
        page.wait_state(lambda st: st.get("slice_labels") and st["slice_labels"] != loaded_labels, 30)
        assert state["legend"]["title"] == "Entropy"
        assert page.trigger("btx_review_jump", 7) is None and page.trigger("btx_review_jump", "x") is None
        assert proc.poll() is None


def test_without_a_card_the_page_says_not_measured(tmp_path):
    with _page(tmp_path, trust=False) as (page, _):
        state = page.wait_state(lambda st: st.get("loaded_case") and st.get("trust"), 120)
        assert state["trust"] == {"measured": False, "source": "not measured for this checkpoint", "rows": []}
