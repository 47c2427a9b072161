"""The cohort-file ``model:`` section every end-to-end test uses: the tiny random CLIP, on the CPU.

Importable from any test module (``pythonpath = ["tests"]`` in pyproject's pytest settings).
"""

TINY_MODEL = """model:
  tiny: true
  clip_weights: random
  prompt_weights: random
  image_size: 56
  feature_layers: [2, 4]
  dpam_layers: 2
  device: cpu
  batch_size: 8
"""
