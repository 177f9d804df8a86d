"""`python -m costwarden.agent.cli`: the same entry point as the `costwarden` console script."""

import sys

from costwarden.agent.cli.main import main

sys.exit(main())
