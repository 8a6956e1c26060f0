"""The docs site stays true: its generated pages are the ones the code gives, and it builds strictly."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _gen_docs():
    spec = importlib.util.spec_from_file_location("gen_docs", ROOT / "docs" / "gen_docs.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_generated_pages_are_current() -> None:
    assert _gen_docs().stale() == [], "generated docs are stale: run `python docs/gen_docs.py --write`"


def test_cli_page_has_every_flag_default_and_exit_code() -> None:
    from videozoo.cli.exits import EXIT_CODES

    page = _gen_docs().cli_page()
    assert "| `--batch-size BATCH_SIZE`, `-b` | `8` | views per forward pass (default 8) |" in page
    assert "| `--dtype {fp32,bf16}` | `fp32` |" in page
    assert "| `--weights WEIGHTS`, `-w` | `DEFAULT` |" in page
    for command in ("classify", "models", "download", "info", "timeline", "extract", "export"):
        assert f"\n## {command}\n" in page
    for code, text in EXIT_CODES.items():
        assert f"| {code} | {text} |" in page


def test_model_page_has_metrics_recipe_file_and_load_snippet() -> None:
    page = _gen_docs().model_page("slow_r50")
    assert "## `Slow_R50_Weights.KINETICS400_V1` (default)" in page
    assert "| acc@1 | 74.58 |" in page and "| mAP | 34.72 |" in page
    assert "`SLOW_8x8_R50_ssv2.pyth`" in page and "segments: 8 frames" in page
    assert "reversed to BGR order" in page  # the SSv2 and Charades presets
    assert "model = videozoo.slow_r50(weights=weights).eval()" in page
    assert "videozoo classify video.mp4 --model slow_r50 --weights CHARADES_V1" in page


def test_site_builds_strictly_and_renders_the_generated_pages(tmp_path) -> None:
    pytest.importorskip("mkdocs")
    pytest.importorskip("mkdocstrings")
    site = tmp_path / "site"
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    run = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(ROOT / "mkdocs.yml"), "-d", str(site)],  # not -q: quiet mode hides the warnings --strict counts
        capture_output=True, text=True, cwd=ROOT, env=env, timeout=300,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    model = (site / "models" / "x3d_m" / "index.html").read_text()
    assert "75.94" in model and "X3D_M.pyth" in model
    assert re.search(r"videozoo</span><span[^>]*>\.</span><span[^>]*>x3d_m</span>", model), "the load snippet"
    cli = (site / "reference" / "cli" / "index.html").read_text()
    assert "--threshold" in cli and "<td>130</td>" in cli
    api = (site / "reference" / "api" / "index.html").read_text()
    assert "export_model" in api and "Raises" in api  # docstrings rendered by mkdocstrings
