"""Preprocessing transforms (MONAI array/dict pairs), presets and the way back to the source grid."""
