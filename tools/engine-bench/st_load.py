"""Loads every tensor of a Hugging Face folder's safetensors shards into numpy arrays, the way
transformers' loader reads a checkpoint (safetensors.safe_open, get_tensor for each key), and
prints one JSON line: {"load_s": ..., "tensors": ..., "bytes": ..., "shards": ...}.

load_s runs from just before the first shard is opened to after the last tensor is in memory
(imports are done before the clock starts). The shards are the files the folder's
model.safetensors.index.json names, or else every *.safetensors file in it.

Usage: python st_load.py FOLDER
"""

import json
import sys
import time
from pathlib import Path

from safetensors import safe_open


def shards(folder: Path) -> list[Path]:
    index = folder / "model.safetensors.index.json"
    if index.is_file():
        names = sorted(set(json.loads(index.read_text())["weight_map"].values()))
        return [folder / name for name in names]
    return sorted(folder.glob("*.safetensors"))


def main() -> int:
    if len(sys.argv) != 2:
        print("usage: st_load.py FOLDER", file=sys.stderr)
        return 2
    folder = Path(sys.argv[1])
    start = time.perf_counter()
    files = shards(folder)
    if not files:
        print(f"st_load.py: no safetensors shards in {folder}", file=sys.stderr)
        return 1
    tensors = 0
    total = 0
    keep = []
    for path in files:
        with safe_open(path, framework="numpy") as f:
            for key in f.keys():
                array = f.get_tensor(key)
                tensors += 1
                total += array.nbytes
                keep.append(array)
    elapsed = time.perf_counter() - start
    print(
        json.dumps(
            {
                "folder": str(folder),
                "load_s": round(elapsed, 4),
                "tensors": tensors,
                "bytes": total,
                "shards": len(files),
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
