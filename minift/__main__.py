"""``python -m minift ...`` is the same as the ``minift`` console command."""
from minift.cli import main

raise SystemExit(main())
