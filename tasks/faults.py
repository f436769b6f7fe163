"""Failure injection for the rerun tests: ``$FRANCA_FAIL_STAGE`` makes a chosen stage fail.

``FRANCA_FAIL_STAGE=rasa`` fails the RASA task before it starts; ``pretrain@30`` lets pretraining
run until a checkpoint at step 30 or later exists, then kills the training process (as a
preemption would) and fails the task. The integration test sets it through the deployment's job
variables for one run, then reruns without it. Unset, nothing happens.
"""

from __future__ import annotations

import os

ENV = "FRANCA_FAIL_STAGE"


class InjectedFailureError(RuntimeError):
    """Raised where a failure was asked for."""


def failure_for(stage: str) -> str | None:
    """The argument after ``@`` ('' when none) if ``stage`` is asked to fail, else None."""
    for item in os.environ.get(ENV, "").split(","):
        name, _, arg = item.strip().partition("@")
        if name == stage:
            return arg
    return None


def fail_if_asked(stage: str) -> None:
    """Raise ``InjectedFailureError`` when ``stage`` is asked to fail at its start."""
    arg = failure_for(stage)
    if arg is not None and not arg:
        raise InjectedFailureError(f"{ENV} asked stage {stage!r} to fail")


def kill_step(stage: str) -> int | None:
    """For training stages: the checkpoint step after which the run is to be killed, if asked."""
    arg = failure_for(stage)
    return int(arg) if arg else None
