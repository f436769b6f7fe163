"""The ``franca`` command line: one subcommand per pipeline stage.

Each subcommand lives in its own module exposing ``add_arguments(parser)`` and
``run(args) -> int``; modules are imported only when their subcommand runs, so ``franca --help``
stays fast and a stage's heavy dependencies load only when that stage is used.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

# subcommand -> (module path, one-line help). Plain dict next to what it registers.
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "curate": ("data_filters.cli", "download, check, deduplicate and NSFW-filter a URL list or folder"),
    "pretrain": ("franca_core.train.cli_pretrain", "pretrain a Franca backbone (torchrun-ready)"),
    "finetune-highres": ("franca_core.train.cli_finetune", "high-resolution finetuning from a checkpoint"),
    "rasa": ("franca_core.rasa.cli", "RASA post-training: remove absolute-position directions"),
    "eval": ("franca_core.evaluation.cli", "run an evaluation suite on a backbone"),
    "demo": ("flows.cli", "run the whole pipeline on the small embedded default"),
}


def _build_parser(argv: Sequence[str]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="franca", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    wanted = argv[0] if argv else None
    for name, (module_path, help_text) in SUBCOMMANDS.items():
        sp = sub.add_parser(name, help=help_text, description=help_text)
        if name == wanted:
            module = importlib.import_module(module_path)
            module.add_arguments(sp)
            sp.set_defaults(_module=module)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``franca`` console script."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    parser = _build_parser(args_list)
    args = parser.parse_args(args_list)
    return int(args._module.run(args))


if __name__ == "__main__":
    raise SystemExit(main())
