"Shared by the benchmark scripts: write a result file atomically (temp file in the same folder, then rename)."
import json
import os
import tempfile
from pathlib import Path


def write_result(result: dict, out) -> Path:
    "Write `result` as JSON to `out` without ever leaving a half-written file"
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", dir=out.parent, delete=False, suffix=".tmp") as f:
        json.dump(result, f, indent=1)
    os.replace(f.name, out)
    return out
