"""Discovery throughput: N header-only DICOM files (realistic CT headers, 32x32 pixels) -> files/s.

    python bench/discovery_bench.py --files 20000 [--workers 1] [--keep DIR]

Files are spread over studies of 200-slice series in nested folders, like a PACS export.
discover() reads headers only (stop_before_pixels), so pixel size does not matter.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
from pydicom.dataset import FileDataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

from medzsad.io.discovery import discover

SLICES_PER_SERIES = 200
SERIES_PER_STUDY = 3


def _template() -> FileDataset:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CTImageStorage
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = generate_uid()
    ds = FileDataset("bench", {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID = CTImageStorage
    ds.Modality = "CT"
    ds.PatientName = "Bench^Patient"
    ds.PatientID = "BENCH"
    ds.StudyDescription = "CT HEAD WO"
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    ds.PixelSpacing = [0.5, 0.5]
    ds.SliceThickness = "1.0"
    ds.Rows = ds.Columns = 32
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 1
    ds.RescaleSlope = "1"
    ds.RescaleIntercept = "-1024"
    ds.PixelData = np.zeros((32, 32), np.int16).tobytes()
    return ds


def make_files(root: Path, n: int) -> None:
    ds = _template()
    made = 0
    study = 0
    while made < n:
        ds.StudyInstanceUID = generate_uid()
        for s in range(SERIES_PER_STUDY):
            ds.SeriesInstanceUID = generate_uid()
            ds.SeriesNumber = s + 1
            ds.SeriesDescription = f"AXIAL {s + 1}"
            folder = root / f"P{study:05d}" / f"S{s}"
            folder.mkdir(parents=True, exist_ok=True)
            for k in range(min(SLICES_PER_SERIES, n - made)):
                ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
                ds.InstanceNumber = k + 1
                ds.ImagePositionPatient = [0, 0, float(k)]
                ds.save_as(folder / f"IM{k:05d}", enforce_file_format=True)
                made += 1
            if made >= n:
                return
        study += 1


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--files", type=int, default=20000)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--keep", type=Path, default=None, help="reuse/keep the files in this folder")
    args = ap.parse_args()
    root = args.keep or Path(tempfile.mkdtemp(prefix="medzsad-bench-"))
    try:
        if not any(root.rglob("IM*")):
            t0 = time.perf_counter()
            make_files(root, args.files)
            print(f"wrote {args.files} files in {time.perf_counter() - t0:.1f}s to {root}")
        t0 = time.perf_counter()
        found = discover(root, workers=args.workers)
        dt = time.perf_counter() - t0
        n_series = sum(len(s.series) for s in found)
        print(
            f"discover: {found.n_files} files, {len(found.studies)} studies, {n_series} series, "
            f"{len(found.skipped)} skipped in {dt:.2f}s = {found.n_files / dt:.0f} files/s "
            f"(workers={args.workers}, {platform.processor() or platform.machine()}, {os.cpu_count()} cpus, "
            f"python {platform.python_version()})"
        )
    finally:
        if args.keep is None:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
