"""The README's in-process Python example works when pasted (the HTTP client's example
runs against a live Serve app in tests/integration/test_readme_client.py)."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

README = Path(__file__).parents[2] / "README.md"


def python_blocks() -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", README.read_text(), re.MULTILINE | re.DOTALL)


def test_the_online_engine_example_runs_as_pasted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (example,) = [b for b in python_blocks() if "OnlineEngine(" in b]
    shutil.copytree(README.parent / "configs", tmp_path / "configs")
    (tmp_path / "results").mkdir()
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, object] = {}
    exec(compile(example, "README.md", "exec"), namespace)
    profile = namespace["engine"].profile("genai", "alice")  # type: ignore[attr-defined]
    assert profile["samples"] == 1  # the rating counted once; the duplicate and the metric did not
