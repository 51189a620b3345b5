"""The Slicer bridge (above the core, which never imports it): the Qt-free Logic (BrainTumorXAILogic) split by
job, the headless bootstrap, scene bundles.

- ``logic``: BrainTumorXAILogic, composed from the mixins below
- ``inputs``: loading cases, input checks, exporting the selected nodes for the analysis
- ``process``: the background analysis process (launch, poll, cancel)
- ``results``: an ``analyze`` results folder into the scene (run folders, segmentation, maps, table)
- ``display``: colour tables, overlays, legends, view presets
- ``bundle``: scene bundles (.mrb)
- ``session``: the module panel's decisions, run bookkeeping and status texts (``RunSession``)
- ``review``: the ranked review regions as a table, and the checkpoint's trust column
- ``checkpoint_info``: what a checkpoint can do without, read without torch; ``i18n``: ``tr()`` for messages
- ``nodes``: NIfTI <-> volume node; ``constants``: attribute names, terminology, display defaults;
  ``extension``: the analysis packages (what to install, when to ask), the sample data source
- ``bootstrap``: a headless MRML scene on the slicer-core wheel; ``render``: off-screen screenshots;
  ``mrb_from_results``: ``analyze --scene`` (a results folder as a .mrb; the command line calls it)

The Slicer application imports this package when it starts, before the analysis packages (torch, nibabel,
scipy, ...) may be installed: its modules import those, and the core modules that need them, inside the
functions that use them (Testing/python/test_layering.py holds the rule).
"""
