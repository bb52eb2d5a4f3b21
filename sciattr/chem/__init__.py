"""Chemistry: featurization, Weave models, the attribution adapter, accounting, pictures, reports
and diagnostics.

Needs the ``chem`` extra (RDKit; torch_geometric for PyG models)::

    from sciattr.chem import SimpleWeaveFeaturizer, W2N2, explain_molecules
    feat = SimpleWeaveFeaturizer()
    model = W2N2(feat.n_atom_features, feat.n_pair_features, n_tasks=1)
    res = explain_molecules(model, ["CCO", "c1ccccc1[N+](=O)[O-]"], featurizer=feat, target=0)
    res.to_atoms(1), res.to_bonds(1), res.errors, res.to_dataframe("atom")

Atom indices in every output are those of the input molecule; the default per-atom number is
the complete atom score (the atom's features plus half of each pair/bond it takes part in).
"""

from sciattr.chem.accounting import Accounting, GroupTotal, account, group_total, smarts_totals
from sciattr.chem.adapter import (
    MoleculeAttribution,
    RaggedGraphs,
    decision_threshold,
    explain_graphs,
    explain_molecules,
    ragged_graphs,
    receptive_radius,
)
from sciattr.chem.architectures import MeanEnsemble
from sciattr.chem.baselines import NeutralBaseline, ReferenceBaselines, neutral_baseline
from sciattr.chem.dead_features import ReceptiveFieldReport, receptive_field_report, wl_colours
from sciattr.chem.deletion import DeletionCheck, DeletionReport, deletion_check
from sciattr.chem.draw import (
    attribution_heatmap,
    draw_attribution,
    draw_attribution_grid,
    draw_grid,
    draw_molecule,
    pair_heatmap,
    pair_matrix,
    save_picture,
)
from sciattr.chem.featurize import (
    ELEMENTS,
    MAX_ATOMS,
    MAX_LINKS,
    GraphBatch,
    MoleculeGraph,
    PyGFeaturizer,
    SimpleWeaveFeaturizer,
    UnreadableRecord,
    WeaveFeaturizer,
    collate,
    featurize_batch,
    load_sdf,
    prepare_molecule,
)
from sciattr.chem.gnn import GINENetwork
from sciattr.chem.report import molecule_report, terminal_table
from sciattr.chem.substructures import (
    FUNCTIONAL_GROUPS,
    aggregate_attribution,
    aggregate_substructures,
    atom_scores,
    compare_with_free_wilson,
)
from sciattr.chem.weave import W1N2, W2N2, WeaveLayer, WeaveModel

#: Names of :mod:`sciattr.chem.training`, exported here on first use (training is not needed to explain).
_TRAINING = ("TrainingRecipe", "TrainedModel", "train_model", "attribution_quality")

__all__ = [
    "ELEMENTS",
    "FUNCTIONAL_GROUPS",
    "MAX_ATOMS",
    "MAX_LINKS",
    "W1N2",
    "W2N2",
    "Accounting",
    "DeletionCheck",
    "DeletionReport",
    "GINENetwork",
    "GraphBatch",
    "GroupTotal",
    "MeanEnsemble",
    "MoleculeAttribution",
    "MoleculeGraph",
    "NeutralBaseline",
    "PyGFeaturizer",
    "RaggedGraphs",
    "ReceptiveFieldReport",
    "ReferenceBaselines",
    "SimpleWeaveFeaturizer",
    "TrainedModel",
    "TrainingRecipe",
    "UnreadableRecord",
    "WeaveFeaturizer",
    "WeaveLayer",
    "WeaveModel",
    "account",
    "aggregate_attribution",
    "aggregate_substructures",
    "atom_scores",
    "attribution_heatmap",
    "attribution_quality",
    "collate",
    "compare_with_free_wilson",
    "decision_threshold",
    "deletion_check",
    "draw_attribution",
    "draw_attribution_grid",
    "draw_grid",
    "draw_molecule",
    "explain_graphs",
    "explain_molecules",
    "featurize_batch",
    "group_total",
    "load_sdf",
    "molecule_report",
    "neutral_baseline",
    "pair_heatmap",
    "pair_matrix",
    "prepare_molecule",
    "ragged_graphs",
    "receptive_field_report",
    "receptive_radius",
    "save_picture",
    "smarts_totals",
    "terminal_table",
    "train_model",
    "wl_colours",
]


def __getattr__(name: str):
    if name in _TRAINING:
        from sciattr.chem import training

        return getattr(training, name)
    raise AttributeError(f"module 'sciattr.chem' has no attribute {name!r}")
