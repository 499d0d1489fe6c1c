"""What a download stage took: every file with its size and SHA-256, so nothing goes unaccounted."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pandas as pd

MANIFEST = "manifest.csv"


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def write_manifest(root: Path, source: str) -> pd.DataFrame:
    """List every file under `root` (except the manifest itself) into `root/manifest.csv`."""
    rows = [
        {
            "path": p.relative_to(root).as_posix(),
            "bytes": p.stat().st_size,
            "sha256": sha256_file(p),
            "source": source,
        }
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.name != MANIFEST
    ]
    table = pd.DataFrame(rows, columns=["path", "bytes", "sha256", "source"])
    table.to_csv(root / MANIFEST, index=False)
    return table
