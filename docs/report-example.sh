#!/usr/bin/env bash
# The report in docs/report.png, from a clean start: two exploration runs of
# configs/genai.yaml (TPE, as the spec says, and random search), two prompt variants,
# 40 simulated users rating 12 times each, then `frontier report`, and a screenshot of the
# HTML page by headless Chromium (Debian's `chromium` package).
# Run from the repository root after `make .venv/.installed`: bash docs/report-example.sh
set -euo pipefail
PATH="$PWD/.venv/bin:$PATH"
out=${1:-results/report-example}
rm -rf "$out" && mkdir -p "$out"
store="sqlite:///$PWD/$out/store.db"
sed 's/^searcher: {name: tpe}/searcher: {name: random}/' configs/genai.yaml > "$out/genai-random.yaml"
frontier explore configs/genai.yaml --backend local --out "$out/tpe" --store "$store" --no-progress
frontier explore "$out/genai-random.yaml" --backend local --out "$out/random" --store "$store" --no-progress
frontier variants create genai plain --control --payload '{"template": "a {subject}"}' --store "$store"
frontier variants create genai vivid --payload '{"template": "a vivid {subject}"}' --store "$store"
frontier simulate configs/genai.yaml --users 40 --rounds 12 --store "$store" --out "$out/simulation" --no-progress
frontier report genai --store "$store" --out "$out"
chromium --headless --no-sandbox --hide-scrollbars --window-size=1000,6400 \
    --screenshot="$PWD/docs/report.png" "file://$PWD/$out/report.html"
python - <<'PY'  # crop the empty bottom of the window, and 256 colours are plenty for plots
import numpy as np
from PIL import Image

shot = Image.open("docs/report.png").convert("RGB")
ink = np.where(np.asarray(shot.convert("L")).min(axis=1) < 250)[0]
shot.crop((0, 0, shot.width, int(ink.max()) + 40)).quantize(256).save("docs/report.png", optimize=True)
PY
