"""`dvc plots show` / `diff` write a page that renders offline: vega, vega-lite and vega-embed
inline from the committed template that `.dvc/config` names, no script loaded from a URL."""

from __future__ import annotations

import io
import re
import tarfile
from pathlib import Path

import pytest

from affectpipe.plots_page import (
    LIBRARIES,
    PAGE,
    Bundle,
    Library,
    inline_script,
    read_bundle,
    render_page,
    script_sha256,
    sri,
)
from tests.pipeline_repo import PipelineRepo
from tests.test_demo_browser import CHROMIUM, CHROMIUM_ARGS

SCRIPT = re.compile(r"<script>/\* (\S+) \([^)]*\), BSD-3-Clause[^\n]*\n(.*?)\n</script>", re.S)
LICENCE = re.compile(r"<!-- (\S+) licence:\n(.*?)\n-->", re.S)
SCRIPT_SRC = re.compile(r"<script[^>]*\bsrc\s*=", re.I)


def committed_bundles() -> list[Bundle]:
    text = PAGE.read_text(encoding="utf-8")
    scripts = dict(SCRIPT.findall(text))
    licences = dict(LICENCE.findall(text))
    return [
        Bundle(lib, scripts[f"{lib.name}@{lib.version}"], licences[f"{lib.name}@{lib.version}"])
        for lib in LIBRARIES
    ]


def test_committed_page_is_the_generator_output_for_the_pinned_builds():
    bundles = committed_bundles()
    for b in bundles:
        assert script_sha256(b.script) == b.library.sha256, b.library.name
        assert "BSD" in b.licence or "Redistribution and use" in b.licence
    assert render_page(bundles) == PAGE.read_text(encoding="utf-8")


def tarball(files: dict[str, str]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(f"package/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def test_tarball_or_build_other_than_the_pinned_one_is_refused():
    js = "var x = 1;\n//# sourceMappingURL=x.min.js.map"
    tgz = tarball({"build/x.min.js": js, "LICENSE": "licence\n"})
    good = Library("x", "1.0.0", "build/x.min.js", sri(tgz), script_sha256("var x = 1;"))
    assert read_bundle(good, tgz) == Bundle(good, "var x = 1;", "licence")
    with pytest.raises(ValueError, match="x@1.0.0: tarball hash"):
        read_bundle(Library("x", "1.0.0", "build/x.min.js", "sha512-other", good.sha256), tgz)
    with pytest.raises(ValueError, match="not the pinned build"):
        read_bundle(Library("x", "1.0.0", "build/x.min.js", good.integrity, "0" * 64), tgz)


def test_a_build_that_would_end_the_script_element_is_refused():
    with pytest.raises(ValueError, match="</script"):
        inline_script('var s = "</SCRIPT>";')


@pytest.fixture(scope="module")
def pages(tmp_path_factory) -> dict[str, Path]:
    """`dvc plots show` and `dvc plots diff` with no flag, on a copy of the project's plots."""
    repo = PipelineRepo.copy_of_project(tmp_path_factory.mktemp("plots") / "repo")
    repo.run("dvc", "plots", "show")
    repo.run("dvc", "plots", "diff", "HEAD", "-o", "diff_plots")
    return {cmd: repo.root / out / "index.html"
            for cmd, out in (("show", "dvc_plots"), ("diff", "diff_plots"))}  # fmt: skip


VEGA_PLOTS = 6  # the vega plots dvc.yaml defines (the rest are images)


@pytest.mark.parametrize("cmd", ["show", "diff"])
def test_dvc_plots_page_embeds_the_libraries_and_loads_no_script_url(pages, cmd: str):
    html = pages[cmd].read_text(encoding="utf-8")
    assert not SCRIPT_SRC.search(html)
    assert "cdn.jsdelivr.net" not in html
    for b in committed_bundles():
        assert b.script in html, b.library.name
    assert html.count("vegaEmbed('#") == VEGA_PLOTS


@pytest.mark.browser
@pytest.mark.skipif(not CHROMIUM.exists(), reason="needs /usr/bin/chromium (apt-get install "
                                                   "chromium chromium-driver)")  # fmt: skip
def test_dvc_plots_page_renders_every_plot_in_chromium_with_no_network(pages):
    from playwright.sync_api import sync_playwright

    errors: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        page = browser.new_page()
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(pages["show"].as_uri())
        page.wait_for_function(
            f"() => document.querySelectorAll('.vega-embed canvas').length === {VEGA_PLOTS}",
            timeout=60_000,
        )
        browser.close()
    assert errors == []
