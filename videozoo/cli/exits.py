"""Exit codes of the command line, and how an error becomes one line and a code."""

from __future__ import annotations

import sys

__all__ = [
    "EXIT_CODES", "EXIT_OK", "EXIT_ERROR", "EXIT_USAGE", "EXIT_UNKNOWN", "EXIT_VIDEO", "EXIT_WEIGHTS",
    "EXIT_EXPORT", "EXIT_OUTPUT", "EXIT_INTERRUPTED", "Fail", "error_line", "exit_code",
]  # fmt: skip

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_UNKNOWN = 3
EXIT_VIDEO = 4
EXIT_WEIGHTS = 5
EXIT_EXPORT = 6
EXIT_OUTPUT = 7
EXIT_INTERRUPTED = 130

EXIT_CODES = {
    EXIT_OK: "success",
    EXIT_ERROR: "unexpected error (a bug: run again with --debug and report the traceback)",
    EXIT_USAGE: "bad command-line usage",
    EXIT_UNKNOWN: "unknown model or weights name",
    EXIT_VIDEO: "a video could not be read (the others were still classified)",
    EXIT_WEIGHTS: "weights could not be downloaded, or a checkpoint file could not be loaded",
    EXIT_EXPORT: "export failed, or the exported graph's outputs differ from eager (nothing was written)",
    EXIT_OUTPUT: "an output could not be written (no such folder, a file in its place, no permission, disk full)",
    EXIT_INTERRUPTED: "interrupted",
}


class Fail(Exception):
    """An error with its exit code; printed as one line."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


def error_line(message: str) -> None:
    print(f"videozoo: error: {message}", file=sys.stderr)


def exit_code(error: BaseException) -> tuple[int, str]:
    """The exit code of an error that ended a command, and the line to print."""
    from videozoo.errors import CheckpointError, DownloadError, ExportError, VideoDecodeError

    if isinstance(error, Fail):
        return error.code, str(error)
    if isinstance(error, ExportError):
        return EXIT_EXPORT, str(error)
    if isinstance(error, VideoDecodeError):
        return EXIT_VIDEO, str(error)
    if isinstance(error, (DownloadError, CheckpointError)):
        return EXIT_WEIGHTS, str(error)
    if isinstance(error, OSError) and error.filename is not None:  # inputs fail as the errors above
        what = error.strerror or type(error).__name__
        return EXIT_OUTPUT, f"cannot write {error.filename}: {what}. Free some space, or choose another output path."
    detail = str(error).strip().splitlines()
    text = f"{type(error).__name__}: {detail[0]}" if detail else type(error).__name__
    return EXIT_ERROR, f"unexpected {text} (run again with --debug for the traceback)"
