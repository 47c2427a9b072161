"""Analysis of scored volumes: lesions from heat maps (pure numpy/scipy, no file formats)."""
