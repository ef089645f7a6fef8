"Shared by the benchmark scripts: write a result file atomically (dpl_nb.models.atomic_write)."
import json
from pathlib import Path

from dpl_nb.models import atomic_write


def write_result(result: dict, out) -> Path:
    "Write `result` as JSON to `out` without ever leaving a half-written file"
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    return atomic_write(out, lambda tmp: Path(tmp).write_text(json.dumps(result, indent=1)))
