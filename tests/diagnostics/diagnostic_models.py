"""Tiny float64 models with known behaviour, shared by the diagnostics tests."""

import torch

F64 = torch.float64


class Saturating(torch.nn.Module):
    """F(x) = 1 - exp(-10 w.x): saturates by construction; F(a x) = 1 - exp(-10 a s), s = w.x."""

    def __init__(self, w: torch.Tensor):
        super().__init__()
        self.proj = torch.nn.Linear(w.numel(), 1, bias=False).to(F64)
        with torch.no_grad():
            self.proj.weight.copy_(w[None])

    def forward(self, x):
        return 1.0 - torch.exp(-10.0 * self.proj(x)[:, 0])


class LinearScore(torch.nn.Module):
    """F(x) = w.x + c with an inspectable linear layer ``proj``."""

    def __init__(self, w: torch.Tensor, c: float = 0.0):
        super().__init__()
        self.proj = torch.nn.Linear(w.numel(), 1).to(F64)
        with torch.no_grad():
            self.proj.weight.copy_(w[None])
            self.proj.bias.fill_(c)

    def forward(self, x):
        return self.proj(x)[:, 0]


class RaggedLinear(torch.nn.Module):
    """Per example: F_e = sum over its atom rows of (atoms @ w); called with replicas (ragged)."""

    def __init__(self, w: torch.Tensor):
        super().__init__()
        self.embed = torch.nn.Linear(w.numel(), 2, bias=False).to(F64)
        with torch.no_grad():
            self.embed.weight.copy_(torch.stack([w, torch.zeros_like(w)]))

    def forward(self, atoms, replicas):
        per_row = self.embed(atoms)[:, 0]
        out = torch.zeros(replicas.size, dtype=atoms.dtype, device=atoms.device)
        return out.index_add(0, replicas.row_replica["atoms"], per_row)


def smooth_mlp(n_in: int = 5, hidden: int = 7, seed: int = 3) -> torch.nn.Module:
    """A smooth (tanh) float64 MLP with one output."""
    torch.manual_seed(seed)
    return (
        torch.nn.Sequential(torch.nn.Linear(n_in, hidden), torch.nn.Tanh(), torch.nn.Linear(hidden, 1))
        .to(F64)
        .eval()
    )
