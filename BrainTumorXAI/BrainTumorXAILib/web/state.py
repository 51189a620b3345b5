"""The viewer's shared trame state and how it reacts: case list, case choice, analysis progress, results shown."""

from __future__ import annotations

import asyncio
from pathlib import Path

from ..io.labels import CLASS_COLORS, CLASS_LONG_NAMES, TUMOUR_CLASSES
from .jobs import is_complete
from .results_scene import VIEW_PRESETS
from .uploads import GIB


class StateMixin:
    """ViewerApp's state: initial values, the case dropdown, the analysis job and its progress, overlays, presets."""

    # -- state ---------------------------------------------------------------------------------------------
    def _init_state(self) -> None:
        s = self.state
        s.trame__title = "BrainTumorXAI viewer"
        s.error = ""  # before the scan: a data-folder scan error is shown
        s.info = ""
        s.cases = self._scan_cases()
        s.selected_case = None
        s.busy = False
        s.progress = 0
        s.progress_text = ""
        s.loaded_case = ""
        s.overlay_items = [{"title": "None", "value": "none"}]
        s.overlay = "none"
        s.opacity = 0.6
        s.legend = None
        s.show_seg = True
        s.preset = "all"
        s.preset_items = [{"title": t, "value": v} for v, t in VIEW_PRESETS.items()]
        s.volumes = []
        s.metrics = []
        s.evidence = []  # sequence evidence: per class, the share resting on each sequence
        s.review = []  # the trust report's high-uncertainty regions ("where to look")
        s.review_focus = None  # the region the slice views were last centred on
        s.trust = None  # the checkpoint's uncertainty-quality figures
        s.slice_labels = {}  # {axial|coronal|sagittal: "S 12.0 mm"}: each slice view's position
        s.view_centre = None  # RAS the slice views were centred on when the results loaded (the tumour)
        s.class_legend = [{"name": name, "words": CLASS_LONG_NAMES[name],
                           "color": "rgb({},{},{})".format(*(round(255 * c) for c in CLASS_COLORS[name]))}
                          for name in TUMOUR_CLASSES]
        self.ctrl.trigger("btx_review_jump")(self._on_review_jump)
        s.max_upload = f"{self.limits.max_total_bytes / GIB:.1f} GB"
        s.change("selected_case")(self._on_case)
        s.change("overlay")(self._on_overlay)
        s.change("opacity")(lambda opacity, **_: self._update(self.results.set_opacity, opacity))
        s.change("preset")(self._on_preset)
        s.change("show_seg")(lambda show_seg, **_: self._update(self.results.set_segmentation_visible, show_seg))

    def _scan_cases(self) -> list[dict]:
        from .uploads import list_analysable

        self._cases = {}
        if self.data_dir is None:
            return []
        try:
            folders = list_analysable(self.data_dir)
        except Exception as exc:  # noqa: BLE001 - shown in the page
            self.state.error = str(exc)
            return []
        for folder in folders:
            self._cases[folder.name] = folder
        return [{"title": name, "value": name} for name in self._cases]

    def _watch_slices(self) -> None:
        """Keep the page's slice positions current as the views are scrolled (slice nodes' ModifiedEvent)."""
        pending = []

        def publish():
            pending.clear()
            labels = self.results.slice_labels()
            if labels != self.state.slice_labels:
                with self.state:
                    self.state.slice_labels = labels

        def changed(*_):
            # Slice nodes change inside other state handlers (a case loading): publishing from there would
            # flush the state in the middle of theirs.  Once, after the current handler, on the event loop.
            if not pending:
                try:
                    loop = asyncio.get_running_loop()
                except RuntimeError:  # no loop yet (building the app): _show_results publishes them
                    return
                pending.append(loop.call_soon(publish))

        for node in self.results.slice_nodes():
            node.AddObserver("ModifiedEvent", changed)
        self.state.slice_labels = self.results.slice_labels()

    def _update(self, fn, *args):
        fn(*args)
        self._render_all()

    def _render_all(self) -> None:
        for view in self.slicer_app.view_manager.get_views():
            view.schedule_render()

    # -- cases and jobs --------------------------------------------------------------------------------------
    def _on_case(self, selected_case, **_):
        if not selected_case:
            return
        folder = self._cases.get(selected_case)
        if folder is None:
            return
        if self.runner.busy:  # the dropdown is disabled while busy; another tab (shared state) may still set it
            self.state.error = self._busy_message()
            return
        self.state.error = ""
        try:
            out = self.runner.results_for(folder)
        except Exception as exc:  # noqa: BLE001
            self.state.error = str(exc)
            return
        self._open_or_run(folder, out)

    def _busy_message(self) -> str:
        job = self.runner.current
        what = job.case_dir.name if job is not None else "a case"
        return f"the analysis of {what} is still running; wait for it or cancel it before starting another"

    def _open_or_run(self, case_dir: Path, out_dir: Path) -> None:
        if is_complete(out_dir):
            self._show_results(out_dir, case_dir)
            return
        job = self.runner.submit(case_dir, out_dir)  # JobBusy while one runs (callers check runner.busy first)
        self.state.busy, self.state.progress, self.state.progress_text = True, 0, f"analysing {case_dir.name}..."
        self._start_polling(job)

    def _start_polling(self, job) -> None:
        from trame_server.utils.asynchronous import create_task

        if self._poll_task is not None and not self._poll_task.done():
            self._poll_task.cancel()  # (cannot happen: submit refuses while a job is unsettled)

        async def poll():
            while not job.settled:  # running, or cancelled and the child not reaped yet
                if job is not self.runner.current:
                    return
                if job.running:
                    with self.state:
                        self.state.progress = round(100 * job.fraction)
                        self.state.progress_text = f"{job.case_dir.name}: {job.stage} {job.message}".strip()
                await asyncio.sleep(0.3)
            if job is not self.runner.current:  # a newer job owns the progress bar
                return
            with self.state:
                self.state.busy = False
                self.state.cancelling = False
                if job.state == "done":
                    self.state.progress = 100
                    self._show_results(job.out_dir, job.case_dir)
                elif job.state == "failed":
                    self.state.error = f"analysis of {job.case_dir.name} failed: {job.error}"
                else:
                    self.state.progress_text = "cancelled"

        self._poll_task = create_task(poll())

    def _cancel_analysis(self) -> None:
        """Cancel button: signal the analysis (a thread reaps it, it can take seconds), the poller sees it end."""
        job = self.runner.current
        if job is None or not job.running:
            return
        self.state.cancelling = True
        self.state.progress_text = f"cancelling {job.case_dir.name}..."
        job.request_cancel()

    def _show_results(self, out_dir: Path, case_dir: Path | None) -> None:
        try:
            summary = self.results.load(out_dir, case_dir)
        except Exception as exc:  # noqa: BLE001 - a broken results folder is a message, not a crash
            self.state.error = f"cannot show {out_dir.name}: {exc}"
            return
        s = self.state
        s.overlay_items = self.results.overlay_items()
        if s.overlay not in [i["value"] for i in s.overlay_items]:
            s.overlay = "none"
        tables = self.results.tables()
        s.volumes, s.metrics, s.evidence = tables["volumes"], tables["metrics"], tables.get("evidence", [])
        s.review, s.review_focus, s.trust = self.results.review_rows(), None, self.results.checkpoint_trust()
        legend = self.results.set_overlay(s.overlay, s.opacity)
        s.legend = legend.as_state() if legend else None
        self.results.show_preset(s.preset)
        self.results.set_segmentation_visible(s.show_seg)
        self.slicer_app.display_manager.reset_views()
        for view in self.slicer_app.view_manager.get_threed_views():
            view.reset_camera()
        centre = self.results.centre_on_tumour()  # the sagittal view would otherwise stay at the midline
        s.view_centre = {"ras": centre, "slices": self.results.slice_centres()} if centre else None
        s.slice_labels = self.results.slice_labels()
        self._render_all()
        s.loaded_case = summary.get("case", {}).get("id", out_dir.name)
        s.progress_text = f"showing {s.loaded_case}" + _preprocessing_note(summary)

    def _clear_results(self) -> None:
        self.results.clear()
        s = self.state
        s.loaded_case, s.volumes, s.metrics, s.evidence, s.legend = "", [], [], [], None
        s.review, s.review_focus, s.trust = [], None, None
        s.overlay_items, s.overlay = [{"title": "None", "value": "none"}], "none"
        s.progress_text = ""
        self._render_all()

    def _on_review_jump(self, row=None):
        """A row of "where to look" clicked: the slice views centred on that region, the entropy overlay shown."""
        try:
            row = int(row)
        except (TypeError, ValueError):
            return None
        focus = self.results.jump_to_region(row)
        if focus is None:
            return None
        s = self.state
        with s:
            if any(i["value"] == "entropy" for i in s.overlay_items):  # the uncertainty preset
                legend = self.results.set_overlay("entropy", s.opacity)
                s.legend = legend.as_state() if legend else None
                s.overlay = "entropy"
            s.review_focus = focus
        self._render_all()
        return focus

    def _on_overlay(self, overlay, **_):
        legend = self.results.set_overlay(overlay, self.state.opacity)
        self.state.legend = legend.as_state() if legend else None
        self._render_all()

    def _on_preset(self, preset, **_):
        if preset in VIEW_PRESETS:
            self.results.show_preset(preset)
            self._render_all()


def _preprocessing_note(summary: dict) -> str:
    """What the page says when a raw case went through the clinical preprocessing (issue 26)."""
    clinical = summary.get("preprocessing_clinical") or {}
    if clinical.get("mode") != "full":
        return ""
    return (f" (raw scans preprocessed: co-registered to the T1ce, brain-extracted "
            f"({(clinical.get('brain_extraction') or {}).get('method', '?')}), analysed in "
            f"{(clinical.get('atlas') or {}).get('name', 'atlas')} space; results on the T1ce grid)")
