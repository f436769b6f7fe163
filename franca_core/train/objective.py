"""The Franca objective: student and teacher networks, teacher targets, and the summed loss.

Franca (arXiv 2507.14137, §3) trains a ViT with DINO's CLS self-distillation and iBOT's
masked-patch distillation, each through nested Matryoshka heads, plus DINOv2's KoLeo regulariser.
Reference §4 gives the exact terms: per level, DINO local/global cross-view losses scaled by
1 / (n_g n_l + n_g (n_g - 1)), iBOT per-image-weighted masked-token loss, levels summed with no
weights; KoLeo on the student's global CLS tokens; teacher targets by Sinkhorn-Knopp.

Parallelism stays outside: the training engine may wrap ``student`` in DDP or FSDP2, which is why
the whole student computation happens in ``SSLNetwork.forward`` (DDP needs its wrapped forward).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor, nn
from torch.profiler import record_function

from franca_core.data.collate import MultiCropBatch
from franca_core.heads import ProjectionHead
from franca_core.losses import (
    DinoLoss,
    LevelLoss,
    SoftmaxCentering,
    dino_cls_loss,
    ibot_patch_loss,
    koleo_loss_per_crop,
    sinkhorn_knopp_levels,
    target_entropies,
)
from franca_core.models.vision_transformer import VisionTransformer

Centering = Literal["sinkhorn_knopp", "softmax"]


@dataclass(frozen=True)
class NetworkOutput:
    """What one side (student or teacher) computes for a batch; levels are coarse to fine."""

    cls_global: Tensor  # [n_g * B, D] normed CLS tokens of the global crops
    dino_global: tuple[Tensor, ...]  # per level [n_g * B, K_l]
    dino_local: tuple[Tensor, ...]  # per level [n_l * B, K_l] (0 rows without local crops)
    ibot: tuple[Tensor, ...]  # per level [R, K_l]; R = n_masked, or upperbound when padded


class SSLNetwork(nn.Module):
    """Backbone plus the DINO (CLS) and iBOT (patch) heads: one side of the student/teacher pair."""

    def __init__(self, backbone: VisionTransformer, dino_head: ProjectionHead, ibot_head: ProjectionHead):
        super().__init__()
        self.backbone = backbone
        self.dino_head = dino_head
        self.ibot_head = ibot_head

    def forward(
        self,
        global_crops: Tensor,
        local_crops: Tensor | None,
        masks: Tensor | None,
        mask_indices: Tensor,
        pad_to: int | None = None,
    ) -> NetworkOutput:
        """Run the backbone on both crop sets and the heads on CLS and selected patch tokens.

        ``mask_indices`` index the flattened global patch grid [n_g * B * N]; with ``pad_to`` the
        selected tokens are zero-padded to that many rows before the iBOT head (the official
        ``upperbound`` buffer, needed only to reproduce its Sinkhorn-Knopp defect).
        """
        out_g = self.backbone.forward_features(global_crops, masks=masks)
        cls_g = out_g.x_norm_clstoken  # [n_g B, D]
        n_global = cls_g.shape[0]
        if local_crops is not None and local_crops.shape[0] > 0:
            cls_l = self.backbone.forward_features(local_crops).x_norm_clstoken  # [n_l B, D]
            dino = self.dino_head(torch.cat([cls_g, cls_l]))  # per level [(n_g + n_l) B, K_l]
        else:
            dino = self.dino_head(cls_g)
        patches = out_g.x_norm_patchtokens.flatten(0, 1)  # [n_g B, N, D] -> [n_g B N, D]
        selected = patches.index_select(0, mask_indices)  # [M, D]
        if pad_to is not None and pad_to > selected.shape[0]:
            selected = torch.cat(
                [selected, selected.new_zeros(pad_to - selected.shape[0], selected.shape[1])]
            )
        return NetworkOutput(
            cls_global=cls_g,
            dino_global=tuple(level[:n_global] for level in dino),
            dino_local=tuple(level[n_global:] for level in dino),
            ibot=tuple(self.ibot_head(selected)),
        )


@dataclass(frozen=True)
class TeacherTargets:
    """Teacher probabilities per level, coarse to fine."""

    dino: tuple[Tensor, ...]  # per level [n_g * B, K_l]
    ibot: tuple[Tensor, ...]  # per level [M, K_l]


@dataclass(frozen=True)
class LossBreakdown:
    """Every term of one step's loss; ``total`` carries the graph, the rest is for logging."""

    total: Tensor
    dino: DinoLoss
    ibot: LevelLoss
    koleo: Tensor
    # Per level, the mean entropy of the teacher's targets over ln K_l (detached; losses.diagnostics).
    dino_target_entropy: tuple[Tensor, ...] = ()
    ibot_target_entropy: tuple[Tensor, ...] = ()


def unwrap(module: nn.Module) -> nn.Module:
    """The module inside a DDP wrapper (itself otherwise)."""
    inner = getattr(module, "module", None)
    return inner if isinstance(inner, nn.Module) else module


class FrancaObjective(nn.Module):
    """Student, EMA teacher and the Franca loss.

    Args:
        student: The trained network (the engine may replace it by a DDP/FSDP-wrapped one).
        teacher: Same architecture without drop path; updated only by :meth:`update_teacher`.
        dino_weight, ibot_weight, koleo_weight: Term weights (official 1, 1, 0.1).
        student_temp: Student temperature (0.1).
        centering: Teacher target normalisation.
        sk_iterations: Sinkhorn-Knopp iterations (3).
        official_sk_padding_rows: Reproduce the official iBOT padding-row defect (reference §9.12).
        n_global_crops: Global crops per image (2).
    """

    def __init__(
        self,
        student: SSLNetwork,
        teacher: SSLNetwork,
        *,
        dino_weight: float = 1.0,
        ibot_weight: float = 1.0,
        koleo_weight: float = 0.1,
        student_temp: float = 0.1,
        centering: Centering = "sinkhorn_knopp",
        sk_iterations: int = 3,
        official_sk_padding_rows: bool = False,
        n_global_crops: int = 2,
    ) -> None:
        super().__init__()
        # ``student`` may later be replaced by its DDP wrapper (train/parallel.py), hence nn.Module.
        self.student: nn.Module = student
        self.teacher = teacher
        self.teacher.requires_grad_(False)
        self.weights = (dino_weight, ibot_weight, koleo_weight)
        self.student_temp, self.centering = student_temp, centering
        self.sk_iterations, self.official_sk_padding_rows = sk_iterations, official_sk_padding_rows
        self.n_global_crops = n_global_crops
        # The student's loss terms, as attributes so that compile_losses() can swap in compiled versions.
        self._dino_loss = dino_cls_loss
        self._ibot_loss = ibot_patch_loss
        self._koleo_loss = koleo_loss_per_crop
        dino_k = _prototype_counts(student.dino_head)
        ibot_k = _prototype_counts(student.ibot_head)
        self.dino_center = SoftmaxCentering(dino_k) if centering == "softmax" else None
        self.ibot_center = SoftmaxCentering(ibot_k) if centering == "softmax" else None

    @torch.no_grad()
    def teacher_targets(self, batch: MultiCropBatch, teacher_temp: float) -> TeacherTargets:
        """Teacher probabilities for the DINO and iBOT terms (reference §4.1)."""
        self.teacher.eval()
        pad_to = batch.upperbound if self.official_sk_padding_rows else None
        out = self.teacher(batch.global_crops, None, None, batch.mask_indices, pad_to=pad_to)
        n_masked = batch.mask_indices.shape[0]
        if self.dino_center is not None and self.ibot_center is not None:
            dino = self.dino_center.targets(out.dino_global, teacher_temp)
            ibot = self.ibot_center.targets(out.ibot, teacher_temp, n_valid=n_masked)
            self.dino_center.update(out.dino_global)
            self.ibot_center.update(out.ibot, n_valid=n_masked)
            return TeacherTargets(dino=dino, ibot=ibot)
        dino = sinkhorn_knopp_levels(out.dino_global, teacher_temp, self.sk_iterations)
        ibot = sinkhorn_knopp_levels(
            out.ibot, teacher_temp, self.sk_iterations, n_valid=n_masked,
            official_padding_rows=self.official_sk_padding_rows,
        )  # fmt: skip
        return TeacherTargets(dino=dino, ibot=ibot)

    def forward(self, batch: MultiCropBatch, teacher_temp: float) -> LossBreakdown:
        """Teacher targets, student forward, and every loss term for one batch."""
        with record_function("franca.teacher"):
            targets = self.teacher_targets(batch, teacher_temp)
        local = batch.local_crops if batch.n_local_crops > 0 else None
        with record_function("franca.student"):
            out: NetworkOutput = self.student(batch.global_crops, local, batch.masks, batch.mask_indices)
        with record_function("franca.losses"):
            dino = self._dino_loss(
                out.dino_global, out.dino_local, targets.dino, self.n_global_crops, self.student_temp
            )
            ibot = self._ibot_loss(
                out.ibot, targets.ibot, batch.masks_weight, batch.global_crops.shape[0], self.student_temp
            )
            koleo = self._koleo_loss(out.cls_global, self.n_global_crops)
            w_dino, w_ibot, w_koleo = self.weights
            total = w_dino * dino.total + w_ibot * ibot.total + w_koleo * koleo
        return LossBreakdown(
            total=total,
            dino=dino,
            ibot=ibot,
            koleo=koleo,
            dino_target_entropy=target_entropies(targets.dino),
            ibot_target_entropy=target_entropies(targets.ibot, n_rows=batch.mask_indices.shape[0]),
        )

    def compile_losses(self) -> None:
        """``torch.compile`` the student's loss terms: fuses their fp32 passes over the [rows, K] logits.

        The teacher's Sinkhorn-Knopp stays eager: its temperature changes every warm-up step, and a
        compiled function would specialise on (and recompile for) each value.
        """
        self._dino_loss = torch.compile(dino_cls_loss)
        self._ibot_loss = torch.compile(ibot_patch_loss)
        self._koleo_loss = torch.compile(koleo_loss_per_crop)

    @torch.no_grad()
    def update_teacher(self, momentum: float) -> None:
        """EMA: teacher <- m * teacher + (1 - m) * student, over every parameter (reference §6)."""
        student_params: list[Tensor] = [p.detach() for p in unwrap(self.student).parameters()]
        teacher_params: list[Tensor] = list(self.teacher.parameters())
        torch._foreach_mul_(teacher_params, momentum)
        torch._foreach_add_(teacher_params, student_params, alpha=1.0 - momentum)

    def init_teacher_from_student(self) -> None:
        """Copy the student's weights into the teacher (done once at start, reference §6)."""
        self.teacher.load_state_dict(unwrap(self.student).state_dict())


def _prototype_counts(head: nn.Module) -> tuple[int, ...]:
    counts = getattr(head, "n_prototypes", None)
    if isinstance(counts, int):
        return (counts,)
    if counts is None:
        raise TypeError(f"{type(head).__name__} does not expose n_prototypes")
    return tuple(counts)
