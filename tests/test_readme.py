"""The README stays true: its links resolve, its commands are the ones CI runs and the docs show."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_readme_links_to_files_that_exist() -> None:
    """The README is a landing page: every relative link in it names a file of the checkout."""
    readme = (ROOT / "README.md").read_text()
    targets = [t.split("#")[0] for t in re.findall(r"\]\(([^)\s]+)\)", readme) if "://" not in t and not t.startswith("#")]
    assert targets
    assert [t for t in targets if not (ROOT / t).exists()] == []


def test_the_docs_repeat_the_readme_commands_exactly() -> None:
    """Getting started shows the README's two commands, character for character."""
    readme = (ROOT / "README.md").read_text()
    start = (ROOT / "docs" / "index.md").read_text()
    for marker in ("classify-command", "test-command"):
        match = re.search(rf"<!-- {marker} -->\s*```bash\n(.+?)\n```", readme, re.S)
        assert match and f"```bash\n{match.group(1)}\n```" in start


def test_ci_runs_the_readme_test_command() -> None:
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    match = re.search(r"<!-- test-command -->\s*```(?:bash|sh)\n(.+?)\n```", readme, re.S)
    assert match, "README.md must mark its test command with <!-- test-command -->"
    assert "torch==2.13.0" in match.group(1) and "pytest" in match.group(1)
    assert "test-command" in ci  # .ci/run extracts and runs that exact block


def test_every_videozoo_name_the_docs_call_exists():
    """`videozoo.x(...)` in the README and docs/ (every page, generated ones included) is reachable after
    `import videozoo`, and `videozoo.a.b.f(...)` names a module that imports and a function in it (a stale
    module path in a snippet fails here, not on a user's machine)."""
    import importlib
    import re

    import videozoo

    def resolves(dotted: str) -> bool:
        parts = dotted.split(".")
        if len(parts) == 1:
            return hasattr(videozoo, parts[0])
        for cut in range(len(parts) - 1, 0, -1):  # the longest importable module, then attributes
            try:
                obj = importlib.import_module("videozoo." + ".".join(parts[:cut]))
            except ModuleNotFoundError:
                continue
            for part in parts[cut:]:
                obj = getattr(obj, part, None)
                if obj is None:
                    return False
            return True
        return False

    texts = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
    missing = [
        f"{path.relative_to(ROOT)}: videozoo{dotted}"
        for path in texts
        for dotted in sorted(set(re.findall(r"\bvideozoo((?:\.[A-Za-z_]\w*)+)\(", path.read_text())))
        if not resolves(dotted.strip("."))
    ]
    assert missing == []


def test_the_readme_counts_the_models_there_are() -> None:
    import videozoo

    readme = " ".join((ROOT / "README.md").read_text().split())
    weights = {t: sum(len(videozoo.get_model_weights(m)) for m in videozoo.list_models(task=t)) for t in videozoo.TASKS}
    count = {t: len(videozoo.list_models(task=t)) for t in videozoo.TASKS}
    stated = (
        f"{len(videozoo.list_models())} networks with {sum(weights.values())} published weights ({count['classification']} "
        f"classifiers with {weights['classification']} weights on Kinetics-400/710, Something-Something V2, Diving-48 and Charades; "
        f"{count['action_detection']} AVA action detectors; {count['person_detection']} person detectors; "
        f"{count['video_text']} video-text models)"
    )
    assert stated in readme
