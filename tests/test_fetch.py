"""Resumable, verified downloads against a local HTTP server (127.0.0.1 only)."""

from __future__ import annotations

import hashlib
import threading
import zipfile
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pandas as pd
import pytest

from affectpipe.data import fetch
from affectpipe.problems import InputProblem


@contextmanager
def serve(routes: dict[str, bytes], cut_first: dict[str, int] | None = None, ranges: bool = True):
    """Serve `routes` (path -> body) with HTTP Range support.

    `cut_first[path] = n`: the first request for `path` sends n bytes, then drops the connection.
    Yields the base URL and the list of (path, Range header) requests seen.
    """
    cut = dict(cut_first or {})
    seen: list[tuple[str, str | None]] = []

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):  # keep test output clean
            pass

        def do_GET(self):  # noqa: N802 - the http.server API
            path = self.path.split("?")[0]
            seen.append((path, self.headers.get("Range")))
            if path not in routes:
                self.send_error(404)
                return
            body, start = routes[path], 0
            rng = self.headers.get("Range")
            if ranges and rng:
                start = int(rng.removeprefix("bytes=").split("-")[0])
                if start >= len(body):
                    self.send_error(416)
                    return
                self.send_response(206)
                self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
            else:
                self.send_response(200)
            self.send_header("Content-Length", str(len(body) - start))
            self.end_headers()
            if path in cut:
                self.wfile.write(body[start : start + cut.pop(path)])
                self.wfile.flush()
                self.close_connection = True
                return
            self.wfile.write(body[start:])

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", seen
    finally:
        server.shutdown()
        server.server_close()


def make_zip(members: dict[str, bytes]) -> bytes:
    import io

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in sorted(members.items()):
            zf.writestr(zipfile.ZipInfo(name, (2020, 1, 1, 0, 0, 0)), data)
    return buf.getvalue()


BODY = bytes(range(256)) * 4000  # ~1 MB: more than one read chunk


def test_download_verifies_size_and_sha256(tmp_path):
    with serve({"/a.bin": BODY}) as (url, _):
        remote = fetch.Remote(
            f"{url}/a.bin", "a.bin", len(BODY), "sha256:" + hashlib.sha256(BODY).hexdigest()
        )
        path = fetch.download(remote, tmp_path)
    assert path.read_bytes() == BODY
    assert not (tmp_path / "a.bin.part").exists()


def test_download_resumes_after_a_cut_connection(tmp_path):
    with serve({"/a.bin": BODY}, cut_first={"/a.bin": 300_000}) as (url, seen):
        remote = fetch.Remote(
            f"{url}/a.bin", "a.bin", len(BODY), "md5:" + hashlib.md5(BODY).hexdigest()
        )  # noqa: S324 - Zenodo's hash
        path = fetch.download(remote, tmp_path)
    assert path.read_bytes() == BODY
    assert seen[0] == ("/a.bin", None)
    assert seen[1] == ("/a.bin", "bytes=300000-")  # the second request continued, not restarted


def test_download_resumes_a_part_file_left_by_an_earlier_run(tmp_path):
    (tmp_path / "a.bin.part").write_bytes(BODY[:1000])
    with serve({"/a.bin": BODY}) as (url, seen):
        fetch.download(fetch.Remote(f"{url}/a.bin", "a.bin", len(BODY)), tmp_path)
    assert seen == [("/a.bin", "bytes=1000-")]
    assert (tmp_path / "a.bin").read_bytes() == BODY


def test_download_restarts_when_the_server_ignores_range(tmp_path):
    (tmp_path / "a.bin.part").write_bytes(b"x" * 1000)
    with serve({"/a.bin": BODY}, ranges=False) as (url, _):
        fetch.download(fetch.Remote(f"{url}/a.bin", "a.bin", len(BODY)), tmp_path)
    assert (tmp_path / "a.bin").read_bytes() == BODY


def test_checksum_mismatch_is_an_error_and_leaves_no_file(tmp_path):
    with serve({"/a.bin": BODY}) as (url, _):
        remote = fetch.Remote(f"{url}/a.bin", "a.bin", len(BODY), "sha256:" + "0" * 64)
        with pytest.raises(fetch.DownloadError, match=r"a.bin.part: sha256 .* does not match"):
            fetch.download(remote, tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_size_mismatch_is_an_error(tmp_path):
    with serve({"/a.bin": BODY}) as (url, _):
        remote = fetch.Remote(f"{url}/a.bin", "a.bin", len(BODY) + 5)
        with pytest.raises(fetch.DownloadError, match="expected"):
            fetch.download(remote, tmp_path, retries=1)


def test_missing_file_is_an_http_error_naming_the_url(tmp_path):
    with serve({}) as (url, _), pytest.raises(fetch.DownloadError, match="HTTP 404"):
        fetch.download(fetch.Remote(f"{url}/nope.zip", "nope.zip"), tmp_path)


def test_existing_final_file_is_verified_not_fetched_again(tmp_path):
    (tmp_path / "a.bin").write_bytes(BODY)
    with serve({}) as (url, seen):
        fetch.download(fetch.Remote(f"{url}/a.bin", "a.bin", len(BODY)), tmp_path)
    assert seen == []


def test_extract_zip_refuses_members_escaping_the_folder(tmp_path):
    archive = tmp_path / "evil.zip"
    archive.write_bytes(make_zip({"../outside.txt": b"x"}))
    with pytest.raises(InputProblem, match="escapes the folder"):
        fetch.extract_zip(archive, tmp_path / "out")


def test_extract_zip_keeps_selected_members(tmp_path):
    archive = tmp_path / "a.zip"
    archive.write_bytes(make_zip({"Actor_01/x.wav": b"1", "Actor_02/y.wav": b"2"}))
    taken = fetch.extract_zip(archive, tmp_path / "out", keep=lambda m: m.startswith("Actor_01"))
    assert [p.name for p in taken] == ["x.wav"]


def test_manifest_lists_every_file_with_size_and_sha256(tmp_path):
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "b.wav").write_bytes(b"bb")
    (tmp_path / "a.wav").write_bytes(b"a")
    fetch.write_manifest(tmp_path, [tmp_path / "d" / "b.wav", tmp_path / "a.wav"])
    table = pd.read_csv(tmp_path / "manifest.csv")
    assert table.path.tolist() == ["a.wav", "d/b.wav"]
    assert table["size"].tolist() == [1, 2]
    assert table.sha256[0] == hashlib.sha256(b"a").hexdigest()


def test_folder_manifest_mismatch_names_the_file(tmp_path):
    (tmp_path / "a.wav").write_bytes(b"a")
    fetch.write_manifest(tmp_path, [tmp_path / "a.wav"])
    (tmp_path / "a.wav").write_bytes(b"changed")
    with pytest.raises(InputProblem, match=r"a.wav: does not match .*manifest.csv"):
        fetch.verify_against_manifest(tmp_path, [tmp_path / "a.wav"])


def test_symlinked_folder_leaves_the_source_untouched(tmp_path: Path):
    src = tmp_path / "src"
    (src / "Actor_01").mkdir(parents=True)
    (src / "Actor_01" / "x.wav").write_bytes(b"data")
    taken = fetch.take_folder(src, tmp_path / "out", [src / "Actor_01" / "x.wav"], "symlink")
    assert taken[0].is_symlink() and taken[0].read_bytes() == b"data"
    assert (src / "Actor_01" / "x.wav").read_bytes() == b"data"
