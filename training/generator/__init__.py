"""On-the-fly training data for real MRI: domain-randomised synthetic cases, real cases, their mixture.

SynthSeg's idea (Billot et al., Medical Image Analysis 2023) applied to gliomas:
every sample draws a new anatomy deformation, new tumour, new per-tissue
intensities for every sequence, new blur / resolution / bias field / noise, so
the network cannot learn one scanner's look and must learn the contrasts that
carry the signal (enhancement on T1ce relative to T1, oedema bright on
FLAIR/T2, necrosis dark on T1ce).

- ``atlas``: tissue probability maps (CSF, GM, WM) on the network grid.
- ``tumour_labels``: tumour label maps of many kinds (ring-enhancing, solid,
  non-enhancing, multifocal, small and large) with mass effect.
- ``appearance``: per-label intensities per sequence and the image artefacts.
- ``synthetic``: one synthetic patch = atlas + deformation + tumour + appearance.
- ``real``: labelled real cases (BraTS layout or BRATS 2013) prepared as inference does.
- ``insertion``: generator tumours painted into real labelled brains, away from their own tumour.
- ``mixture``: the training dataset mixing sources by weight, with sequence dropout.
"""
