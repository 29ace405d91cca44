"""Unloading gives memory back: ten load / reply / unload cycles of the fp16 model grow the
process's resident memory by less than 5% of the model's size.

Run in a child process so that what other tests loaded does not blur the figure. A first
cycle warms up the libraries (imports, thread pools, caches sized once), as in
bench/bench_model_cycle.py; growth is measured from after it.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT

CYCLES = 10
CHILD = r"""
import gc, json, sys
import psutil
from loaders.settings import LoadSettings
from modules.model_manager import ModelManager
from modules.params import GenerationParams
from modules.scheduler import Scheduler

path, cycles = sys.argv[1], int(sys.argv[2])
prompt = "<|im_start|>user\nTell me the capital of France.<|im_end|>\n<|im_start|>assistant\n"
manager = ModelManager(Scheduler(), ".")
rss = []
for _ in range(cycles + 1):
    result = manager.load(path, LoadSettings(loader="Transformers", ctx_size=512, parallel=1))
    assert result.ok, result.message
    reply = manager.scheduler.submit(prompt, GenerationParams(do_sample=False, max_new_tokens=8)).result()
    assert reply.ok, reply.error
    manager.unload()
    gc.collect()
    rss.append(psutil.Process().memory_info().rss)
print(json.dumps(rss))
"""


def test_ten_fp16_load_unload_cycles_keep_less_than_5_percent_of_the_model():
    from tools.make_test_models import ensure_test_models

    folder = Path(ensure_test_models()["fp16"])
    model_size = sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())
    done = subprocess.run([sys.executable, "-c", CHILD, str(folder), str(CYCLES)], cwd=ROOT,
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    rss = json.loads(done.stdout.strip().splitlines()[-1])
    growth = rss[-1] - rss[0]
    steps = ", ".join(f"{(b - a) / 2**20:+.1f}" for a, b in zip(rss, rss[1:]))
    assert growth < 0.05 * model_size, (
        f"resident memory grew {growth / 2**20:.1f} MiB over {CYCLES} cycles "
        f"({growth / model_size:.1%} of the {model_size / 2**20:.0f} MiB model; MiB per cycle: {steps})")
