"""The launch scripts' port rule: $PORT, else the recipe's dist.port, else 29500; a sharded launch that
Accelerate did not honour."""

import pytest

from hfcls.engine.dist import check_launch, launch_port, parse_port
from hfcls.errors import HfclsError

from conftest import tiny_recipe_dict, write_recipe


@pytest.fixture
def recipe_with_port(tmp_path, tiny_data):
    return write_recipe(tmp_path / "ported.yaml", tiny_recipe_dict(*tiny_data, dist={"port": 29702}))


def test_port_comes_from_env_then_recipe_then_default(monkeypatch, tiny_recipe, recipe_with_port):
    monkeypatch.delenv("PORT", raising=False)
    assert launch_port(str(tiny_recipe)) == 29500
    assert launch_port(str(recipe_with_port)) == 29702
    monkeypatch.setenv("PORT", "29703")
    assert launch_port(str(recipe_with_port)) == 29703
    monkeypatch.setenv("PORT", "http")
    with pytest.raises(HfclsError, match="PORT='http' is not a port number"):
        launch_port(str(tiny_recipe))
    with pytest.raises(HfclsError, match="dist.port=70000 is not a port number; use one from 1 to 65535"):
        parse_port(70000, "dist.port")


@pytest.mark.parametrize("variable, kind", [("ACCELERATE_USE_FSDP", "FSDP"), ("ACCELERATE_USE_DEEPSPEED", "DEEPSPEED")])
def test_a_sharded_launch_run_as_another_kind_of_job_is_refused(monkeypatch, variable, kind):
    from types import SimpleNamespace

    from accelerate.utils import DistributedType

    # What Accelerate makes of an FSDP or DeepSpeed launch config on CPU processes (launch/accelerate/fsdp.yaml
    # itself: tests/e2e/test_fsdp.py; DeepSpeed is not installed here).
    made = SimpleNamespace(distributed_type=DistributedType.MULTI_CPU)
    check_launch(made)
    monkeypatch.setenv(variable, "true")
    with pytest.raises(
        HfclsError,
        match=rf"^the launch config asks for {kind} \({variable}=true\), but Accelerate "
        rf"made a MULTI_CPU job: it runs {kind} only on GPUs",
    ):
        check_launch(made)
    check_launch(SimpleNamespace(distributed_type=DistributedType[kind]))
