"""Offline chemistry data read from installed packages, and ground-truth attribution tasks.

- :func:`load_nci` -- 4,999 NCI molecules shipped with RDKit (TPSA as values).
- :func:`load_chembl2321810` -- a measured SAR series (1,017 compounds, pIC50) with its scaffold,
  :func:`decompose_rgroups` and a :func:`free_wilson` analysis.
- :data:`TASKS`, :func:`build_task`, :func:`score_attributions` -- SMARTS-rule tasks
  (conjunctions, disjunctions, exclusions) whose matching atoms are the true attribution, and the attribution-AUROC scorer.

Everything needs RDKit (``pip install 'sciattr[chem]'``); no file is downloaded or copied.
"""

from sciattr.datasets.freewilson import (
    FreeWilsonFit,
    RGroupTable,
    chembl2321810_scaffold,
    decompose_rgroups,
    free_wilson,
    load_chembl2321810,
)
from sciattr.datasets.molecules import MoleculeSet, SkippedRow, split_indices
from sciattr.datasets.nci import load_nci
from sciattr.datasets.ranks import auroc, average_ranks, spearman
from sciattr.datasets.tasks import (
    TASKS,
    AttributionScore,
    LogicTask,
    SmartsTask,
    TaskData,
    attribution_auroc,
    build_task,
    get_task,
    rule_evidence,
    score_attributions,
    task_label_matrix,
)

__all__ = [
    "TASKS",
    "AttributionScore",
    "FreeWilsonFit",
    "LogicTask",
    "MoleculeSet",
    "RGroupTable",
    "SkippedRow",
    "SmartsTask",
    "TaskData",
    "attribution_auroc",
    "auroc",
    "average_ranks",
    "build_task",
    "chembl2321810_scaffold",
    "decompose_rgroups",
    "free_wilson",
    "get_task",
    "load_chembl2321810",
    "load_nci",
    "rule_evidence",
    "score_attributions",
    "spearman",
    "split_indices",
    "task_label_matrix",
]
