"""``python -m petranode`` is the ``petranode`` command."""

from petranode.cli import main

raise SystemExit(main())
