# rdkit ships stubs that do not parse (e.g. "None: ..." in rdRGroupDecomposition.pyi); these stand in for them.
from typing import Any

def __getattr__(name: str) -> Any: ...
