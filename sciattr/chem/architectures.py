"""The chemistry architectures a model card can name, rebuilt from their configuration.

``build_model(architecture, config)`` returns an untrained ``W1N2``, ``W2N2`` or
``GINENetwork``; :func:`sciattr.zoo.load_model` fills it with the shipped weights, and training
code uses it to rebuild a recipe's model (without importing the zoo).
"""

from __future__ import annotations

import torch

from sciattr.errors import InputError, describe

__all__ = ["ARCHITECTURES", "build_model"]

#: Architecture names a card may give.
ARCHITECTURES = ("W1N2", "W2N2", "GINENetwork")


def build_model(architecture: str, config: dict) -> torch.nn.Module:
    """An untrained model of ``architecture`` (``"W1N2"``, ``"W2N2"`` or ``"GINENetwork"``)."""
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
