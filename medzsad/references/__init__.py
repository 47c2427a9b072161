"""Few-shot normal references: bank files (safetensors), reproducible choice of reference studies."""
