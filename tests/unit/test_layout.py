"""The core stays usable without Ray: importing it must not import Ray."""

import subprocess
import sys


def test_core_and_objectives_do_not_import_ray() -> None:
    code = "import sys, engine, engine.cli, objectives; print('ray' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
