"""The ``videozoo`` command line (also ``python -m videozoo``).

:mod:`~videozoo.cli.parser` declares the options (shared groups once), :mod:`~videozoo.cli.commands`
runs each command on the task road, :mod:`~videozoo.cli.render` formats what is printed, and
:mod:`~videozoo.cli.exits` turns an error into one line and an exit code:

====  ==============================================================================================
0     success
1     unexpected error (a bug: run again with ``--debug`` and report the traceback)
2     bad command-line usage
3     unknown model or weights name
4     a video could not be read (missing, no video stream, corrupt, truncated); the others were
      still classified
5     weights could not be downloaded, or a checkpoint file could not be loaded
6     export failed, or the exported graph's outputs differ from eager (nothing was written)
7     an output could not be written (no such folder, a file in its place, no permission, disk full);
      checked before any video is read where the path is known
130   interrupted (Ctrl-C)
====  ==============================================================================================
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from videozoo.cli.exits import (
    EXIT_CODES,
    EXIT_ERROR,
    EXIT_EXPORT,
    EXIT_INTERRUPTED,
    EXIT_OUTPUT,
    EXIT_OK,
    EXIT_UNKNOWN,
    EXIT_USAGE,
    EXIT_VIDEO,
    EXIT_WEIGHTS,
    error_line,
    exit_code,
)
from videozoo.cli.parser import build_parser

__all__ = [
    "main", "build_parser", "EXIT_CODES", "EXIT_OK", "EXIT_ERROR", "EXIT_USAGE", "EXIT_UNKNOWN", "EXIT_VIDEO",
    "EXIT_WEIGHTS", "EXIT_EXPORT", "EXIT_OUTPUT", "EXIT_INTERRUPTED",
]  # fmt: skip


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code (the console script exits with it)."""
    from videozoo.tasks.memory import reuse_freed_memory

    args = build_parser().parse_args(argv)
    reuse_freed_memory()  # this process runs models: keep activations' memory between forward passes
    try:
        return args.func(args)
    except KeyboardInterrupt:
        error_line("interrupted.")
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # `videozoo models | head`
        sys.stderr.close()
        return EXIT_OK
    except Exception as error:
        if args.debug:
            raise
        code, message = exit_code(error)
        error_line(message)
        return code
