"""The README's HTTP client example works when pasted, against a live Serve app."""

from __future__ import annotations

from pathlib import Path

import yaml

from engine import parse_spec
from engine.offline import explore, run_local
from tests.integration.conftest import Served
from tests.unit.test_readme import python_blocks


def test_the_client_example_runs_as_pasted(served: Served, tmp_path: Path) -> None:
    others = ("create_variant(", ".retrain(")  # the A/B and lifecycle walkthroughs (their own tests)
    (example,) = [b for b in python_blocks() if "FrontierClient(" in b and not any(o in b for o in others)]
    assert '"http://127.0.0.1:8000"' in example  # the address `serve run configs/serve.yaml` uses
    data = yaml.safe_load(Path("configs/vectorize.yaml").read_text())
    vectorize = parse_spec({**data, "budget": {"trials": 4}})
    explore(vectorize, tmp_path / "vectorize", runner=run_local, progress=False, store=served.store_url)
    namespace: dict[str, object] = {}
    code = example.replace('"http://127.0.0.1:8000"', repr(served.base))
    exec(compile(code, "README.md", "exec"), namespace)
    client = namespace["client"]
    assert client.profile("genai", "alice")["samples"] == 1  # type: ignore[attr-defined]
    assert len(client.pareto("vectorize")["front"]) >= 1  # type: ignore[attr-defined]
