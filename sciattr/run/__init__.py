"""Dataset-scale runs: stream a compound library or a corpus through attribution.

``explain_file(path, model=..., kind="molecule"|"text", out_dir=...)`` and
``explain_stream(iterable, ...)`` read lazily, attribute in bounded batches and write Parquet (or
CSV) part files as they go, with a manifest of completed row ranges so that an interrupted run
continues where it stopped. ``shard="i/n"`` (or torchrun's ``RANK``/``WORLD_SIZE``) splits the
work across processes; ``engine="ray"`` runs it on a Ray Data actor pool. :func:`merge` reads a
run folder back as one DataFrame; :func:`summarize` computes library-level summaries from it.

Example
-------
>>> from sciattr.run import explain_stream, merge
>>> summary = explain_stream(["CCO", "c1ccccc1O"], model="w2n2-benzene", out_dir="run", progress=False)
>>> merge("run")[["row", "status", "prediction"]]      # doctest: +SKIP
"""

from sciattr.run.output import SCHEMA_VERSION, dataset, merge, read_manifest, read_table
from sciattr.run.runner import RunSummary, explain_file, explain_stream, parse_shard, run_info
from sciattr.run.summarize import LibrarySummary, summarize, write_summary_html

__all__ = ["SCHEMA_VERSION", "LibrarySummary", "RunSummary", "dataset", "explain_file", "explain_stream", "merge",
           "parse_shard", "read_manifest", "read_table", "run_info", "summarize", "write_summary_html"]
