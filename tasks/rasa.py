"""RASA task: ``franca rasa`` on a trained backbone and the curated images; returns its report.

RASA reads an image folder (or a CSV of image paths), so the curated data's kept shards are first
unpacked into ``<out>/images`` (once; a handful of tar reads).
"""

from __future__ import annotations

import tarfile
from pathlib import Path

from prefect import task

from tasks.faults import fail_if_asked
from tasks.launch import run_franca
from tasks.links import prefect_tags
from tasks.results import RasaOutput, read_json, stage_key
from tasks.specs import RasaSpec

IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".webp")
HEADLINE = (
    "probe_r2_before",
    "probe_r2_after",
    "entropy_before",
    "entropy_after",
    "rounds_run",
    "rounds_kept",
)


def unpack_images(shards_dir: Path, folder: Path) -> Path:
    """Image members of every ``*.tar`` under ``shards_dir`` into ``folder`` (skipped if done)."""
    done = folder / ".complete"
    if done.exists():
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    for shard in sorted(shards_dir.glob("*.tar")):
        with tarfile.open(shard) as archive:
            for member in archive.getmembers():
                if member.isfile() and member.name.lower().endswith(IMAGE_EXTS):
                    data = archive.extractfile(member)
                    if data is not None:
                        (folder / f"{shard.stem}_{Path(member.name).name}").write_bytes(data.read())
    done.touch()
    return folder


def rasa_data(spec: RasaSpec) -> str:
    """What to pass as ``--data``: a shards folder is unpacked first; anything else as given."""
    data = Path(spec.data)
    if data.is_dir() and any(data.glob("*.tar")):
        return str(unpack_images(data, Path(spec.out_dir) / "images"))
    return spec.data


@task(name="rasa", tags=["training"])
def rasa(spec: RasaSpec) -> RasaOutput:
    """Run RASA post-training; returns the folded backbone and the before/after numbers."""
    fail_if_asked("rasa")
    out = Path(spec.out_dir)
    args = [
        "rasa",
        "--backbone",
        spec.backbone,
        "--data",
        rasa_data(spec),
        "--out",
        str(out),
        *spec.extra_args,
    ]
    run_franca(args, out / "rasa.log")
    report = read_json(out / "report.json")
    summary = {k: float(report[k]) for k in HEADLINE if isinstance(report.get(k), int | float)}
    files = [out / n for n in ("report.json", "config.json", "rasa_head.pth", "rasa.log")]
    return RasaOutput(
        stage="rasa",
        key=stage_key("rasa", spec, spec.out_dir),
        out_dir=spec.out_dir,
        config=read_json(out / "config.json") if (out / "config.json").exists() else spec.model_dump(),
        summary=summary,
        artifacts={"rasa": [str(f) for f in files], "plots": [str(out / "plots")]},
        data_sha256=spec.data_sha256,
        backbone=str(out / "backbone_rasa.safetensors"),
        prefect=prefect_tags(),
        report=report,
    )
