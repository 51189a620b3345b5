"""The module's GUI-only part (needs the Slicer application: qt, ctk, slicer.util dialogs).

- ``parameters``: the parameter node (``parameterNodeWrapper``), bound to the .ui by SlicerParameterName
- ``dialogs``: error dialogs for slots, the wait cursor, installing the analysis packages with confirmation
- ``panel``: the module panel (``Resources/UI/BrainTumorXAI.ui``): widget wiring and slots
- ``selftest``: ``BrainTumorXAITest``, the module's self-test

Decisions, texts and run bookkeeping are in the Qt-free ``BrainTumorXAILib.slicer_bridge`` (``session``,
``extension``, the Logic), which the test suite runs on the slicer-core wheel.  Nothing in the Lib
imports this package.
"""
