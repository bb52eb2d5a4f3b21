"""Parity with Captum's IntegratedGradients on random MLP, CNN and LSTM models (float64).

Captum builds its Riemann nodes with float32 ``torch.linspace`` and multiplies by float32 step
sizes, so agreement is at the float32 level (~1e-7 relative) even in float64. Its trapezoid
weights are ``1/n`` with halved ends and sum to ``(n-1)/n``; sciattr's sum to 1, so the two
trapezoid results differ by exactly the factor ``n/(n-1)``. For the trapezoid sciattr counts ``steps``
as intervals (``steps + 1`` nodes, so that levels nest under doubling); Captum's ``n_steps`` counts
nodes, so ``steps = n_steps - 1`` evaluates the same nodes.
"""

import pytest
import torch

from sciattr import integrated_gradients

captum_attr = pytest.importorskip("captum.attr")

F64 = torch.float64
RULES = ["gausslegendre", "riemann_left", "riemann_right", "riemann_middle", "riemann_trapezoid"]


class LSTMClassifier(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.lstm = torch.nn.LSTM(4, 6, batch_first=True)
        self.head = torch.nn.Linear(6, 3)

    def forward(self, x):
        out, _ = self.lstm(x)
        return self.head(out[:, -1])


def _models():
    torch.manual_seed(0)
    mlp = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 16), torch.nn.Tanh(),
                              torch.nn.Linear(16, 3))
    cnn = torch.nn.Sequential(torch.nn.Conv2d(2, 4, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv2d(4, 4, 3),
                              torch.nn.Softplus(), torch.nn.Flatten(), torch.nn.Linear(4 * 4 * 4, 3))
    return {
        "mlp": (mlp.double().eval(), torch.randn(5, 8, dtype=F64)),
        "cnn": (cnn.double().eval(), torch.randn(3, 2, 6, 6, dtype=F64)),
        "lstm": (LSTMClassifier().double().eval(), torch.randn(4, 7, 4, dtype=F64)),
    }


MODELS = _models()


@pytest.mark.parametrize("rule", RULES)
@pytest.mark.parametrize("name", list(MODELS))
def test_matches_captum(name, rule):
    model, x = MODELS[name]
    baseline = 0.1 * torch.randn_like(x)
    target = torch.arange(x.shape[0]) % 3
    steps = 24
    ours_steps = steps - 1 if rule == "riemann_trapezoid" else steps
    ours = integrated_gradients(model, x, baselines=baseline, target=target, steps=ours_steps, rule=rule)
    theirs = captum_attr.IntegratedGradients(model).attribute(x, baselines=baseline, target=target, n_steps=steps,
                                                              method=rule)
    if rule == "riemann_trapezoid":
        theirs = theirs * steps / (steps - 1)
    scale = ours.attributions["input"].abs().max()
    torch.testing.assert_close(ours.attributions["input"], theirs, atol=2e-7 * float(scale), rtol=1e-6)


def test_trapezoid_weights_differ_from_captum_by_n_over_n_minus_1():
    w = torch.tensor([0.5, -1.0, 2.0], dtype=F64)
    x = torch.tensor([[1.0, 2.0, 3.0]], dtype=F64)
    theirs = captum_attr.IntegratedGradients(lambda z: (z @ w)[:, None]).attribute(
        x, target=0, n_steps=5, method="riemann_trapezoid")
    ours = integrated_gradients(lambda z: z @ w, x, steps=5, rule="riemann_trapezoid")
    torch.testing.assert_close(ours.attributions["input"], x * w)  # exact: weights sum to 1
    torch.testing.assert_close(theirs, x * w * 4 / 5, rtol=1e-6, atol=0)  # Captum's sum to (n-1)/n
