from videozoo.cli.commands import (  # noqa: F401  (temporary while the command line is split)
    EXIT_CODES, EXIT_ERROR, EXIT_EXPORT, EXIT_INTERRUPTED, EXIT_OK, EXIT_UNKNOWN, EXIT_USAGE, EXIT_VIDEO,
    EXIT_WEIGHTS, build_parser, main,
)
