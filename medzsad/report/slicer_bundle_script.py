"""The one-command 3D Slicer loader of a study's bundle (``medzsad slicer STUDY_DIR``).

:func:`slicer_script` returns a small Python script for Slicer's interpreter. It uses only MRML
calls (storage nodes, display nodes, slice composite nodes), so it runs in the Slicer application
(``Slicer --python-script load.py`` or pasted into the Python console) and in a headless MRML scene
(how the tests run it with the ``slicer-core`` wheel).
"""

from __future__ import annotations

import json
from pathlib import Path

from medzsad.fileio import write_text
from medzsad.report.slicer_bundle import SlicerBundle, read_bundle, relative_files

__all__ = ["slicer_script", "write_slicer_script", "SCRIPT_NAME"]

SCRIPT_NAME = "load_in_slicer.py"

_TEMPLATE = """\
# medzsad: open one study in 3D Slicer.
#   Slicer --python-script {script_name}     (or paste into View > Python Console)
# Loads the scan, the anomaly heat map as a coloured overlay (window {lo:.3g}..{hi:.3g}), the
# anomaly segmentation, the lesion label map (lesion ids), and centres the slice views on the
# highest-scoring lesion. Paths are relative to this script's folder when it lies in the study's
# slicer/ folder (the study folder can move), else to the folder it was written for.
import os

import slicer

RELATIVE = {files}
try:
    HERE = os.path.dirname(os.path.abspath(__file__))
except NameError:  # pasted into the Python console
    HERE = ""
if not os.path.isfile(os.path.join(HERE, RELATIVE["heatmap"])):
    # pasted, or written elsewhere (medzsad slicer STUDY -o FILE): the bundle it was written for
    HERE = {home!r}
FILES = {{key: os.path.join(HERE, path) for key, path in RELATIVE.items()}}
HEAT_WINDOW = ({lo!r}, {hi!r})
FOCUS_RAS = {focus}
NAME_PREFIX = {prefix!r}  # "SMOKE RUN " when the results came from random weights


def _load(node_class, storage_class, path, name):
    scene = slicer.mrmlScene
    node = scene.AddNewNodeByClass(node_class, name)
    storage = scene.AddNewNodeByClass(storage_class)
    storage.SetFileName(path)
    if not storage.ReadData(node):
        raise RuntimeError("Slicer could not read " + path)
    node.SetAndObserveStorageNodeID(storage.GetID())
    if node.IsA("vtkMRMLDisplayableNode"):
        node.CreateDefaultDisplayNodes()
    return node


VOLUME = ("vtkMRMLScalarVolumeNode", "vtkMRMLVolumeArchetypeStorageNode")
scan = _load(*VOLUME, FILES["scan"], NAME_PREFIX + "scan")
heat = _load(*VOLUME, FILES["heatmap"], NAME_PREFIX + "anomaly heat")
COLORS = ("vtkMRMLColorTableNode", "vtkMRMLColorTableStorageNode")
colors = _load(*COLORS, FILES["heatmap_colors"], "heat colors")
SEGMENTATION = ("vtkMRMLSegmentationNode", "vtkMRMLSegmentationStorageNode")
segmentation = _load(*SEGMENTATION, FILES["segmentation"], NAME_PREFIX + "anomaly")
LABELMAP = ("vtkMRMLLabelMapVolumeNode", "vtkMRMLVolumeArchetypeStorageNode")
lesions = _load(*LABELMAP, FILES["mask_labelmap"], NAME_PREFIX + "lesion ids")
mask_colors = _load(*COLORS, FILES["mask_colors"], "lesion colors")
lesions.GetDisplayNode().SetAndObserveColorNodeID(mask_colors.GetID())

heat_display = heat.GetDisplayNode()
heat_display.SetAndObserveColorNodeID(colors.GetID())
heat_display.SetAutoWindowLevel(False)
heat_display.SetWindowLevelMinMax(*HEAT_WINDOW)
heat_display.SetThreshold(HEAT_WINDOW[0], 1.0e9)
heat_display.SetApplyThreshold(True)

for composite in slicer.mrmlScene.GetNodesByClass("vtkMRMLSliceCompositeNode"):
    composite.SetBackgroundVolumeID(scan.GetID())
    composite.SetForegroundVolumeID(heat.GetID())
    composite.SetForegroundOpacity(0.5)

if FOCUS_RAS is not None:
    marker = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLMarkupsFiducialNode", "top lesion")
    marker.AddControlPoint(FOCUS_RAS, "top lesion")
    for slice_node in slicer.mrmlScene.GetNodesByClass("vtkMRMLSliceNode"):
        slice_node.JumpSliceByCentering(*FOCUS_RAS)
"""


def _script_from_bundle(bundle: SlicerBundle, home: Path | None = None) -> str:
    # files of the study folder relative to the bundle (the folder can move), others absolute
    body = json.dumps(relative_files(bundle), indent=4)
    focus = "None" if bundle.focus_ras is None else repr([round(v, 4) for v in bundle.focus_ras])
    lo, hi = bundle.window
    prefix = "SMOKE RUN " if bundle.smoke else ""
    where = str(home if home is not None else bundle.folder)
    return _TEMPLATE.format(
        script_name=SCRIPT_NAME, home=where, files=body, lo=lo, hi=hi, focus=focus, prefix=prefix
    )


def slicer_script(study_dir: str | Path, output: str | Path | None = None) -> str:
    """Slicer Python script that loads the study's bundle.

    The files are found relative to the script's own folder when it lies in the bundle, so the
    script works wherever the study folder is moved; written elsewhere (``output``) or pasted into
    Slicer's console (no ``__file__``), it uses the bundle folder it was made for.

    Args:
        study_dir: A study output folder with a ``slicer/`` bundle, or the bundle folder itself.
        output: Also write the script to this file (atomically) when given.

    Returns:
        The script text.

    Raises:
        OutputError: No bundle, a bundle file is missing, or ``output`` cannot be written.
    """
    text = _script_from_bundle(read_bundle(study_dir))
    if output is not None:
        write_text(output, text)
    return text


def write_slicer_script(
    study_dir: str | Path, out: str | Path | None = None, *, home: str | Path | None = None
) -> Path:
    """Write :func:`slicer_script` to ``out`` (default ``<bundle>/load_in_slicer.py``); returns it.

    Args:
        study_dir: The study folder (or its bundle folder).
        out: Where to write the script.
        home: The bundle folder as it will be published (a study is written into a partial folder
            and renamed): what the script uses when it runs without ``__file__``.
    """
    bundle = read_bundle(study_dir)
    target = Path(out) if out is not None else bundle.folder / SCRIPT_NAME
    return write_text(target, _script_from_bundle(bundle, Path(home) if home is not None else None))
