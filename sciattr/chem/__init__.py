"""Chemistry: featurization, Weave models, the attribution adapter, accounting and diagnostics.

Needs the ``chem`` extra (RDKit; torch_geometric for PyG models)::

    from sciattr.chem import SimpleWeaveFeaturizer, W2N2, explain_molecules
    feat = SimpleWeaveFeaturizer()
    model = W2N2(feat.n_atom_features, feat.n_pair_features, n_tasks=1)
    res = explain_molecules(model, ["CCO", "c1ccccc1[N+](=O)[O-]"], featurizer=feat, target=0)
    res.to_atoms(1), res.to_bonds(1), res.errors
"""

from sciattr.chem.accounting import Accounting, GroupTotal, account, group_total, smarts_totals
from sciattr.chem.adapter import (
    MoleculeAttribution,
    RaggedGraphs,
    explain_graphs,
    explain_molecules,
    ragged_graphs,
    receptive_radius,
)
from sciattr.chem.dead_features import ReceptiveFieldReport, receptive_field_report, wl_colours
from sciattr.chem.featurize import (
    ELEMENTS,
    MAX_ATOMS,
    MAX_LINKS,
    GraphBatch,
    MoleculeGraph,
    PyGFeaturizer,
    SimpleWeaveFeaturizer,
    WeaveFeaturizer,
    collate,
    featurize_batch,
    load_sdf,
    prepare_molecule,
)
from sciattr.chem.weave import W1N2, W2N2, WeaveLayer, WeaveModel

__all__ = [
    "ELEMENTS",
    "MAX_ATOMS",
    "MAX_LINKS",
    "W1N2",
    "W2N2",
    "Accounting",
    "GraphBatch",
    "GroupTotal",
    "MoleculeAttribution",
    "MoleculeGraph",
    "PyGFeaturizer",
    "RaggedGraphs",
    "ReceptiveFieldReport",
    "SimpleWeaveFeaturizer",
    "WeaveFeaturizer",
    "WeaveLayer",
    "WeaveModel",
    "account",
    "collate",
    "explain_graphs",
    "explain_molecules",
    "featurize_batch",
    "group_total",
    "load_sdf",
    "prepare_molecule",
    "ragged_graphs",
    "receptive_field_report",
    "receptive_radius",
    "smarts_totals",
    "wl_colours",
]
