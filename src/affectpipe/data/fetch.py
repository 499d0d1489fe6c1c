"""Resumable HTTP downloads, verified by size and checksum, local source folders, and the
raw-data manifest.

Real archives are large (RAVDESS video zips are ~0.5 GB each) and connections drop, so a
download continues where it stopped (HTTP `Range`) from a `.part` file, and a file only takes
its final name once its size and checksum match what the source published. A mismatch is an
error naming the file: a corrupt archive must never reach preprocessing.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import shutil
import urllib.error
import urllib.request
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from tqdm import tqdm

from affectpipe.problems import InputProblem

CHUNK = 1 << 20
HASHES = ("md5", "sha1", "sha256")


class DownloadError(RuntimeError):
    """A download failed or did not verify; the message names the URL or file."""


@dataclass(frozen=True)
class Remote:
    """One file to fetch: where from, its name on disk and what it must look like."""

    url: str
    name: str
    size: int | None = None
    checksum: str | None = None  # "<algo>:<hex>", e.g. "md5:..." (Zenodo) or "sha256:..." (LFS)


def file_digest(path: Path, algo: str = "sha256") -> str:
    """Hex digest of a file, streamed."""
    if algo not in HASHES:
        raise ValueError(f"unknown hash '{algo}'; valid: {list(HASHES)}")
    h = hashlib.new(algo)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(CHUNK), b""):
            h.update(block)
    return h.hexdigest()


def verify(path: Path, size: int | None, checksum: str | None) -> None:
    """Raise `DownloadError` unless `path` has the expected size and checksum."""
    actual = path.stat().st_size
    if size is not None and actual != size:
        raise DownloadError(f"{path}: size {actual} bytes, expected {size}")
    if checksum:
        algo, _, want = checksum.partition(":")
        got = file_digest(path, algo)
        if got != want.lower():
            raise DownloadError(f"{path}: {algo} {got} does not match the published {want}")


def _open(url: str, start: int, timeout: float):
    req = urllib.request.Request(url, headers={"User-Agent": "affectpipe"})
    if start:
        req.add_header("Range", f"bytes={start}-")
    return urllib.request.urlopen(req, timeout=timeout)  # noqa: S310 - http(s) URLs from params


def _transfer(remote: Remote, part: Path, timeout: float) -> None:
    """Append the rest of `remote` to `part`; restart from zero if the server ignores Range."""
    start = part.stat().st_size if part.exists() else 0
    if remote.size is not None and start >= remote.size:
        return
    with _open(remote.url, start, timeout) as resp:
        resumed = start and resp.status == 206
        mode = "ab" if resumed else "wb"
        start = start if resumed else 0
        length = resp.headers.get("Content-Length")
        total = remote.size or (start + int(length) if length else None)
        with (
            open(part, mode) as f,
            tqdm(total=total, initial=start, unit="B", unit_scale=True, desc=remote.name) as bar,
        ):
            for block in iter(lambda: resp.read(CHUNK), b""):
                f.write(block)
                bar.update(len(block))


def download(remote: Remote, dest_dir: Path, retries: int = 3, timeout: float = 60.0) -> Path:
    """Fetch `remote` into `dest_dir`, resuming partial files; verified before it is renamed.

    A file already present under its final name is re-verified, not re-downloaded.
    """
    dest_dir.mkdir(parents=True, exist_ok=True)
    final = dest_dir / remote.name
    if final.exists():
        verify(final, remote.size, remote.checksum)
        return final
    part = dest_dir / (remote.name + ".part")
    last: Exception | None = None
    for _ in range(retries + 1):
        try:
            _transfer(remote, part, timeout)
        except urllib.error.HTTPError as e:
            if e.code == 416:  # nothing left to send: the .part file is complete
                break
            if e.code < 500:
                raise DownloadError(f"{remote.url}: HTTP {e.code} {e.reason}") from e
            last = e
            continue
        except (urllib.error.URLError, http.client.HTTPException, OSError) as e:
            last = e  # a cut connection: the next attempt resumes from the .part file
            continue
        if remote.size is None or part.stat().st_size >= remote.size:
            break
        last = ConnectionError(f"connection closed at {part.stat().st_size} of {remote.size} B")
    else:
        raise DownloadError(f"{remote.url}: failed after {retries + 1} attempts ({last})")
    try:
        verify(part, remote.size, remote.checksum)
    except DownloadError:
        part.unlink()  # a wrong file must not be resumed from
        raise
    os.replace(part, final)
    return final


def fetch_json(url: str, timeout: float = 60.0) -> object:
    """GET a JSON document (record metadata, repository trees)."""
    import json

    try:
        with _open(url, 0, timeout) as resp:
            return json.loads(resp.read().decode("utf-8"))
    except urllib.error.URLError as e:
        raise DownloadError(f"{url}: {e}") from e


def fetch_text(url: str, timeout: float = 60.0) -> str:
    """GET a small text document (e.g. a Git LFS pointer)."""
    try:
        with _open(url, 0, timeout) as resp:
            return resp.read().decode("utf-8")
    except urllib.error.URLError as e:
        raise DownloadError(f"{url}: {e}") from e


def extract_zip(
    archive: Path, out_dir: Path, keep: Callable[[str], bool] | None = None
) -> list[Path]:
    """Extract `archive` into `out_dir`, refusing members that would escape it (zip-slip).

    `keep(member_name)` selects members (e.g. some actors of a zip holding all of them).
    """
    out_dir = out_dir.resolve()
    names = []
    try:
        with zipfile.ZipFile(archive) as zf:
            for info in zf.infolist():
                target = (out_dir / info.filename).resolve()
                if not target.is_relative_to(out_dir):
                    raise InputProblem(archive, f"member '{info.filename}' escapes the folder")
                if info.is_dir() or info.filename.startswith("__MACOSX"):
                    continue
                if keep is not None and not keep(info.filename):
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                with zf.open(info) as src, open(target, "wb") as dst:
                    shutil.copyfileobj(src, dst, CHUNK)
                names.append(target)
    except zipfile.BadZipFile as e:
        raise InputProblem(archive, f"not a readable zip archive ({e})") from e
    return names


MANIFEST = "manifest.csv"  # beside the raw data: what download took
MANIFEST_NOTE = "the download's record of the files it took (manifest.csv)"


def write_manifest(root: Path, files: list[Path]) -> pd.DataFrame:
    """Write `root/manifest.csv`: every file taken, relative path, size and sha256."""
    rows = [
        {"path": f.relative_to(root).as_posix(), "size": f.stat().st_size, "sha256": file_digest(f)}
        for f in tqdm(sorted(files), desc="manifest", unit="file")
    ]
    table = pd.DataFrame(rows, columns=["path", "size", "sha256"])
    table.to_csv(root / MANIFEST, index=False)
    return table


def take_folder(src: Path, out_dir: Path, files: list[Path], mode: str = "copy") -> list[Path]:
    """Bring `files` (inside `src`) into `out_dir` by copy or symlink; `src` is never modified."""
    if mode not in ("copy", "symlink"):
        raise ValueError(f"unknown folder mode '{mode}'; valid: ['copy', 'symlink']")
    taken = []
    for f in tqdm(sorted(files), desc=f"{mode} {src.name}", unit="file"):
        dst = out_dir / f.relative_to(src)
        dst.parent.mkdir(parents=True, exist_ok=True)
        if mode == "copy":
            shutil.copy2(f, dst)
        else:
            dst.symlink_to(f.resolve())
        taken.append(dst)
    return taken


def verify_against_manifest(src: Path, files: list[Path]) -> None:
    """If `src` carries a manifest.csv (path, size, sha256), check every listed file against it."""
    manifest = src / "manifest.csv"
    if not manifest.exists():
        return
    table = pd.read_csv(manifest)
    listed = {row.path: row for row in table.itertuples()}
    for f in tqdm(files, desc="verify", unit="file"):
        row = listed.get(f.relative_to(src).as_posix())
        if row is None:
            continue
        try:
            verify(f, int(row.size), f"sha256:{row.sha256}")
        except DownloadError as e:
            raise InputProblem(f, f"does not match {manifest} ({e})") from e


def check_source_path(path: str, dataset: str) -> None:
    """A config check of `download.<dataset>.path`: the download stage depends on that folder in
    dvc.yaml (whatever the source, as DVC cannot skip a dep), so it must name one DVC can hash."""
    if not path.strip():
        raise ValueError(
            f"download.{dataset}.path is empty: name a folder (the default: "
            f"data/sources/{dataset}, where the release goes)"
        )
    if path.startswith("~"):
        raise ValueError(
            f"download.{dataset}.path '{path}': write the folder without '~' (DVC, which "
            f"depends on it, does not expand '~')"
        )


def start_clean(out_dir: Path, keep: Path | None, source: Path | None) -> None:
    """Empty `out_dir` but for `keep` (resumable archives, if they lie inside): a file of an
    earlier download must not outlive it, read by preprocessing but absent from the manifest.
    A `source` folder inside `out_dir` is refused, never emptied. Callers check a source
    before they call this, so a wrong source costs no earlier download."""
    if source is not None and source.resolve().is_relative_to(out_dir.resolve()):
        raise InputProblem(
            source,
            f"the source folder lies inside the download's output {out_dir}, which each "
            "download empties: move it (e.g. to data/sources/)",
        )
    out_dir.mkdir(parents=True, exist_ok=True)
    for entry in out_dir.iterdir():
        if keep is not None and keep.resolve().is_relative_to(entry.resolve()):
            continue  # the archives, or the folder holding them
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()


def source_folder(path: str, dataset: str) -> Path:
    """The local source folder `download.<dataset>.path`, which must exist."""
    src = Path(path)
    if not src.is_dir():
        raise InputProblem(src, f"download.{dataset}.path is not a folder")
    return src


def no_release(src: Path, dataset: str, holds: str) -> InputProblem:
    """The error of a source folder without the data in it (the default placeholder, say)."""
    return InputProblem(
        src,
        f"no {holds} in this folder: put the dataset's release here, or set "
        f"download.{dataset}.path to the folder holding it",
    )
