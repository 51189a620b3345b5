"""Case folders (BraTS layouts), voxel grids, label conventions, preprocessing and its exact inverse."""
