"Shared by the benchmark scripts: write a result file atomically (dpl_nb.models.atomic_write); name the machine."
import json
import os
import platform
from pathlib import Path

import torch

from dpl_nb.models import atomic_write


def write_result(result: dict, out) -> Path:
    "Write `result` as JSON to `out` without ever leaving a half-written file"
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    return atomic_write(out, lambda tmp: Path(tmp).write_text(json.dumps(result, indent=1)))


def _cpu_model() -> str:
    "The CPU's model name and family from /proc/cpuinfo (Linux), else what `platform` knows"
    fields = {}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            fields.setdefault(key.strip(), value.strip())
    except OSError:
        pass
    name = fields.get("model name") or platform.processor() or "unknown CPU"
    family = fields.get("cpu family")
    return f"{name} (family {family})" if family else name


def machine() -> str:
    "Where a record was made: architecture, cores, CPU model and the SIMD level of torch's kernels"
    # float results can differ between CPUs whose kernels take other SIMD paths (AVX2, AVX512)
    return (f"{platform.machine()}, {os.cpu_count()} CPUs, {_cpu_model()}, "
            f"{torch.backends.cpu.get_cpu_capability()}")
