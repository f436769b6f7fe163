"""Evaluation of frozen backbones: the protocols Franca (arXiv 2507.14137) reports, on any DINOv2-API ViT.

Feature extraction with an on-disk cache (``features``), dataset readers (``datasets``, ``sample_data``),
and one module per evaluator sharing one small interface (``base``), chosen by name from
``registry.EVALUATORS``: ``knn`` (+ Matryoshka curve), ``linear``, ``logreg``, ``hummingbird``,
``overcluster``, ``linear_seg``, ``ood``, ``pictures``. Suites (``suites``) are typed configs; ``runner``
writes ``results.json``; ``cli`` is ``franca eval``.
Protocol facts: ``shared/reference/evaluation-protocols.md``.
"""
