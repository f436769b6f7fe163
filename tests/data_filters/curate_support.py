"""Helpers shared by the curation tests (kept out of conftest.py, which tests cannot import safely)."""

from __future__ import annotations

import argparse
from dataclasses import dataclass

import pandas as pd

from data_filters.cli import add_arguments, config_from_args
from data_filters.config import CurateConfig


@dataclass(frozen=True)
class EndToEnd:
    """One uninterrupted run over the catalogue."""

    config: CurateConfig
    manifest: pd.DataFrame
    hits_after_run: int


def config_for(args: list[str]) -> CurateConfig:
    """The CurateConfig that ``franca curate`` builds from ``args``."""
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return config_from_args(parser.parse_args(args))
