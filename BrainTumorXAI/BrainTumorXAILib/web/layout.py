"""The viewer's page: the view layout (axial, coronal, 3D, sagittal) and the controls around it."""

from __future__ import annotations

from .handlers import ROUTE
from ..io.labels import SEQUENCES
from ..reporting.evidence_table import SEQUENCE_LABELS
from ..reporting.locality_text import LOCALITY_FLOOR, MARGIN_MM
from .results_scene import VIEW_PRESETS

LAYOUT_ID = "BrainTumorXAI"


def _layout():
    from trame_slicer.views import Layout, LayoutDirection, ViewLayoutDefinition

    return Layout(LayoutDirection.Horizontal, [
        Layout(LayoutDirection.Vertical, [ViewLayoutDefinition.axial_view(), ViewLayoutDefinition.coronal_view()]),
        Layout(LayoutDirection.Vertical, [ViewLayoutDefinition.threed_view(), ViewLayoutDefinition.sagittal_view()]),
    ])


FIRST_HINT = ("Choose a case in the Case list at the top, or upload one (Upload case: the four NIfTI files "
              "t1, t1ce, t2 and flair, or one zip of them). It is analysed on this server, about a minute on a "
              "CPU, and the results fill the four views.")
METRICS_WORDS = ("Against the case's reference segmentation. Dice: overlap, 1 = identical. HD95: the 95th "
                 "percentile distance between the two outlines, in mm. Sens.: the share of the reference found. "
                 "Prec.: the share of the prediction inside the reference.")
REVIEW_WORDS = ("Regions where the model is unsure (predictive entropy above half its maximum, in nats: 0 = sure, "
                "1.39 = all four classes equally likely), largest first. Click a row to centre the views on it and "
                "show the entropy.")
TRUST_WORDS = ("How well this checkpoint's uncertainty pointed at its own errors on validation cases. ECE: "
               "calibration error, 0 = probabilities match the error rates. AUROC: how well entropy separates wrong "
               "voxels from right ones, 0.5 = chance, 1 = perfectly. QU-BraTS: the BraTS uncertainty challenge score, "
               "0-1, higher is better; (zero): the same score with no uncertainty at all, the baseline to beat.")
NOWRAP = "white-space: nowrap; padding: 0 6px;"
LOCALITY_WORDS = (f"Share of the class's Grad-CAM map within {MARGIN_MM:g} mm of its predicted region; below "
                  f"{100 * LOCALITY_FLOOR:.0f} % (in red) the map lies mostly away from the call and does not show "
                  "what it rests on")
#: (view quadrant, left, right, top, bottom letters, state key of its slice position) of the 2x2 layout below.
_QUADRANTS = (("left: 0; top: 0;", "R", "L", "A", "P", "axial"),
              ("left: 0; top: 50%;", "R", "L", "S", "I", "coronal"),
              ("left: 50%; top: 50%;", "A", "P", "S", "I", "sagittal"))


def _view_annotations(html) -> None:
    """Orientation letters at the edges of each slice view and its position (e.g. "S 12.0 mm"), drawn over
    the views without taking their clicks."""
    letter = "position: absolute; color: #ffd54f; font: bold 13px sans-serif; text-shadow: 0 0 3px #000;"
    for where, left, right, top, bottom, key in _QUADRANTS:
        with html.Div(style=f"position: absolute; {where} width: 50%; height: 50%; pointer-events: none;",
                      classes=f"view-annotation view-{key}"):
            html.Span(left, style=letter + " left: 4px; top: 50%;")
            html.Span(right, style=letter + " right: 6px; top: 50%;")
            html.Span(top, style=letter + " left: 50%; top: 4px;")
            html.Span(bottom, style=letter + " left: 50%; bottom: 30px;")  # above the view's slice slider
            html.Span(f"{{{{ slice_labels.{key} || '' }}}}", id=f"slice-label-{key}",
                      style=letter + " right: 8px; top: 6px; font-weight: normal;")


class LayoutMixin:
    """ViewerApp's page: toolbar (case, upload, downloads), drawer (progress, overlay, legend, presets, tables), views."""

    def _build_ui(self) -> None:
        from trame.ui.vuetify3 import SinglePageWithDrawerLayout
        from trame.widgets import html
        from trame.widgets import vuetify3 as v3

        # The upload token belongs to this page's connection (see _upload_token); asked for once, and again when
        # the server no longer knows it (the websocket reconnected as a new connection).  The handler is an arrow
        # function, which Vue calls with the event (an invoked function expression "(async (ev) => ...)($event)"
        # also looks like a function to Vue's compiler: it ran once at render time and the input never uploaded).
        # Template expressions see the state, trame, utils, window and a few allowed globals (Math, JSON...):
        # browser APIs go through window.
        upload_js = (
            "async (ev) => { const fd = new window.FormData();"
            " for (const f of ev.target.files) fd.append('files', f, f.name);"
            " ev.target.value = ''; uploading = true; error = '';"
            " const send = async (fresh) => { if (fresh || !window.btxUploadToken)"
            " window.btxUploadToken = await trame.trigger('btx_upload_token');"
            f" return window.fetch('{ROUTE.lstrip('/')}/upload?token=' + encodeURIComponent(window.btxUploadToken || ''),"
            " {method: 'POST', body: fd}); };"
            " try { let r = await send(false); if (r.status === 403) r = await send(true);"
            " const j = await r.json(); if (!j.ok) { error = j.error; } }"
            " catch (e) { error = 'upload failed: ' + e; } uploading = false; }"
        )
        self.state.uploading = False
        self.state.cancelling = False
        self.ctrl.cancel_analysis = self._cancel_analysis
        with SinglePageWithDrawerLayout(self.server, theme="dark") as ui:
            ui.title.set_text("BrainTumorXAI")
            ui.root.theme = "dark"
            with ui.toolbar:
                v3.VSpacer()
                v3.VSelect(label="Case", items=("cases",), v_model=("selected_case",), density="compact",
                           hide_details=True, style="max-width: 320px;", classes="mx-2", id="case-select",
                           disabled=("busy",))
                with html.Label(classes="v-btn v-btn--variant-outlined mx-2 px-3", style="cursor: pointer;",
                                title=("`NIfTI files (t1, t1ce, t2, flair) or one zip, up to ${max_upload}`",)):
                    html.Span("Upload case")
                    html.Input(type="file", multiple=True, accept=".nii,.gz,.zip", style="display: none;",
                               id="upload-input", change=upload_js, disabled=("busy || uploading",))
                v3.VBtn("Results (zip)", href=f"{ROUTE.lstrip('/')}/results.zip", target="_blank",
                        disabled=("!loaded_case",), variant="text", prepend_icon="mdi-download")
                v3.VBtn("Scene (.mrb)", href=f"{ROUTE.lstrip('/')}/scene.mrb", target="_blank",
                        disabled=("!loaded_case",), variant="text", prepend_icon="mdi-download")
            with ui.drawer as drawer:
                drawer.width = 400
                with html.Div(classes="pa-3"):
                    v3.VAlert(text=FIRST_HINT, type="info", variant="tonal", density="compact", classes="mb-2",
                              v_show=("!loaded_case && !busy && !uploading",), id="first-hint")
                    v3.VProgressLinear(v_model=("progress",), height=18, color="primary", v_show=("busy || uploading",),
                                       indeterminate=("uploading || cancelling",), id="progress")
                    v3.VBtn("Cancel analysis", click=self.ctrl.cancel_analysis, v_show=("busy",),
                            disabled=("cancelling",), size="small", variant="outlined", color="error",
                            prepend_icon="mdi-close", classes="my-1", id="cancel-analysis")
                    html.Div("{{ progress_text }}", classes="text-caption mb-2", id="progress-text")
                    v3.VAlert(text=("error",), type="error", density="compact", v_show=("error",),
                              closable=True, id="error", classes="mb-2")
                    html.Div("{{ loaded_case }}", id="loaded-case", classes="text-subtitle-1 mb-2",
                             v_show=("loaded_case",))
                    v3.VSelect(label="Overlay", items=("overlay_items",), v_model=("overlay",), density="compact",
                               hide_details=True, id="overlay-select")
                    v3.VSlider(label="Opacity", v_model=("opacity",), min=0, max=1, step=0.05, hide_details=True,
                               density="compact")
                    with html.Div(v_if=("legend",), classes="mb-2", id="legend"):
                        html.Div("{{ legend.title }}", classes="text-caption")
                        html.Div(style=("{height: '12px', background: legend.gradient, borderRadius: '2px'}",))
                        with html.Div(classes="d-flex text-caption"):
                            html.Span("{{ legend.min }}")
                            v3.VSpacer()
                            html.Span("{{ legend.max }}")
                    v3.VCheckbox(label="Segmentation in slices", v_model=("show_seg",), density="compact",
                                 hide_details=True)
                    with html.Div(classes="mb-2 text-caption", id="class-legend"):
                        with html.Div(v_for="c in class_legend", key="c.name", classes="d-flex align-center"):
                            html.Span(style=("{background: c.color, width: '12px', height: '12px', display: "
                                             "'inline-block', borderRadius: '2px', marginRight: '6px'}",))
                            html.Span("{{ c.name }}: {{ c.words }}")
                    html.Div("View", classes="text-caption")
                    with v3.VBtnToggle(v_model=("preset",), mandatory=True, density="compact", divided=True,
                                       variant="outlined", classes="flex-wrap mb-2", id="preset"):
                        for value, title in VIEW_PRESETS.items():
                            v3.VBtn(title, value=value, size="small")
                    with v3.VTable(density="compact", v_show=("volumes.length",), classes="mt-2"):
                        with html.Thead():
                            with html.Tr():
                                html.Th("Region")
                                html.Th("Volume (cm³)")
                                html.Th("Grad-CAM near the call", title=LOCALITY_WORDS, style=NOWRAP)
                        with html.Tbody():
                            with html.Tr(v_for="row in volumes", key="row.name"):
                                html.Td("{{ row.name }}")
                                html.Td("{{ row.volume }}")
                                html.Td("{{ row.gradcam }}", title=LOCALITY_WORDS,
                                        classes=("{ 'text-error': row.gradcam_away }",))
                    with v3.VTable(density="compact", v_show=("metrics.length",), classes="mt-2", id="metrics"):
                        with html.Thead():
                            with html.Tr():
                                for h in ("Region", "Dice", "HD95 (mm)", "Sens.", "Prec."):
                                    html.Th(h, style=NOWRAP)
                        with html.Tbody():
                            with html.Tr(v_for="m in metrics", key="m.region"):
                                for k in ("region", "dice", "hd95", "sensitivity", "precision"):
                                    html.Td(f"{{{{ m.{k} }}}}", style=NOWRAP)
                    html.Div(METRICS_WORDS, v_show=("metrics.length",), classes="text-caption text-medium-emphasis")
                    with html.Div(v_show=("evidence.length",), classes="mt-3", id="evidence"):
                        html.Div("Sequence evidence: share of each class's call resting on each sequence (an "
                                 "attribution of the network's output, not proof of tumour)", classes="text-caption")
                        with v3.VTable(density="compact"):
                            with html.Thead():
                                with html.Tr():
                                    for h in ("Class", *(SEQUENCE_LABELS[s] for s in SEQUENCES)):
                                        html.Th(h)
                            with html.Tbody():
                                with html.Tr(v_for="e in evidence", key="e.name"):
                                    html.Td("{{ e.name }}")
                                    html.Td("{{ c }}", v_for="(c, i) in e.cells", key="i")
                    with html.Div(v_show=("review.length",), classes="mt-3", id="review"):
                        html.Div("Where to look", classes="text-caption")
                        html.Div(REVIEW_WORDS, classes="text-caption text-medium-emphasis")
                        with v3.VTable(density="compact", hover=True):
                            with html.Thead():
                                with html.Tr():
                                    for h in ("#", "Unsure between", "mL", "Entropy (nats)"):
                                        html.Th(h, style=NOWRAP)
                            with html.Tbody():
                                with html.Tr(v_for="r in review", key="r.rank", style="cursor: pointer;",
                                             click="trigger('btx_review_jump', [r.row])",
                                             title=("`RAS ${r.ras} mm`",),
                                             classes=("{'bg-primary': review_focus && review_focus.rank === r.rank}",)):
                                    for k in ("rank", "between", "volume", "entropy"):
                                        html.Td(f"{{{{ r.{k} }}}}", style="padding: 0 6px;")
                    with html.Div(v_if=("trust",), classes="mt-3", id="checkpoint-trust"):
                        html.Div("Checkpoint uncertainty quality", classes="text-caption")
                        html.Div("{{ trust.source }}", classes="text-caption text-medium-emphasis")
                        html.Div(TRUST_WORDS, v_show=("trust.rows.length",),
                                 classes="text-caption text-medium-emphasis")
                        with v3.VTable(density="compact", v_show=("trust.rows.length",)):
                            with html.Tbody():
                                with html.Tr(v_for="t in trust.rows", key="t.region"):
                                    html.Td("{{ t.region }}")
                                    html.Td("{{ t.text }}")
            with ui.content:
                with html.Div(style="position: relative; width: 100%; height: calc(100vh - 92px);", id="views"):
                    self.layout_manager.initialize_layout_grid(ui)
                    _view_annotations(html)
                    html.Div("No case shown yet: choose one in the Case list or upload one.",
                             v_show=("!loaded_case && !busy",), id="views-hint",
                             style="position: absolute; top: 50%; left: 50%; transform: translate(-50%, -50%);"
                                   " padding: 8px 14px; background: rgba(40, 40, 40, 0.9); border-radius: 4px;"
                                   " color: #ddd; pointer-events: none;")
        self.ui = ui
