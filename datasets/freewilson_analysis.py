"""Free–Wilson analysis of the CHEMBL2321810 series, and (optionally) its comparison with the
attributions of the shipped pIC50 model.

    python datasets/freewilson_analysis.py                  # decomposition and Free–Wilson fit
    python datasets/freewilson_analysis.py --attributions   # + IG of w2n2-chembl2321810 (~1 min CPU)
"""

from __future__ import annotations

import argparse

import torch

from sciattr.datasets import chembl2321810_scaffold, decompose_rgroups, free_wilson, load_chembl2321810


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--attributions", action="store_true", help="compare with the shipped model's IG")
    parser.add_argument("--ridge", type=float, default=0.0, help="L2 penalty of the Free–Wilson fit")
    parser.add_argument("--min-count", type=int, default=3, help="substituents seen fewer times are not ranked")
    args = parser.parse_args(argv)
    series = load_chembl2321810()
    print(f"source: {series.source}: {len(series)} compounds, pIC50 {series.values.min():.2f} .. "
          f"{series.values.max():.2f}")
    table = decompose_rgroups(series.mols, chembl2321810_scaffold())
    counts = table.counts()
    print(f"R-group decomposition (RDKit rdRGroupDecomposition, shipped scaffold): {table.matched.size} matched, "
          f"positions {table.labels}, distinct substituents "
          + ", ".join(f"{label} {sum(1 for k in counts if k[0] == label)}" for label in table.labels))
    fit = free_wilson(table.substituents, series.values[table.matched], ridge=args.ridge)
    print(f"Free–Wilson: R^2 {fit.r2:.3f} on {fit.n_compounds} compounds; intercept {fit.intercept:.2f}; "
          f"references {fit.reference}")
    frequent = sorted((k for k, n in counts.items() if n >= args.min_count), key=lambda k: -fit.coefficients[k])
    print(f"substituents seen >= {args.min_count} times, by coefficient:")
    for key in frequent[:10] + (["..."] if len(frequent) > 20 else []) + frequent[-10:]:
        if key == "...":
            print("   ...")
            continue
        print(f"  {key[0]:<4} {fit.coefficients[key]:+.2f}  (n={counts[key]:>3})  {key[1]}")
    if args.attributions:
        compare(series, args)


def compare(series, args) -> None:
    from sciattr.chem.adapter import explain_molecules
    from sciattr.chem.substructures import atom_scores, compare_with_free_wilson
    from sciattr.zoo import load_featurizer, load_model

    torch.set_num_threads(1)
    model = load_model("w2n2-chembl2321810")
    result = explain_molecules(model, series.mols, featurizer=load_featurizer(model), steps=50)
    scores = [atom_scores(result, i) for i in range(result.n_examples)]
    comparison = compare_with_free_wilson(result.molecules, scores, series.values[result.rows],
                                          min_count=args.min_count, ridge=args.ridge)
    print(f"\nattributions of w2n2-chembl2321810 (IG, 50 steps; median relative gap "
          f"{float(result.relative_gap.median()):.2%}) vs Free–Wilson over {len(comparison.keys)} substituents:")
    print(f"  Spearman (centred per position) {comparison.spearman:.3f}; per position "
          + ", ".join(f"{k} {v:.3f}" for k, v in comparison.per_position.items()))


if __name__ == "__main__":
    main()
