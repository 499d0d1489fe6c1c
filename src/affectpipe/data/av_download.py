"""One downloader for the audio-visual datasets (RAVDESS, CREMA-D), parameterised by layout.

Every source ends the same way: `data/raw/<dataset>` in the dataset's official layout plus a
`manifest.csv` of every file taken (path, size, sha256). The synthetic look-alike and a local
folder (copied or symlinked, never modified, checked against the folder's own manifest when it
has one) are handled here for both; a dataset brings its `AVLayout`: which files of a folder are
its media, its published source (Zenodo zips, a GitHub LFS tree) and its look-alike generator.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

from affectpipe.data import fetch
from affectpipe.problems import files_under

FolderMode = Literal["copy", "symlink"]  # the source folder is never modified either way


class AVDownloadConfig(Protocol):
    """The keys every AV `download.<dataset>` section has; the rest are the layout's own."""

    source: str  # synthetic | folder | the dataset's published source
    path: str  # folder source; a dep of the download stage whatever the source
    folder_mode: FolderMode
    synthetic: Any  # the look-alike generator's config


@dataclass(frozen=True)
class AVLayout:
    """What the shared downloader needs to know about one dataset."""

    dataset: str  # as in params: download.<dataset>
    title: str  # as in messages: RAVDESS, CREMA-D
    folder_media: Callable[[Path, Any], list[Path]]  # (folder, cfg) -> its media in the layout
    expected: Callable[[Any], str]  # (cfg) -> what a folder source must hold, for the error
    remote: Callable[[Any, Path], list[Path]]  # (cfg, out_dir) -> the published source's files
    synthetic: Callable[[Any, Path], list[Path]]  # (synthetic cfg, out_dir) -> the look-alike
    tables: tuple[str, ...] = ()  # side files (CREMA-D's ratings), relative; taken when present
    # (cfg) -> where the published source's archives are kept (RAVDESS's zips), spared when the
    # output is emptied so an interrupted download resumes; None: the source keeps none
    archive_dir: Callable[[Any], Path] | None = None


def take_folder(
    cfg: AVDownloadConfig, layout: AVLayout, out_dir: Path, notes: list[str]
) -> list[Path]:
    """Copy or symlink the layout's media from the folder source into `out_dir`; a note names
    the source's other files, which are not taken."""
    src = fetch.source_folder(cfg.path, layout.dataset)
    files = layout.folder_media(src, cfg)
    if not files:
        holds = f"{layout.title} media ({layout.expected(cfg)})"
        raise fetch.no_release(src, layout.dataset, holds)
    files += [src / t for t in layout.tables if (src / t).is_file()]
    fetch.verify_against_manifest(src, files)
    fetch.start_clean(out_dir, None, src)  # only once the source is known to hold the release
    taken = set(files) | {src / fetch.MANIFEST}
    if left := [p.relative_to(src).as_posix() for p in files_under(src) if p not in taken]:
        shown = ", ".join(left[:5]) + (", ..." if len(left) > 5 else "")
        notes.append(f"{len(left)} files of {src} are not {layout.title} media of its layout "
                     f"({layout.expected(cfg)}) and are not taken: {shown}")  # fmt: skip
    return fetch.take_folder(src, out_dir, files, cfg.folder_mode)


def keep_selected(
    files: list[Path], cfg: AVDownloadConfig, layout: AVLayout, out_dir: Path
) -> list[Path]:
    """The look-alike writes its whole release; what `cfg` selects of it stays, as a folder
    source's would (CREMA-D's `folders: [AudioWAV]` gives the audio-only layout), and the rest
    is removed. Side tables stay."""
    selected = set(layout.folder_media(out_dir, cfg)) | {out_dir / t for t in layout.tables}
    for f in files:
        if f not in selected:
            f.unlink()
    return [f for f in files if f in selected]


def download(cfg: AVDownloadConfig, layout: AVLayout, out_dir: Path) -> list[str]:
    """Fill `out_dir` (data/raw/<dataset>) in the official layout, plus `manifest.csv`; returns
    notes for the console: the source folder's files not taken, each of the layout's side tables
    the source lacked.

    The synthetic set has its own `synthetic.seed`, tracked with this stage's params section,
    so a new top-level seed does not regenerate the raw data.
    """
    notes: list[str] = []
    if cfg.source == "folder":
        files = take_folder(cfg, layout, out_dir, notes)
    else:
        keep = layout.archive_dir(cfg) if layout.archive_dir is not None else None
        fetch.start_clean(out_dir, keep, None)
        if cfg.source == "synthetic":
            files = keep_selected(layout.synthetic(cfg.synthetic, out_dir), cfg, layout, out_dir)
        else:
            files = layout.remote(cfg, out_dir)
    fetch.write_manifest(out_dir, files)
    return notes + [
        f"the {cfg.source} source has no {t}: preprocessing records that, and what needs it is "
        "skipped"
        for t in layout.tables
        if not (out_dir / t).is_file()
    ]
