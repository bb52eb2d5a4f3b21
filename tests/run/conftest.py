"""Shared inputs of the runner tests."""

import pytest

#: NCI-like molecules with a salt, a bad SMILES and a blank line among them.
SMILES = ["CCO", "not_a_smiles", "c1ccccc1N", "[Na+].CC(=O)[O-]", "c1ccccc1O", "CC(=O)Oc1ccccc1C(=O)O", "",
          "ClCCBr", "c1ccncc1", "CCN(CC)CC", "O=C(O)c1ccccc1", "C1CCCCC1", "CC(C)Cc1ccc(C(C)C(=O)O)cc1",
          "Nc1ccc(O)cc1", "COc1ccccc1", "C=CC=O"]


@pytest.fixture
def library(tmp_path):
    path = tmp_path / "library.csv"
    lines = ["name,smiles,activity"] + [f"mol{k},{s},{k / 10}" for k, s in enumerate(SMILES)]
    path.write_text("\n".join(lines) + "\n")
    return path
