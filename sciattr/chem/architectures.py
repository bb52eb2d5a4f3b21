"""The chemistry architectures a model card can name, rebuilt from their configuration.

``build_model(architecture, config)`` returns an untrained ``W1N2``, ``W2N2`` or
``GINENetwork`` (``members=n``: a :class:`MeanEnsemble` of ``n`` of them);
:func:`sciattr.zoo.load_model` fills it with the shipped weights, and training code uses it to
rebuild a recipe's model (without importing the zoo).
"""

from __future__ import annotations

import torch

from sciattr.errors import InputError, describe

__all__ = ["ARCHITECTURES", "MeanEnsemble", "build_model"]

#: Architecture names a card may give.
ARCHITECTURES = ("W1N2", "W2N2", "GINENetwork")


class MeanEnsemble(torch.nn.Module):
    """The mean of several models' outputs (same inputs, same output shape), e.g. the same
    architecture trained from several seeds.

    Integrated gradients are linear in the model: the attributions of the ensemble are the mean of
    its members' attributions (along the same path, from the same baseline), and so is its
    completeness target F(x) - F(x'). Averaging removes what one seed's training happened to
    learn and the others did not.

    Parameters
    ----------
    members : sequence of torch.nn.Module
        Models with the same calling convention and output shape.

    Examples
    --------
    >>> import torch
    >>> ens = MeanEnsemble([torch.nn.Linear(2, 1), torch.nn.Linear(2, 1)])
    >>> x = torch.ones(1, 2)
    >>> bool(torch.allclose(ens(x), (ens.members[0](x) + ens.members[1](x)) / 2))
    True
    """

    def __init__(self, members):
        super().__init__()
        members = list(members)
        if not members or not all(isinstance(m, torch.nn.Module) for m in members):
            raise InputError(f"expected one or more torch modules to average; got {describe(members)}")
        self.members = torch.nn.ModuleList(members)

    def forward(self, *args, **kwargs):
        outputs = [m(*args, **kwargs) for m in self.members]
        shapes = {tuple(o.shape) for o in outputs}
        if len(shapes) > 1:
            raise InputError(f"expected the ensemble's members to give outputs of one shape; got {sorted(shapes)}")
        return torch.stack(outputs).mean(0)

    @property
    def receptive_radius(self) -> int | None:
        """The members' common receptive radius (``None`` when they differ or have none)."""
        from sciattr.chem.adapter import receptive_radius

        radii = {receptive_radius(m) for m in self.members}
        return radii.pop() if len(radii) == 1 else None


def build_model(architecture: str, config: dict, members: int | None = None) -> torch.nn.Module:
    """An untrained model of ``architecture`` (``"W1N2"``, ``"W2N2"`` or ``"GINENetwork"``), or with
    ``members=n`` a :class:`MeanEnsemble` of ``n`` such models."""
    if members is not None:
        if isinstance(members, bool) or not isinstance(members, int) or members < 1:
            raise InputError(f"expected members= a positive int; got {describe(members)}")
        return MeanEnsemble([build_model(architecture, config) for _ in range(members)])
    if not isinstance(config, dict):
        raise InputError(f"expected a configuration dict for {architecture!r}; got {describe(config)}")
    if architecture in ("W1N2", "W2N2"):
        from sciattr.chem.weave import W1N2, W2N2

        factory = W1N2 if architecture == "W1N2" else W2N2
        options = dict(config)
        try:
            return factory(options.pop("n_atom_features"), options.pop("n_pair_features"), options.pop("n_tasks"),
                           **options)
        except KeyError as missing:
            raise InputError(f"expected {missing.args[0]!r} in the {architecture} configuration; got keys "
                             f"{sorted(config)}") from None
    if architecture == "GINENetwork":
        from sciattr.chem.gnn import GINENetwork

        return GINENetwork(**config)
    raise InputError(f"expected architecture among {list(ARCHITECTURES)}; got {architecture!r}")
