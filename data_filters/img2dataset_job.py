"""Child-process entry point: ``python -m data_filters.img2dataset_job JOB.json``.

img2dataset installs a SIGINT handler, may call ``sys.exit`` and spawns a process pool, none of
which belongs in the caller's process (a Prefect worker thread, a test). The job file holds the
keyword arguments of ``img2dataset.download``.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path


def main(argv: list[str]) -> int:
    """Run one img2dataset download described by the JSON file ``argv[0]``."""
    os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
    arguments = json.loads(Path(argv[0]).read_text())
    from img2dataset import download  # imported here: heavy, and only this process needs it

    download(**arguments)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
