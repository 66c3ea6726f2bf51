"""``python -m crmmigrator_gui`` behaves like the ``crmmigrator`` command."""

import sys

from crmmigrator_gui.launcher import main

sys.exit(main())
