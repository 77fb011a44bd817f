"""Entry point: ``python -m bench [--quick] [--db sqlite|postgres|both]``."""

from bench.run import main

raise SystemExit(main())
