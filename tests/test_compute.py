"""Machine knobs: params.yaml's `compute`, overridden per shell by AFFECTPIPE_<KEY>."""

from __future__ import annotations

import pytest

from affectpipe.compute import ComputeConfig, compute_config
from affectpipe.config import ConfigError, load_params
from tests.pipeline_repo import REPO

PARAMS = {"compute": {"device": "auto", "processes": 1, "launcher": "accelerate",
                      "dataloader_workers": "auto"}}  # fmt: skip


def test_the_committed_params_give_one_local_process():
    cfg = compute_config(load_params(REPO / "params.yaml"), environ={})
    assert cfg == ComputeConfig("auto", 1, "accelerate", "auto")


def test_the_environment_overrides_each_key_with_typed_values():
    env = {"AFFECTPIPE_PROCESSES": "4", "AFFECTPIPE_DEVICE": "cuda:1",
           "AFFECTPIPE_DATALOADER_WORKERS": "2", "AFFECTPIPE_LAUNCHER": " "}  # fmt: skip
    cfg = compute_config(PARAMS, environ=env)
    assert cfg == ComputeConfig("cuda:1", 4, "accelerate", 2)  # a blank variable is unset


@pytest.mark.parametrize(
    ("compute", "match"),
    [
        (
            {**PARAMS["compute"], "processes": 0},
            "processes': Input should be greater than or equal to 1",
        ),
        ({**PARAMS["compute"], "processes": "two"}, "processes': Input should be a valid integer"),
        ({**PARAMS["compute"], "launcher": "mpirun"}, "'accelerate' or 'torchrun', got 'mpirun'"),
        ({**PARAMS["compute"], "threads": 2}, "unknown key 'compute.threads'"),
        ({k: v for k, v in PARAMS["compute"].items() if k != "device"}, "missing key 'compute.dev"),
    ],
)
def test_bad_settings_fail_by_name(compute, match):
    with pytest.raises(ConfigError, match=match):
        compute_config({"compute": compute}, environ={})
