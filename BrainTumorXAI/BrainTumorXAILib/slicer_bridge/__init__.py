"""Slicer side: the Qt-free Logic (BrainTumorXAILogic) split by job, the headless bootstrap, scene bundles.

- ``logic``: BrainTumorXAILogic, composed from the mixins below
- ``inputs``: loading cases, input checks, exporting the selected nodes for the analysis
- ``process``: the background analysis process (launch, poll, cancel)
- ``results``: an ``analyze`` results folder into the scene (run folders, segmentation, maps, table)
- ``display``: colour tables, overlays, legends, view presets
- ``bundle``: scene bundles (.mrb)
- ``session``: the module panel's decisions, run bookkeeping and status texts (``RunSession``)
- ``nodes``: NIfTI <-> volume node; ``constants``: attribute names, terminology, display defaults;
  ``extension``: the analysis packages (what to install, when to ask), the sample data source
- ``bootstrap``: a headless MRML scene on the slicer-core wheel; ``render``: off-screen screenshots;
  ``scene``: ``analyze --scene`` (a results folder as a .mrb)
"""
