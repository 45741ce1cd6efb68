"""Ctrl-C in the middle of `frontier explore`, then `--resume`: nothing finished is lost."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import yaml

BIN = Path(sys.executable).parent


def results_in(journal: Path) -> list[dict]:
    if not journal.exists():
        return []
    lines = journal.read_text().splitlines()
    return [json.loads(line) for line in lines if '"kind": "result"' in line]


def test_interrupted_exploration_resumes_without_losing_trials(tmp_path: Path) -> None:
    data = yaml.safe_load(Path("configs/zdt1.yaml").read_text())
    data.update(budget={"trials": 300}, concurrency=2)
    spec = tmp_path / "zdt1.yaml"
    spec.write_text(yaml.safe_dump(data))
    out = tmp_path / "out"
    cmd = [str(BIN / "frontier"), "explore", str(spec), "--out", str(out), "--no-progress"]

    run = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    journal = out / "events.jsonl"
    deadline = time.monotonic() + 300
    while len(results_in(journal)) < 20:
        assert run.poll() is None, run.communicate()[0]
        assert time.monotonic() < deadline, "no progress within 300 s"
        time.sleep(0.2)
    run.send_signal(signal.SIGINT)
    run.communicate(timeout=120)
    before = results_in(journal)
    assert 20 <= len(before) < 300, "the interruption came too late to test anything"

    resumed = subprocess.run([*cmd, "--resume"], capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    trials = pd.read_parquet(out / "trials.parquet")
    assert len(trials) == 300 and trials["trial_id"].is_unique
    kept = trials.set_index("trial_id").loc[[r["trial_id"] for r in before]]
    assert list(kept["metric.f1"]) == [r["metrics"]["f1"] for r in before]
