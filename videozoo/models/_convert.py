"""Publishers' checkpoint layouts -> ours: key renaming shared by every weights adapter.

An adapter (``Weights.state_dict_adapter``) unwraps the publisher's file and renames each key with
:func:`rename_keys`. A key no rule knows is an error, never dropped: a file of another network or
release fails loudly instead of loading half of itself.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from typing import Union

from torch import Tensor

__all__ = ["RenameRule", "rename_keys"]

#: ``(pattern, replacement)``: the pattern must match the whole key; the replacement is a template for
#: ``re.Match.expand`` (``r"layer\1.conv"``, ``r"\g<name>"``) or a function of the match.
RenameRule = tuple[str, Union[str, Callable[["re.Match[str]"], str]]]


def rename_keys(state: Mapping[str, Tensor], rules: Sequence[RenameRule], layout: str) -> dict[str, Tensor]:
    """``state`` with each key renamed by the first rule whose pattern matches it in full.

    Args:
        state: the publisher's state_dict.
        rules: the renaming, tried in order.
        layout: what the rules describe, for the error (e.g. ``"PyTorchVideo's X3D layout"``).

    Raises ``ValueError`` listing the keys no rule matches.
    """
    compiled = [(re.compile(pattern), replacement) for pattern, replacement in rules]
    out: dict[str, Tensor] = {}
    unknown = []
    for key, value in state.items():
        for pattern, replacement in compiled:
            m = pattern.fullmatch(key)
            if m is not None:
                out[m.expand(replacement) if isinstance(replacement, str) else replacement(m)] = value
                break
        else:
            unknown.append(key)
    if unknown:
        shown = ", ".join(unknown[:5]) + (f" and {len(unknown) - 5} more" if len(unknown) > 5 else "")
        raise ValueError(f"{len(unknown)} of its {len(state)} keys are not in {layout} ({shown})")
    return out
