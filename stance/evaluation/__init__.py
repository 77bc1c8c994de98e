"""The training flow after the data: evaluate, select, ship. Each module does one job.

* :mod:`~stance.evaluation.specs`: :class:`~stance.evaluation.specs.ModelSpec`, the seed, every spec, the grids;
* :mod:`~stance.evaluation.protocol`: grouped folds, nested tuning, probe-free fitting, held-out-by-article CV;
* :mod:`~stance.evaluation.metrics`: macro-F1 and the other figures, pair and side accuracy, bootstrap CIs,
  paired comparisons;
* :mod:`~stance.evaluation.heldout`: one fitted model scored on the challenge, contrast and article test sets
  and the behavioural suite (:mod:`~stance.evaluation.behavioural`);
* :mod:`~stance.evaluation.runner`: one setting through the protocol, a grid with its run cache, the results;
* :mod:`~stance.evaluation.selection`: the declared selection rule and the default rule;
* :mod:`~stance.evaluation.shipping`: train and save the chosen models (:func:`~stance.evaluation.shipping.train_shipped`);
* :mod:`~stance.evaluation.tables`, :mod:`~stance.evaluation.cards`: results Markdown, confusion PNGs, the
  README headline; model cards.
"""
