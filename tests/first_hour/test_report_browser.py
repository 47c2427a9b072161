"""report.html in a real browser (headless Chromium): banner, study table, images, sorting, no errors.

The page of a smoke run (two scored studies, one broken) is loaded with a small probe script
inserted first in <head>: it records script errors and console.error calls, and after the load
event the naturalWidth of every overlay image, the study table rows, and the row order after a
click on the Score column. ``chromium --dump-dom`` returns the DOM with the probe's result. A
screenshot is kept as a CI artifact under reports/first_hour/ (the path is printed).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from medzsad.cli import EXIT_FAILED_STUDIES, main

from .conftest import TINY_MODEL, write_nifti

REPO_ROOT = Path(__file__).resolve().parents[2]
ARTIFACT_DIR = REPO_ROOT / "reports" / "first_hour"

PROBE = """<script>
window.__probe = {errors: []};
window.addEventListener("error", function (e) { window.__probe.errors.push(String(e.message)); });
(function () {
  var original = console.error;
  console.error = function () {
    window.__probe.errors.push(Array.prototype.join.call(arguments, " "));
    original.apply(console, arguments);
  };
})();
window.addEventListener("load", function () {
  var p = window.__probe;
  p.images = Array.prototype.map.call(document.querySelectorAll(".overlays img"), function (i) {
    return i.naturalWidth;
  });
  p.banner = !!document.getElementById("smoke-banner");
  var rows = function () {
    return Array.prototype.map.call(document.querySelectorAll("#studies tbody tr"), function (r) {
      return parseFloat(r.cells[2].getAttribute("data-v"));
    });
  };
  p.scores = rows();
  document.querySelectorAll("#studies thead th")[2].click();
  p.sorted = rows();
  p.failed = document.querySelectorAll("#failed tbody tr").length;
  var out = document.createElement("pre");
  out.id = "probe-result";
  out.textContent = JSON.stringify(p);
  document.body.appendChild(out);
});
</script>"""


def _chromium() -> str:
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        pytest.fail("chromium not found; bash scripts/test.sh installs it (apt-get install chromium)")
    return exe


def _browser(page: Path, tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    cmd = [
        _chromium(),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--allow-file-access-from-files",
        f"--user-data-dir={tmp_path / 'chromium-profile'}",
        "--window-size=1280,1600",
        "--virtual-time-budget=5000",
        *args,
        page.as_uri(),
    ]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def smoke_report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("browser")
    scans = [write_nifti(root / f"scan{i}.nii.gz", (24 + 4 * i, 20, 8)) for i in range(2)]
    (root / "broken.nii.gz").write_bytes(b"\x1f\x8b\x08\x00 not a scan")
    cohort = root / "c.yaml"
    paths = ", ".join(str(p) for p in [*scans, root / "broken.nii.gz"])
    cohort.write_text(
        f"name: browser\ninputs: {{paths: [{paths}]}}\n{TINY_MODEL}"
        f"output: {{dir: {root / 'out'}, formats: [nifti, png, html]}}\n"
    )
    assert main(["run", str(cohort), "-q"]) == EXIT_FAILED_STUDIES
    return root / "out" / "report.html"


def test_report_page_in_headless_chromium(smoke_report: Path, tmp_path: Path) -> None:
    text = smoke_report.read_text()
    probe_page = smoke_report.with_name("report_probe.html")
    probe_page.write_text(text.replace("<head>", "<head>\n" + PROBE, 1))
    proc = _browser(probe_page, tmp_path, "--dump-dom")
    assert proc.returncode == 0, proc.stderr[-2000:]
    found = re.search(r'<pre id="probe-result">(.*?)</pre>', proc.stdout, re.S)
    assert found, proc.stdout[-2000:]
    result = json.loads(found.group(1).replace("&quot;", '"').replace("&amp;", "&"))
    assert result["errors"] == []
    assert result["banner"] is True
    assert len(result["scores"]) == 2 and result["failed"] == 1
    assert result["scores"] == sorted(result["scores"], reverse=True)  # ranked by score
    assert result["sorted"] == sorted(result["scores"])  # one click on Score: ascending
    assert len(result["images"]) == 2 and all(w > 0 for w in result["images"])
    assert "Uncaught" not in proc.stderr


def test_report_screenshot_is_kept_as_an_artifact(smoke_report: Path, tmp_path: Path) -> None:
    ARTIFACT_DIR.mkdir(parents=True, exist_ok=True)
    shot = ARTIFACT_DIR / "report_screenshot.png"
    shot.unlink(missing_ok=True)
    proc = _browser(smoke_report, tmp_path, f"--screenshot={shot}")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert shot.is_file() and shot.stat().st_size > 10_000
    print(f"report.html screenshot: {shot}")
