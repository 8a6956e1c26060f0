"""Write the parity fixtures from the reference implementations. Run in the side environment only:

    ~/ref-env/bin/python tests/parity/make_fixtures.py [NAME ...]

(the side environment has torchvision/pytorchvideo and videozoo installed with ``pip install -e . --no-deps``).
Each ``ref_<family>.py`` beside this file defines ``CASES: dict[str, Case]``. For every case this fills
the reference with the deterministic rule of ``common.py``, runs it on the seeded input and saves
keys, shapes, dtypes, integer-buffer checksums, the input's shape and seed and the reference output.
It then replays the fixture against videozoo and also checks ``Case.extra_shapes`` (e.g. the
published input size), which are too heavy or too large to store.
"""

from __future__ import annotations

import importlib
import sys
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from parity.common import FIXTURES, Case, fill_state_dict, make_input, relative_error, save_fixture  # noqa: E402


def all_cases() -> dict[str, Case]:
    cases: dict[str, Case] = {}
    for path in sorted(HERE.glob("ref_*.py")):
        module = importlib.import_module(f"parity.{path.stem}")
        cases.update(module.CASES)
    return cases


def reference_output(case: Case, model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    with torch.inference_mode():
        return (case.run(model, x) if case.run else model(x)).float()


def generate(name: str, case: Case) -> dict:
    torch.manual_seed(0)
    ref = case.factory().eval()
    sd = ref.state_dict()
    keys, shapes, dtypes = list(sd), [list(t.shape) for t in sd.values()], [str(t.dtype).split(".")[1] for t in sd.values()]
    ref.load_state_dict(fill_state_dict(keys, shapes, dtypes) | {k: v for k, v in sd.items() if not v.is_floating_point()})
    x = make_input(case.input_shape, seed=0)
    out = reference_output(case, ref, x)
    fixture = {
        "model": name,
        "kwargs": case.kwargs,
        "keys": keys,
        "shapes": shapes,
        "dtypes": dtypes,
        "int_checksums": {k: int(v.long().sum()) for k, v in sd.items() if not v.is_floating_point()},
        "wrap": case.wrap,
        "compare": case.compare,
        "input_shape": list(case.input_shape),
        "input_seed": 0,
        "output": out,
        "reference": f"torch {torch.__version__}",
        "weights": case.weights,
    }
    save_fixture(FIXTURES / f"{case.fixture_name or name}.pt", fixture)
    return {"ref": ref, "fixture": fixture}


def check_against_videozoo(name: str, case: Case, ref: torch.nn.Module, fixture: dict) -> None:
    """Replay in this environment at every shape, as the tests will at the stored one."""
    import videozoo

    from parity.replay import build_from_fixture, videozoo_output

    model = build_from_fixture(fixture)
    for shape in [case.input_shape, *case.extra_shapes]:
        x = make_input(shape, seed=1)
        t0 = time.perf_counter()
        ours = videozoo_output(model, fixture, x)
        t1 = time.perf_counter()
        theirs = reference_output(case, ref, x)
        t2 = time.perf_counter()
        err = relative_error(ours, theirs)
        status = "OK " if err <= 1e-4 else "BAD"
        print(f"  {status} {name} {list(shape)}: rel err {err:.2e} (videozoo {t1 - t0:.2f}s, reference {t2 - t1:.2f}s)")
    del videozoo


def check_published(name: str, case: Case) -> None:
    """Fill the reference of ``case`` and replay it against videozoo in memory, at every shape of the case,
    without writing a fixture: the ``ref_<family>.py --published`` checks at the published clip, whose
    fixtures would be large and slow to replay."""
    ref = case.factory().eval()
    sd = ref.state_dict()
    keys, shapes = list(sd), [list(t.shape) for t in sd.values()]
    dtypes = [str(t.dtype).split(".")[1] for t in sd.values()]
    ref.load_state_dict(fill_state_dict(keys, shapes, dtypes) | {k: v for k, v in sd.items() if not v.is_floating_point()})
    del sd
    fixture = {"model": name, "kwargs": case.kwargs, "keys": keys, "shapes": shapes, "dtypes": dtypes, "weights": case.weights}
    check_against_videozoo(name, case, ref, fixture | {"wrap": case.wrap, "compare": case.compare})


def family_main(argv: list[str], extra_cases: dict[str, Case], published_cases: dict[str, Case]) -> None:
    """A ``ref_<family>.py`` run as a module: ``--published [NAME ...]`` checks the published architectures
    in memory (:func:`check_published`); otherwise the fixtures of ``extra_cases`` (all, or those named) are
    written and checked. A key of ``extra_cases`` is the model's name, or the name, ``-`` and a tag (one
    model's several extra cases)."""
    names = [a for a in argv if not a.startswith("--")]
    if "--published" in argv:
        torch.set_grad_enabled(False)
        for name in names or list(published_cases):
            check_published(name, published_cases[name])
        return
    for key in names or list(extra_cases):
        case = extra_cases[key]
        name = key.partition("-")[0]
        made = generate(name, case)
        path = FIXTURES / f"{case.fixture_name or name}.pt"
        print(f"{path.stem}: {len(made['fixture']['keys'])} tensors, {path.stat().st_size / 1e3:.0f} kB")
        check_against_videozoo(name, case, made["ref"], made["fixture"])


def main(argv: list[str]) -> None:
    cases = all_cases()
    names = argv or list(cases)
    for name in names:
        case = cases[name]
        made = generate(name, case)
        path = FIXTURES / f"{case.fixture_name or name}.pt"
        print(f"{name}: {len(made['fixture']['keys'])} tensors, {path.stat().st_size / 1e3:.0f} kB")
        try:
            check_against_videozoo(name, case, made["ref"], made["fixture"])
        except ImportError as e:
            print(f"  (videozoo check skipped: {e})")


if __name__ == "__main__":
    main(sys.argv[1:])
