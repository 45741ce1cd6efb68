"""The core stays usable without Ray: importing it (and the CLI, and the objectives) must not
start or even import Ray. Which modules may import Ray at all, at import time or inside a
function, is an import-linter contract (pyproject.toml, run by `make lint`)."""

import subprocess
import sys


def test_core_and_objectives_do_not_import_ray() -> None:
    code = "import sys, engine, engine.cli, engine.client, objectives.users; print('ray' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
