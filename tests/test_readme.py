"""The README stays true: its model table is the generated one, its commands are the ones CI runs."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _model_table_module():
    spec = importlib.util.spec_from_file_location("model_table", ROOT / "docs" / "model_table.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_model_table_is_current() -> None:
    module = _model_table_module()
    text = (ROOT / "README.md").read_text()
    assert module.readme_with_table(text) == text, "README's model table is stale: run `python docs/model_table.py --write`"


def test_ci_runs_the_readme_test_command() -> None:
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    match = re.search(r"<!-- test-command -->\s*```(?:bash|sh)\n(.+?)\n```", readme, re.S)
    assert match, "README.md must mark its test command with <!-- test-command -->"
    assert "torch==2.13.0" in match.group(1) and "pytest" in match.group(1)
    assert "test-command" in ci  # .ci/run extracts and runs that exact block


def test_every_videozoo_name_the_docs_call_exists():
    """`videozoo.x.y(...)` in the README and docs/ is reachable after `import videozoo` (a stale module
    path in a snippet fails here, not on a user's machine)."""
    import re

    import videozoo

    texts = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    missing = []
    for path in texts:
        for dotted in sorted(set(re.findall(r"\bvideozoo((?:\.[A-Za-z_]\w*)+)\(", path.read_text()))):
            obj = videozoo
            for part in dotted.strip(".").split("."):
                obj = getattr(obj, part, None)
                if obj is None:
                    missing.append(f"{path.name}: videozoo{dotted}")
                    break
    assert missing == []
