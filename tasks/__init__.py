"""Thin Prefect tasks over the stage libraries and CLIs, plus the MLflow and launcher plumbing.

Stage tasks (validate, call one library function or launch a run, read its result file, return a
small typed result): ``curate`` (fetch / per-shard / finish), ``train`` (pretrain and
high-resolution finetuning through ``launch`` / ``slurm``), ``rasa``, ``evaluate``. Tracking:
``record`` (stage and pipeline runs, the model registry) over ``tracking``, ``metrics`` (step
metrics that survive a tracking outage), ``artifacts`` (checkpoints and files) and ``links``
(Prefect <-> MLflow lineage). ``specs`` and ``results`` hold the typed inputs and outputs.
"""
