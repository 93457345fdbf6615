# The entry point composes the core with the capabilities; see commands/__init__.py.
from commands import main

raise SystemExit(main())
