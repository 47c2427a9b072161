"""3D Slicer's own MRML storage nodes (slicer-core wheel, headless) load what we write.

Every voxel is compared in RAS, never by array index: Slicer may flip an axis of a left-handed
affine. The reference geometry is independent of medzsad: SimpleITK's reading of the DICOM series
(Slicer's archetype reader would not sort a shuffled series) or nibabel's reading of a NIfTI source.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import SimpleITK as sitk
import slicer  # the slicer-core wheel (dev extra); never the unrelated PyPI package "slicer"
import vtk
from vtk.util.numpy_support import vtk_to_numpy

from medzsad.io.volume import LPS_TO_RAS, SourceInfo, Volume
from medzsad.report.review_outputs import write_review_outputs
from medzsad.report.slicer_bundle_script import slicer_script


@dataclasses.dataclass(frozen=True)
class Reference:
    """Reference grid: voxel -> RAS, and the expected arrays on it (``(I, J, K)``)."""

    ijk_to_ras: np.ndarray
    scan: np.ndarray
    heat: np.ndarray
    mask: np.ndarray


def _read(node_class: str, storage_class: str, path: Path):
    scene = slicer.vtkMRMLScene()
    node = scene.AddNewNodeByClass(node_class)
    storage = scene.AddNewNodeByClass(storage_class)
    storage.SetFileName(str(path))
    assert storage.ReadData(node) == 1, f"Slicer could not read {path}"
    return node


def _matrix(m) -> np.ndarray:
    return np.array([[m.GetElement(r, c) for c in range(4)] for r in range(4)])


def _volume_voxels(path: Path, node_class: str = "vtkMRMLScalarVolumeNode") -> tuple[np.ndarray, np.ndarray]:
    node = _read(node_class, "vtkMRMLVolumeArchetypeStorageNode", path)
    image = node.GetImageData()
    dims = image.GetDimensions()
    arr = vtk_to_numpy(image.GetPointData().GetScalars()).reshape(dims[::-1]).transpose(2, 1, 0)
    m = vtk.vtkMatrix4x4()
    node.GetIJKToRASMatrix(m)
    return arr, _matrix(m)


def _segment_voxels(path: Path) -> tuple[np.ndarray, np.ndarray, str]:
    node = _read("vtkMRMLSegmentationNode", "vtkMRMLSegmentationStorageNode", path)
    segmentation = node.GetSegmentation()
    assert segmentation.GetNumberOfSegments() == 1
    segment = segmentation.GetNthSegment(0)
    image = segment.GetRepresentation("Binary labelmap")
    ext = image.GetExtent()
    dims = (ext[1] - ext[0] + 1, ext[3] - ext[2] + 1, ext[5] - ext[4] + 1)
    arr = vtk_to_numpy(image.GetPointData().GetScalars()).reshape(dims[::-1]).transpose(2, 1, 0)
    m = vtk.vtkMatrix4x4()
    image.GetImageToWorldMatrix(m)
    offset = np.eye(4)
    offset[:3, 3] = (ext[0], ext[2], ext[4])
    return (arr == segment.GetLabelValue()).astype(np.uint8), _matrix(m) @ offset, segment.GetName()


def _to_reference(ijk: np.ndarray, ijk_to_ras: np.ndarray, ref: Reference) -> np.ndarray:
    """Reference voxel index of each of Slicer's voxels ``ijk`` (``(N, 3)``), checked on-grid."""
    ras = np.c_[ijk, np.ones(len(ijk))] @ ijk_to_ras.T
    cont = ras @ np.linalg.inv(ref.ijk_to_ras).T
    idx = np.rint(cont[:, :3])
    assert np.abs(cont[:, :3] - idx).max() < 1e-3, "a voxel is off the reference grid"
    assert (idx >= 0).all() and (idx < np.array(ref.mask.shape)).all()
    return idx.astype(int)


def _check_mask(arr: np.ndarray, ijk_to_ras: np.ndarray, ref: Reference) -> None:
    idx = _to_reference(np.argwhere(arr > 0), ijk_to_ras, ref)
    assert len(idx) == int(ref.mask.sum()) > 0
    assert ref.mask[idx[:, 0], idx[:, 1], idx[:, 2]].all()


#: Heat maps are stored as uint16 with scl_slope 1/65535: Slicer must apply the scaling (values in [0, 1]).
HEAT_ATOL = 1.01 / 65535


def _check_values(
    arr: np.ndarray, ijk_to_ras: np.ndarray, expected: np.ndarray, ref: Reference, atol: float = 1e-6
) -> None:
    assert arr.size == expected.size
    all_ijk = np.argwhere(np.ones(arr.shape, bool))
    idx = _to_reference(all_ijk, ijk_to_ras, ref)
    np.testing.assert_allclose(
        arr[tuple(all_ijk.T)], expected[idx[:, 0], idx[:, 1], idx[:, 2]], rtol=0, atol=atol
    )


@pytest.fixture(scope="module")
def dicom_reference(dicom_study, series_lib) -> Reference:
    """SimpleITK's reading of the source series; expected mask from its own intensities."""
    reader = sitk.ImageSeriesReader()
    folder = str(dicom_study.series.folder)
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(folder, dicom_study.series.series_uid))
    img = reader.Execute()
    scan = sitk.GetArrayFromImage(img).transpose(2, 1, 0)
    lps = np.eye(4)
    lps[:3, :3] = np.reshape(img.GetDirection(), (3, 3)) * np.array(img.GetSpacing())
    lps[:3, 3] = img.GetOrigin()
    heat, blob = series_lib.blob_mask(scan.shape)
    mask = (blob.astype(bool) & (scan > np.median(scan))).astype(np.uint8)
    return Reference(LPS_TO_RAS @ lps, scan, heat, mask)


def test_dicom_study_files_in_slicer(dicom_study, dicom_reference: Reference) -> None:
    bundle = dicom_study.outputs.slicer
    ref = dicom_reference
    _check_values(*_volume_voxels(bundle.scan), ref.scan, ref)
    _check_values(*_volume_voxels(bundle.heatmap), ref.heat, ref, atol=HEAT_ATOL)
    _check_mask(*_volume_voxels(bundle.mask_labelmap, "vtkMRMLLabelMapVolumeNode"), ref)
    arr, ijk_to_ras, name = _segment_voxels(bundle.segmentation)
    assert name == "anomaly"
    _check_mask(arr, ijk_to_ras, ref)
    colors = _read("vtkMRMLColorTableNode", "vtkMRMLColorTableStorageNode", bundle.heatmap_colors)
    assert colors.GetNumberOfColors() == 256
    labels = _read("vtkMRMLColorTableNode", "vtkMRMLColorTableStorageNode", bundle.mask_colors)
    assert labels.GetNumberOfColors() == 256


def test_left_handed_nifti_source_in_slicer(tmp_path: Path, series_lib) -> None:
    t = np.deg2rad(10.0)
    rotation = np.array([[np.cos(t), -np.sin(t), 0.0], [np.sin(t), np.cos(t), 0.0], [0.0, 0.0, 1.0]])
    affine = np.eye(4)
    affine[:3, :3] = rotation @ np.diag([-0.7, 0.8, 2.5])  # left-handed: Slicer flips an axis
    affine[:3, 3] = (20.0, -30.0, 10.0)
    shape = (14, 10, 5)
    scan = np.random.default_rng(3).integers(-100, 300, shape).astype(np.int16)
    src = tmp_path / "scan.nii.gz"
    nib.save(nib.Nifti1Image(scan, affine), src)
    loaded = nib.load(src)
    heat, blob = series_lib.blob_mask(shape)
    volume = Volume(
        np.asarray(loaded.dataobj), loaded.affine, "CT", SourceInfo(paths=(str(src),), kind="nifti")
    )
    out = write_review_outputs(tmp_path / "study", volume, heat, blob, ["slicer"], threshold=0.5)
    ref = Reference(loaded.affine, scan, heat, blob)
    scan_arr, scan_m = _volume_voxels(out.slicer.scan)
    assert np.linalg.det(scan_m[:3, :3]) > 0 > np.linalg.det(loaded.affine[:3, :3])  # Slicer flipped
    _check_values(scan_arr, scan_m, scan, ref)
    _check_values(*_volume_voxels(out.slicer.heatmap), heat, ref, atol=HEAT_ATOL)
    _check_mask(*_volume_voxels(out.slicer.mask_labelmap, "vtkMRMLLabelMapVolumeNode"), ref)
    arr, ijk_to_ras, _ = _segment_voxels(out.slicer.segmentation)
    _check_mask(arr, ijk_to_ras, ref)


def test_loader_script_runs_in_a_headless_scene(dicom_study) -> None:
    bundle = dicom_study.outputs.slicer
    scene = slicer.vtkMRMLScene()
    red = scene.AddNewNodeByClass("vtkMRMLSliceNode", "Red")
    composite = scene.AddNewNodeByClass("vtkMRMLSliceCompositeNode")
    previous = getattr(slicer, "mrmlScene", None)
    slicer.mrmlScene = scene
    try:
        namespace: dict[str, object] = {}
        exec(compile(slicer_script(dicom_study.study_dir), "load_in_slicer.py", "exec"), namespace)
    finally:
        slicer.mrmlScene = previous
    heat, scan, colors = namespace["heat"], namespace["scan"], namespace["colors"]
    display = heat.GetDisplayNode()
    assert display.GetColorNodeID() == colors.GetID()
    assert (display.GetWindow(), display.GetLevel()) == pytest.approx((0.5, 0.75))
    assert composite.GetBackgroundVolumeID() == scan.GetID()
    assert composite.GetForegroundVolumeID() == heat.GetID()
    assert namespace["segmentation"].GetSegmentation().GetNthSegment(0).GetName() == "anomaly"
    point = [0.0, 0.0, 0.0]
    namespace["marker"].GetNthControlPointPosition(0, point)
    np.testing.assert_allclose(point, bundle.focus_ras, atol=1e-3)
    centre = _matrix(red.GetSliceToRAS())[:3, 3]
    np.testing.assert_allclose(centre, bundle.focus_ras, atol=1e-3)


def test_loader_script_opens_a_moved_study_and_loads_the_lesion_label_map(dicom_study, tmp_path) -> None:
    """The written script finds its files relative to itself; a copied study folder still opens."""
    import shutil

    from medzsad.report.slicer_bundle_script import write_slicer_script

    write_slicer_script(dicom_study.study_dir)
    moved = tmp_path / "elsewhere" / "study"
    shutil.copytree(dicom_study.study_dir, moved)
    script = moved / "slicer" / "load_in_slicer.py"
    text = script.read_text()
    assert str(dicom_study.study_dir) not in text.split("except NameError")[0]  # no absolute paths in FILES
    scene = slicer.vtkMRMLScene()
    previous = getattr(slicer, "mrmlScene", None)
    slicer.mrmlScene = scene
    try:
        namespace: dict[str, object] = {"__file__": str(script)}
        exec(compile(text, str(script), "exec"), namespace)
    finally:
        slicer.mrmlScene = previous
    files = namespace["FILES"]
    inside = [f for f in files.values() if not str(f).startswith(str(dicom_study.study_dir))]
    assert inside == list(files.values()) and all(Path(f).is_file() for f in inside)
    lesions = namespace["lesions"]
    assert lesions.IsA("vtkMRMLLabelMapVolumeNode")
    assert lesions.GetDisplayNode().GetColorNodeID() == namespace["mask_colors"].GetID()
    prefix = namespace["NAME_PREFIX"]
    assert namespace["scan"].GetName() == f"{prefix}scan" and lesions.GetName() == f"{prefix}lesion ids"


def test_a_loader_script_written_elsewhere_opens_the_study_it_was_made_for(dicom_study, tmp_path) -> None:
    """medzsad slicer STUDY -o /tmp/load.py: the script is not beside the files, it uses the bundle."""
    from medzsad.report.slicer_bundle_script import slicer_script

    script = tmp_path / "elsewhere" / "load.py"
    script.parent.mkdir()
    text = slicer_script(dicom_study.study_dir, output=script)
    scene = slicer.vtkMRMLScene()
    previous = getattr(slicer, "mrmlScene", None)
    slicer.mrmlScene = scene
    try:
        namespace: dict[str, object] = {"__file__": str(script)}
        exec(compile(text, str(script), "exec"), namespace)  # Slicer --python-script sets __file__
    finally:
        slicer.mrmlScene = previous
    files = namespace["FILES"]
    assert all(Path(f).is_file() and Path(f).is_relative_to(dicom_study.study_dir) for f in files.values())
    assert namespace["heat"].GetImageData() is not None
