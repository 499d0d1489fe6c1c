"""params.yaml is written the way DVC writes it back, so `dvc exp run -S` / `dvc exp apply` give
a diff of values only, never a reformatted file."""

from __future__ import annotations

import difflib
import shutil

from dvc.utils.serialize import modify_yaml

from tests.pipeline_repo import REPO


def test_setting_a_param_the_way_dvc_does_changes_exactly_that_line(tmp_path):
    path = tmp_path / "params.yaml"
    shutil.copy(REPO / "params.yaml", path)
    before = path.read_text().splitlines()
    with modify_yaml(path) as params:  # what `dvc exp run -S finetune.lr=...` calls
        params["finetune"]["lr"] = 0.123
    after = path.read_text().splitlines()
    changed = [line for line in difflib.unified_diff(before, after, n=0, lineterm="")][2:]
    changed = [line for line in changed if not line.startswith("@@")]
    assert len(changed) == 2 and "lr: 0.123" in changed[1], changed
