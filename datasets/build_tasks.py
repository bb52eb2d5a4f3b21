"""Print the statistics of the SMARTS ground-truth tasks over the NCI molecules shipped with RDKit.

    python datasets/build_tasks.py            # all 4,999 lines of first_5K.smi
    python datasets/build_tasks.py --limit 500

Two views: the molecules as written in the file, and their largest fragment (salts removed) --
what the shipped models of ``sciattr.zoo`` are trained and scored on.
"""

from __future__ import annotations

import argparse

import numpy as np

from sciattr.chem.featurize import prepare_molecule
from sciattr.datasets import TASKS, MoleculeSet, build_task, load_nci, split_indices


def largest_fragments(molecules: MoleculeSet) -> MoleculeSet:
    mols = [prepare_molecule(m)[0] for m in molecules.mols]
    return MoleculeSet(molecules.smiles, molecules.names, mols, molecules.values, molecules.source)


def describe(molecules: MoleculeSet, title: str) -> None:
    print(f"\n{title}: {len(molecules)} molecules")
    print(f"{'task':<22} {'positives':>9} {'share':>7} {'alternatives/positive':>22} {'true atoms/positive':>20}"
          f"  rule")
    for name, task in TASKS.items():
        data = build_task(name, molecules)
        positives = data.positives
        alternatives = np.mean([len(data.masks[i]) for i in positives])
        fraction = np.mean([data.masks[i][0].mean() for i in positives])  # the mask of every occurrence
        rule = " AND ".join(f"{label} {smarts}" for label, smarts in task.rules)
        print(f"{name:<22} {positives.size:>9} {positives.size / len(molecules):>7.1%} {alternatives:>22.2f} "
              f"{fraction:>20.1%}  {rule}")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=None, help="read only the first LIMIT lines")
    args = parser.parse_args(argv)
    nci = load_nci(limit=args.limit)
    print(f"source: {nci.source}")
    print(f"parsed {len(nci)} molecules; {len(nci.skipped)} lines RDKit cannot parse "
          f"(lines {[row.line for row in nci.skipped]})")
    print(f"values: TPSA {nci.values.min():.1f} .. {nci.values.max():.1f} (mean {nci.values.mean():.1f})")
    describe(nci, "as written (all fragments)")
    describe(largest_fragments(nci), "largest fragment (what the shipped models see)")
    sizes = [len(p) for p in split_indices(len(nci), (0.8, 0.1, 0.1), seed=0)]
    print(f"\nsplit used by sciattr.zoo.train_chem: split_indices(n, (0.8, 0.1, 0.1), seed=0) -> sizes {sizes}")


if __name__ == "__main__":
    main()
