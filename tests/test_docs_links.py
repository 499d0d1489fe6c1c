"""The README and docs/*.md only point at files that exist in the repository."""

from __future__ import annotations

import re
from pathlib import Path

from tests.pipeline_repo import REPO, project_files

PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]

# [text](target) and ![alt](target); the target ends at whitespace (before an optional
# "title") or at the closing parenthesis. Fenced code blocks and inline code are not links.
LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+[\"'][^)]*)?\)")
FENCE = re.compile(r"^(```|~~~).*?^\1[^\n]*$", re.MULTILINE | re.DOTALL)
INLINE_CODE = re.compile(r"`[^`\n]*`")
EXTERNAL = ("http://", "https://", "mailto:")
MD_NAME = re.compile(r"[\w./-]*\w\.md\b")  # any Markdown file a page names, link or not


def _prose(text: str) -> str:
    return INLINE_CODE.sub("", FENCE.sub("", text))


def relative_links(page: Path) -> list[str]:
    """Every link or image target of `page` that names a file in the repository."""
    targets = LINK.findall(_prose(page.read_text(encoding="utf-8")))
    return [t for t in targets if not t.startswith(EXTERNAL) and not t.startswith("#")]


def broken_links(pages: list[Path], root: Path = REPO) -> list[str]:
    """`page: target` for every relative link whose file (fragment stripped) does not exist,
    resolved from the page's own folder."""
    broken = []
    for page in pages:
        for target in relative_links(page):
            if not (page.parent / target.split("#", 1)[0]).exists():
                broken.append(f"{page.relative_to(root)}: {target}")
    return broken


def test_the_readme_and_every_docs_page_are_checked():
    assert (REPO / "README.md") in PAGES
    assert len(PAGES) > 1, "no docs/*.md found"


def test_every_relative_link_in_the_readme_and_docs_resolves_to_a_file():
    broken = broken_links(PAGES)
    assert not broken, "broken links:\n" + "\n".join(broken)


def test_every_markdown_file_a_page_names_is_in_the_repository():
    """A reader cannot open a page that only exists elsewhere, linked or merely mentioned."""
    names = {Path(f).name for f in project_files() if f.endswith(".md")}
    missing = [
        f"{page.relative_to(REPO)}:{n}: {name}"
        for page in PAGES
        for n, line in enumerate(page.read_text(encoding="utf-8").splitlines(), 1)
        for name in MD_NAME.findall(line)
        if Path(name).name not in names
    ]
    assert not missing, "pages name Markdown files the repository lacks:\n" + "\n".join(missing)


def test_a_missing_target_is_reported_with_its_page_and_a_fragment_is_ignored(tmp_path):
    """The checker itself: what counts as a link, and what is skipped."""
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "there.md").write_text("# there\n")
    page = docs / "page.md"
    page.write_text(
        "[ok](there.md) [ok, section](there.md#part) ![img](missing.png) [gone](gone.md#x)\n"
        "[web](https://example.org/x.md) [mail](mailto:a@b.c) [anchor](#top)\n"
        "`[not a link](code.md)`\n```\n[not a link](fenced.md)\n```\n"
    )
    assert relative_links(page) == ["there.md", "there.md#part", "missing.png", "gone.md#x"]
    expected = ["docs/page.md: missing.png", "docs/page.md: gone.md#x"]
    assert broken_links([page], tmp_path) == expected
