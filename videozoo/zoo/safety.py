"""Checkpoint safety: read a file without running anything it carries.

Checkpoints are loaded with ``torch.load(..., weights_only=True)``; the only globals allowed beyond
torch's own are numpy's data-only ones (:func:`_numpy_data_globals`). A file that needs any other
global is refused and its payload never runs. ``.safetensors`` files (recognised by their content)
load with the safetensors package. The first bytes of a file tell a checkpoint from anything else (an
HTML error page saved under a checkpoint's name), which the store checks before keeping a download.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import re
import struct
import threading
import warnings
from pathlib import Path
from typing import Any

from videozoo.errors import CheckpointError

__all__ = ["load_checkpoint", "looks_like_checkpoint", "describe_head", "HEAD_LEN", "ZIP_MAGIC"]

ZIP_MAGIC = b"PK\x03\x04"  # torch.save zip format (the default since torch 1.6)



_PICKLE_MAGIC = b"\x80"  # legacy torch.save: a pickle stream starts with PROTO



_SAFETENSORS_MAX_HEADER = 100_000_000  # safetensors' own limit on the JSON header



HEAD_LEN = 64  # bytes of the body inspected before anything is written



# Messages of torch's weights-only unpickler that mean "this needs code we won't run".
_UNSAFE_PICKLE = re.compile(
    r"Unsupported global|GLOBAL \S+ whose module|unrecognized function"
    r"|Can only create new object|Can only build|must be imported to load"
)



_UNSAFE_GLOBAL = re.compile(r"GLOBAL (\S+)|but got <class '([^']+)'>")



# safe_globals adds to torch's process-wide allowlist and removes its entries on exit:
# loads in several threads at once must not remove each other's entries mid-load.
_LOAD_LOCK = threading.Lock()



def load_checkpoint(path: str | os.PathLike[str], *, downloaded: bool = False, mmap: bool = False) -> Any:
    """Load a checkpoint on CPU with ``torch.load(weights_only=True)``, or a ``.safetensors`` file's tensors.

    numpy scalars and dtypes in it (e.g. ``"epoch": np.int64(3)``) load too with
    torch >= 2.6, see :func:`_numpy_data_globals`.  Raises :class:`~videozoo.errors.CheckpointError`,
    naming the file, if it is not a torch checkpoint, is truncated or corrupt, or needs
    any other global to unpickle (refused; its payload never runs).  For a damaged file
    the message says to download it again if it was ``downloaded`` (the loader says so for a
    file in the checkpoint store), else to check or re-save it.  A missing file raises ``FileNotFoundError``.
    ``mmap`` maps a zip-format file's tensors instead of reading them (a look at what a file holds).
    """
    import torch

    path = Path(path)
    with open(path, "rb") as f:
        head = f.read(HEAD_LEN)
    remedy = _load_remedy(downloaded)
    if _is_safetensors(head):
        return _load_safetensors(path, remedy)
    if not looks_like_checkpoint(head):
        raise CheckpointError(f"{path} is not a PyTorch checkpoint (it starts with {describe_head(head)}). {remedy}")
    try:
        with _LOAD_LOCK, _numpy_allowed(torch), warnings.catch_warnings():
            # torch warns about any pickle protocol but 2; what it cannot read is an error below
            warnings.filterwarnings("ignore", message="Detected pickle protocol", category=UserWarning)
            return torch.load(path, map_location="cpu", weights_only=True, mmap=mmap and head.startswith(ZIP_MAGIC))
    except pickle.UnpicklingError as e:
        found = _UNSAFE_GLOBAL.search(str(e)) if _UNSAFE_PICKLE.search(str(e)) else None
        needed = [found.group(1) or found.group(2)] if found else _code_in_plain_pickle(path)
        if _UNSAFE_PICKLE.search(str(e)) or needed:
            what = f" ({', '.join(needed[:3])})" if needed else ""
            raise CheckpointError(
                f"{path} needs arbitrary code to load{what} and was refused: videozoo only loads checkpoints "
                f"with torch.load(weights_only=True) (plus numpy scalars and dtypes) and never unpickles untrusted "
                f"objects. Use a checkpoint that holds only tensors and plain containers, e.g. one written by "
                f"torch.save(model.state_dict(), path)."
            ) from None
        raise _corrupt(path, e, remedy, "invalid pickle data") from e
    except OSError:
        raise
    except Exception as e:  # torch raises RuntimeError, EOFError, ValueError, ... for damaged files
        raise _corrupt(path, e, remedy) from e



def _load_safetensors(path: Path, remedy: str) -> dict[str, Any]:
    """The tensors of a ``.safetensors`` file, on CPU (it holds tensors only, so nothing can run)."""
    try:
        from safetensors import SafetensorError
        from safetensors.torch import load_file
    except ImportError:
        raise CheckpointError(
            f"{path} is a safetensors file, and loading it needs the safetensors package: pip install safetensors"
        ) from None
    try:
        return load_file(path, device="cpu")
    except (SafetensorError, ValueError, RuntimeError) as e:
        raise _corrupt(path, e, remedy) from e



def _code_in_plain_pickle(path: Path) -> list[str]:
    """The globals a whole-file Python pickle (``pickle.dump``, not ``torch.save``) would import and call,
    read with ``pickletools`` (nothing runs); empty for anything that is not such a pickle."""
    import pickletools

    names: list[str] = []
    strings: list[str] = []
    try:
        with open(path, "rb") as f:
            for opcode, arg, _ in pickletools.genops(f):
                if isinstance(arg, str):
                    strings.append(arg)
                if opcode.name == "GLOBAL" and isinstance(arg, str):
                    names.append(arg.replace(" ", "."))
                elif opcode.name == "STACK_GLOBAL" and len(strings) >= 2:
                    names.append(f"{strings[-2]}.{strings[-1]}")
    except Exception:  # not a pickle from its first byte to its last: a damaged file
        return []
    return [n for n in dict.fromkeys(names) if not n.startswith(("torch.", "collections.OrderedDict"))]


def looks_like_checkpoint(head: bytes) -> bool:
    return head.startswith(ZIP_MAGIC) or head.startswith(_PICKLE_MAGIC) or _is_safetensors(head)



def _is_safetensors(head: bytes) -> bool:
    """A safetensors file: an 8-byte little-endian header length, then the JSON header."""
    if len(head) < 9:
        return False
    (size,) = struct.unpack("<Q", head[:8])
    return 2 <= size <= _SAFETENSORS_MAX_HEADER and head[8:9] == b"{"



def describe_head(head: bytes) -> str:
    if not head:
        return "nothing (it is empty)"
    text = " ".join(head[:40].decode("utf-8", errors="replace").split())
    if text.isprintable():
        return repr(text + ("..." if len(head) > 40 else ""))
    return repr(head[:16])



def _corrupt(path: Path, error: BaseException, remedy: str, detail: str | None = None) -> CheckpointError:
    if detail is None:  # first sentence of torch's message; the rest is boilerplate
        detail = str(error).strip().split(". ")[0].splitlines()[0][:160] if str(error).strip() else ""
    return CheckpointError(
        f"Could not load checkpoint {path}: the file is truncated or corrupt "
        f"({type(error).__name__}{': ' + detail if detail else ''}). {remedy}"
    )



def _load_remedy(downloaded: bool) -> str:
    """What to do about a damaged file: a downloaded one can be fetched again, a user's own cannot."""
    if downloaded:
        return "Delete it and download it again."
    return (
        "Check that it is a complete PyTorch checkpoint file (copied in full, written by torch.save); "
        "re-saving the weights with torch.save(model.state_dict(), path) gives one."
    )



def _numpy_allowed(torch: Any) -> contextlib.AbstractContextManager[Any]:
    """Allow :func:`_numpy_data_globals` for one load; what the user allowlisted already stays allowed."""
    if torch.__version__ < (2, 6):  # safe_globals and its (global, "module.name") pairs are torch 2.6's
        return contextlib.nullcontext()
    already = torch.serialization.get_safe_globals()  # safe_globals removes its entries on exit
    return torch.serialization.safe_globals([g for g in _numpy_data_globals() if g not in already])



def _numpy_data_globals() -> list[Any]:
    """The numpy globals :func:`load_checkpoint` allows: they only rebuild numbers and dtypes.

    Checkpoints written by training scripts (PySlowFast's among them) hold numpy scalars,
    e.g. ``"epoch": np.int64(3)`` or learning rates in the optimizer state, and dtypes.
    Unpickling those needs the scalar reconstructor, under both of its pickle names
    (numpy 1 writes ``numpy.core.multiarray.scalar``, numpy 2 ``numpy._core.multiarray.scalar``),
    ``numpy.dtype``, and the dtype classes of bool and of the integer, unsigned, float and
    complex types of every width (the unpickler sets their state).  Arrays, object, string,
    void and datetime dtypes and every other global stay refused.  Empty without numpy.
    """
    try:
        import numpy as np
    except ImportError:
        return []
    try:
        from numpy._core.multiarray import scalar  # numpy >= 2 (and 1.26's alias module)
    except ImportError:
        from numpy.core.multiarray import scalar
    dtype_classes = {type(np.dtype(code)) for code in "?bhilqBHILQefdgFDG"}  # bool, C ints, uints, floats, complex
    return [
        (scalar, "numpy.core.multiarray.scalar"),
        (scalar, "numpy._core.multiarray.scalar"),
        np.dtype,
        *sorted(dtype_classes, key=lambda t: t.__name__),
    ]
