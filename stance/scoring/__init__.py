"""The scoring flow: inputs -> one reader -> one kernel -> one writer family.

* :mod:`~stance.scoring.readers`: every input kind, clean text at the boundary, errors as rows;
* :mod:`~stance.scoring.kernel`: articles -> sentence rows + article row (the only place that
  segments, predicts and aggregates);
* :mod:`~stance.scoring.writers`: JSONL / CSV / Parquet;
* :mod:`~stance.scoring.local` and :mod:`~stance.scoring.distributed`: the single-process and
  the Ray Data engines, which differ only in how rows come in and go out;
* :mod:`~stance.scoring.report`: the HTML report of one article.
"""
