"""The HTML page `dvc plots show` and `dvc plots diff` write, with vega, vega-lite and vega-embed
inline, so the plots render without a network (DVC's own page loads them from a CDN).

`.dvc/config` names the page (`plots.html_template`), so every `dvc plots` command uses it with
no flag. The page is committed (CI needs no Node.js); `python -m affectpipe.plots_page` (`make
plots-page`) rebuilds it byte for byte from the npm tarballs pinned in `LIBRARIES`, checking
each tarball's hash. The versions are the ones dvc-render's own page loads, so the specs DVC
emits (vega-lite v5) render as upstream. The page has DVC's `{plot_divs}` placeholder and no
`{scripts}` one, where DVC would put its CDN `<script src>` tags.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import subprocess
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

PAGE = Path(__file__).resolve().parents[2] / ".dvc" / "plots_page.html"


@dataclass(frozen=True)
class Library:
    """One npm package whose browser build the page embeds."""

    name: str
    version: str
    build: str  # the file jsdelivr serves for it (package.json `jsdelivr`)
    integrity: str  # the npm registry's sha512 of the tarball
    sha256: str  # of the build as the page embeds it (`inline_script`)


LIBRARIES: tuple[Library, ...] = (
    Library("vega", "5.20.2", "build/vega.min.js",
            "sha512-qmH7aD9GGPpssVdxL1xgcdxTbQzyRUeRR16Os385ymvQhiwCYQNA6"
            "+eXUPAZDTVLfk0RXu6Jzj6kUE5jQ80EVw==",
            "5f0ec89917912f9884ba428b7660407b8a1c01cc6b6cd6b7b0e17176213ff45b"),
    Library("vega-lite", "5.2.0", "build/vega-lite.min.js",
            "sha512-Yxcg8MvYfxHcG6BbkaKT0oVCIMIcE19UvqIsEwBmyd/7h2nzW7oRn"
            "ID81T8UrY7hpDrIr6wa2JADOT2dhGNErw==",
            "2453a1233877f1228dbd3293f6f89816a08187a28328541ddf064d5beafcae35"),
    Library("vega-embed", "6.18.2", "build/vega-embed.min.js",
            "sha512-wcDyQPE4J5aiCDc3/suH5RQDvrKkjuLkhzUcbOLwEkNF8/+pp17tS"
            "0JghzEvAPNRg+5aG1/N2ydixq8Lk3dOlg==",
            "9df7462e7bb85541b6138e1d01d97288a2b6f4f12efa15cecc2aa8f23b1a3274"),
)  # fmt: skip


@dataclass(frozen=True)
class Bundle:
    """A library's browser build (as embedded) and licence, as read from its tarball."""

    library: Library
    script: str
    licence: str


def library_label(lib: Library) -> str:
    return f"{lib.name}@{lib.version}"


def sri(data: bytes) -> str:
    """The npm `integrity` string of `data` (sha512, base64)."""
    return "sha512-" + base64.b64encode(hashlib.sha512(data).digest()).decode()


def read_bundle(lib: Library, tarball: bytes) -> Bundle:
    """The build and licence inside an npm tarball, after checking both are the pinned ones."""
    if sri(tarball) != lib.integrity:
        raise ValueError(f"{library_label(lib)}: tarball hash {sri(tarball)} is not the pinned "
                         f"{lib.integrity}")  # fmt: skip
    with tarfile.open(fileobj=io.BytesIO(tarball), mode="r:gz") as tar:

        def text(member: str) -> str:
            f = tar.extractfile(f"package/{member}")
            if f is None:
                raise ValueError(f"{library_label(lib)}: no file package/{member} in tarball")
            return f.read().decode("utf-8")

        bundle = Bundle(lib, inline_script(text(lib.build)), text("LICENSE").strip())
    if script_sha256(bundle.script) != lib.sha256:
        raise ValueError(f"{library_label(lib)}: {lib.build} is not the pinned build")
    return bundle


def script_sha256(script: str) -> str:
    return hashlib.sha256(script.encode("utf-8")).hexdigest()


def inline_script(js: str) -> str:
    """A build as an inline script body: without its source-map comment (the map is not
    shipped), and refusing anything that would end the `<script>` element or look like one of
    DVC's placeholders."""
    lines = [line for line in js.splitlines() if not line.startswith("//# sourceMappingURL=")]
    body = "\n".join(lines)
    for bad in ("</script", "{plot_divs}", "{scripts}", "{refresh_tag}"):
        if bad in body.lower():
            raise ValueError(f"the build contains '{bad}', which would break the page")
    return body


def render_page(bundles: list[Bundle]) -> str:
    """The template: DVC's page layout with each build inline and the licences at the end."""
    names = ", ".join(library_label(b.library) for b in bundles)
    scripts = "\n".join(
        f"<script>/* {library_label(b.library)} ({b.library.build}), BSD-3-Clause: licence at "
        f"the end of this page */\n{b.script}\n</script>"
        for b in bundles
    )
    licences = "\n".join(
        f"<!-- {library_label(b.library)} licence:\n{b.licence}\n-->" for b in bundles
    )
    return f"""<!DOCTYPE html>
<html>
<head>
<meta charset="utf-8">
{{refresh_tag}}
<title>DVC Plot</title>
<!-- Written by `python -m affectpipe.plots_page` (do not edit): {names} inline, so the plots
render offline. -->
{scripts}
<style>
table {{
    border-spacing: 15px;
}}
</style>
</head>
<body>
{{plot_divs}}
{licences}
</body>
</html>
"""


def npm_pack(lib: Library, dest: Path) -> bytes:
    """The library's tarball from the npm registry, through npm itself."""
    out = subprocess.run(
        ["npm", "pack", library_label(lib), "--json", "--pack-destination", str(dest)],
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    return (dest / json.loads(out.stdout)[0]["filename"]).read_bytes()


def main(out: Path = PAGE) -> None:
    """Rebuild the committed page from the pinned tarballs (needs npm and the registry)."""
    with tempfile.TemporaryDirectory() as tmp:
        bundles = [read_bundle(lib, npm_pack(lib, Path(tmp))) for lib in LIBRARIES]
    out.write_text(render_page(bundles), encoding="utf-8")
    print(f"wrote {out} ({out.stat().st_size // 1024} KiB)")


if __name__ == "__main__":
    main()
