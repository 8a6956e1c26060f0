"""``python -m videozoo``: the same command line as the ``videozoo`` console script."""

from videozoo.cli import main

raise SystemExit(main())
