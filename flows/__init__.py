"""Prefect flows: one per stage (``stages``), the end-to-end pipeline (``pipeline``), its typed
parameters (``params``) and the ``franca demo`` command (``cli``). Composition only: the work is in
``tasks`` and the libraries."""
