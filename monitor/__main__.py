"""``python -m monitor`` runs the ``santinel`` command."""

from monitor.cli import main

raise SystemExit(main())
