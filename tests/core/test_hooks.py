import pytest
import torch

from sciattr.core.hooks import capture_output, replace_output
from sciattr.errors import InputError


def test_replace_output_is_scoped_and_restored_on_error():
    lin = torch.nn.Linear(2, 2)
    x = torch.ones(1, 2)
    before = lin(x)
    with replace_output(lin, lambda y: y * 0):
        assert torch.equal(lin(x), torch.zeros(1, 2))
    assert torch.equal(lin(x), before)
    with pytest.raises(RuntimeError, match="boom"), replace_output(lin, lambda y: y + 1):
        raise RuntimeError("boom")
    assert torch.equal(lin(x), before) and not lin._forward_hooks


def test_capture_output():
    lin = torch.nn.Linear(2, 3)
    with capture_output(lin) as outs:
        lin(torch.ones(4, 2))
    assert len(outs) == 1 and outs[0].shape == (4, 3)
    assert not lin._forward_hooks
    with pytest.raises(InputError, match="nn.Module"), capture_output(lambda x: x):
        pass
