"""The AnomalyCLIP paper's medical results (ICLR 2024, Table 2), to compare our runs with."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["PaperResult", "PAPER_TABLE2"]


@dataclass(frozen=True)
class PaperResult:
    """One dataset's row of Table 2.

    Attributes:
        title: dataset name as printed in the paper.
        level: ``image`` (classification) or ``pixel`` (segmentation).
        columns: our metric keys of the two reported numbers.
        values: the paper's two numbers, in percent.
    """

    title: str
    level: str
    columns: tuple[str, str]
    values: tuple[float, float]

    @property
    def metric_titles(self) -> tuple[str, str]:
        """Human names of the two metrics."""
        return ("image AUROC", "image AP") if self.level == "image" else ("pixel AUROC", "pixel AUPRO")


_IMAGE = ("image_auroc", "image_ap")
_PIXEL = ("pixel_auroc", "pixel_aupro")

#: Benchmark name -> Table 2 of the AnomalyCLIP paper (MVTec-trained prompts, zero-shot).
PAPER_TABLE2: dict[str, PaperResult] = {
    "headct": PaperResult("HeadCT", "image", _IMAGE, (93.4, 91.6)),
    "brainmri": PaperResult("BrainMRI", "image", _IMAGE, (90.3, 92.2)),
    "br35h": PaperResult("Br35H", "image", _IMAGE, (94.6, 94.7)),
    "covid": PaperResult("COVID-19", "image", _IMAGE, (80.1, 58.7)),
    "isic": PaperResult("ISIC", "pixel", _PIXEL, (89.7, 78.4)),
    "colondb": PaperResult("CVC-ColonDB", "pixel", _PIXEL, (81.9, 71.3)),
    "clinicdb": PaperResult("CVC-ClinicDB", "pixel", _PIXEL, (82.9, 67.8)),
    "kvasir": PaperResult("Kvasir", "pixel", _PIXEL, (78.9, 45.6)),
    "endo": PaperResult("Endo", "pixel", _PIXEL, (84.1, 63.6)),
    "tn3k": PaperResult("TN3K", "pixel", _PIXEL, (81.5, 50.4)),
}
