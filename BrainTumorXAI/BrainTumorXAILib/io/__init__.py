"""Case files (finding, loading and validating, writing NIfTI), voxel grids, label conventions, and the network
grid: brain mask and intensity normalisation, crop/pad/reorientation with its exact inverse."""
