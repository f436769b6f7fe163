"""Errors that mean "fix the input or the options", as opposed to a failed run to resume."""

from __future__ import annotations

from data_filters.evalsets import EvalSetError
from data_filters.nsfw import NsfwDetectorError
from data_filters.sources import InputFileError
from data_filters.workdir import WorkDirError

USER_ERRORS: tuple[type[Exception], ...] = (InputFileError, NsfwDetectorError, EvalSetError, WorkDirError)
