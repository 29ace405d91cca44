"""Unloading really frees memory: cycle through the three formats and watch RSS.

Loads the default GGUF, the fp16 folder and the GPTQ folder in turn through the model
manager (what the Model tab does), ten times, and reports the process's resident memory
after each cycle with nothing loaded. Target: growth over the ten cycles under 5% of the
largest model's size.

    .venv/bin/python bench/bench_model_cycle.py [--cycles 10] [--only gguf|fp16|gptq]

--only cycles one format alone (to see which loader keeps memory); the results file is
written only for the full three-format run.
"""
from __future__ import annotations

import argparse
import gc
import os
import platform
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import psutil  # noqa: E402

from loaders.settings import LoadSettings  # noqa: E402
from modules.model_manager import ModelManager  # noqa: E402
from modules.params import GenerationParams  # noqa: E402
from modules.scheduler import Scheduler  # noqa: E402
from tools.make_test_models import ensure_test_models  # noqa: E402

PROMPT = "<|im_start|>user\nTell me the capital of France.<|im_end|>\n<|im_start|>assistant\n"


def folder_size(path: Path) -> int:
    return path.stat().st_size if path.is_file() else sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cycles", type=int, default=10)
    parser.add_argument("--only", choices=["gguf", "fp16", "gptq"])
    args = parser.parse_args()

    folders = ensure_test_models()
    formats = {"gguf": ROOT / "models" / "SmolLM2-135M-Instruct.Q4_1.gguf",
               **{name: Path(p) for name, p in folders.items()}}
    models = [formats[args.only]] if args.only else list(formats.values())
    manager = ModelManager(Scheduler(), ROOT / "models")
    process = psutil.Process()
    load_before = os.getloadavg()
    rows = []
    for cycle in range(args.cycles + 1):         # cycle 0 warms up the libraries
        for model in models:
            result = manager.load(str(model), LoadSettings(ctx_size=512, parallel=1))
            assert result.ok, result.message
            reply = manager.scheduler.submit(PROMPT, GenerationParams(do_sample=False, max_new_tokens=8)).result()
            assert reply.ok, reply.error
        manager.unload()
        gc.collect()
        rows.append(process.memory_info().rss)
    largest = max(folder_size(m) for m in models)
    growth = rows[-1] - rows[0]
    met = growth < 0.05 * largest
    lines = ["# Model switching: resident memory after each cycle", "",
             f"Each cycle loads {', '.join(m.name for m in models)} in turn (a short greedy reply on each), "
             "then unloads; RSS measured with nothing loaded (bench/bench_model_cycle.py). "
             f"Python {platform.python_version()}; load average {load_before[0]:.1f} before, "
             f"{os.getloadavg()[0]:.1f} after (2 cores).", "",
             "| cycle | RSS (MiB) |", "| --- | --- |"]
    lines += [f"| {i}{' (warm-up)' if i == 0 else ''} | {rss / 2**20:.1f} |" for i, rss in enumerate(rows)]
    lines += ["", f"Growth from cycle 0 to {args.cycles}: **{growth / 2**20:+.1f} MiB**, "
              f"{growth / largest * 100:+.1f}% of the largest model ({largest / 2**20:.0f} MiB). "
              f"Target that applies to this file: growth under 5% of the largest model "
              f"({'met' if met else 'MISSED'}).", ""]
    report = "\n".join(lines)
    print(report)
    if args.only:
        return
    out = ROOT / "bench" / "results" / "model_cycle.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(report)


if __name__ == "__main__":
    main()
