"""The core stays usable without Ray: importing it must not import Ray, and no module of
the core imports Ray later either (inside a function), but the Ray adapters, the CLI and
the simulation driver, which choose where work runs."""

import re
import subprocess
import sys
from pathlib import Path

ALLOWED = ("engine/ray/", "engine/cli.py", "engine/simulate.py")
RAY_IMPORT = re.compile(r"^\s*(?:from|import)\s+(?:ray|engine\.ray)\b", re.MULTILINE)


def test_core_and_objectives_do_not_import_ray() -> None:
    code = "import sys, engine, engine.cli, objectives; print('ray' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_no_core_module_imports_ray_even_inside_a_function() -> None:
    offenders = [
        str(path)
        for path in sorted(Path("engine").rglob("*.py"))
        if not str(path).startswith(ALLOWED) and RAY_IMPORT.search(path.read_text())
    ]
    assert offenders == []
