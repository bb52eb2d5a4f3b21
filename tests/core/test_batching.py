import pytest
import torch

from sciattr import integrated_gradients
from sciattr.core.batching import RowIndex, parse_memory, plan_chunks
from sciattr.errors import InputError


def test_plan_chunks_respects_both_bounds():
    cost = torch.tensor([1.0, 1.0, 5.0, 1.0, 1.0, 1.0])
    assert plan_chunks(cost, None, None) == [(0, 6)]
    assert plan_chunks(cost, 4, None) == [(0, 4), (4, 6)]
    assert plan_chunks(cost, None, 2.0) == [(0, 2), (2, 3), (3, 5), (5, 6)]  # the costly one alone
    assert plan_chunks(cost, 2, 100.0) == [(0, 2), (2, 4), (4, 6)]


def test_memory_budget_splits_the_grid():
    calls = []
    model = torch.nn.Sequential(torch.nn.Linear(64, 64), torch.nn.Tanh(), torch.nn.Linear(64, 1)).double()

    def counted(x):
        calls.append(x.shape[0])
        return model(x)[:, 0]

    x = torch.randn(20, 64, dtype=torch.float64)
    res = integrated_gradients(counted, x, steps=30, memory_budget="2MB")
    assert sum(calls) == 20 * 32 and len(calls) > 2
    per_rows = max(calls[1:])
    # activations saved per replica: ~ (64 + 64 + 64) float64 numbers; 2 MB at a 2x margin -> ~650 replicas
    assert per_rows < 20 * 32
    ref = integrated_gradients(model, x, target=0, steps=30, batch_size=10**6)
    torch.testing.assert_close(res.attributions["input"], ref.attributions["input"], atol=1e-15, rtol=1e-13)


def test_row_index_gather_and_rank():
    seg = torch.tensor([2, 0, 2, 1, 0])
    idx = RowIndex(seg, 3, 5)
    rows, rep, first = idx.gather(torch.tensor([2, 0, 2]))
    assert rows.tolist() == [0, 2, 1, 4, 0, 2]
    assert rep.tolist() == [0, 0, 1, 1, 2, 2]
    assert first.tolist() == [0, 2, 4]
    assert idx.rank.tolist() == [0, 0, 1, 0, 1]


@pytest.mark.parametrize("text,value", [("2GiB", 2 * 2**30), ("512MB", 512 * 10**6), ("100", 100), (4096, 4096)])
def test_parse_memory(text, value):
    assert parse_memory(text) == value


def test_parse_memory_rejects():
    for bad in ("-1GB", "x", 0, True):
        with pytest.raises(InputError):
            parse_memory(bad)
