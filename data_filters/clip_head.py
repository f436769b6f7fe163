"""The LAION CLIP-embedding NSFW head as a small torch MLP, and offline open_clip loading.

LAION's detector (LAION-AI/CLIP-based-NSFW-Detector) is a Keras MLP over L2-normalised CLIP
image embeddings: a standardisation layer, dense layers with ReLU, and one sigmoid output giving
p(NSFW). Its weights port to this head's file format, a safetensors file holding

- ``layers.{i}.weight`` (out_i, in_i) and ``layers.{i}.bias`` (out_i,) for i = 0..k-1, the last
  layer having one output; ReLU between layers, sigmoid after the last;
- optionally ``input_mean`` and ``input_std`` (in_0,): standardisation applied first.

The CLIP model is loaded only from local paths: a directory in open_clip's hub layout
(``open_clip_config.json`` + weights, loaded through ``local-dir:``) or a single weights file for a
built-in architecture name. Nothing downloads, and a directory without weights is an error rather
than a randomly initialised model.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn

_LAYER_KEY = re.compile(r"^layers\.(\d+)\.(weight|bias)$")
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pth", ".pt")


class ClipHead(nn.Module):
    """MLP from a CLIP embedding (n, D) to p(NSFW) (n,)."""

    def __init__(
        self, layers: Sequence[nn.Linear], mean: torch.Tensor | None = None, std: torch.Tensor | None = None
    ) -> None:
        super().__init__()
        if not layers or layers[-1].out_features != 1:
            raise ValueError("an NSFW head needs at least one layer and a single output")
        self.layers = nn.ModuleList(layers)
        dim = layers[0].in_features
        self.input_mean: torch.Tensor
        self.input_std: torch.Tensor
        self.register_buffer("input_mean", torch.zeros(dim) if mean is None else mean.float())
        self.register_buffer("input_std", torch.ones(dim) if std is None else std.float())
        self.input_dim = dim

    @classmethod
    def mlp(cls, dims: Sequence[int]) -> ClipHead:
        """Randomly initialised head with layer widths ``dims`` (input dim first, 1 last)."""
        return cls([nn.Linear(a, b) for a, b in itertools.pairwise(dims)])

    def forward(self, embeddings: torch.Tensor) -> torch.Tensor:
        x = (embeddings - self.input_mean) / self.input_std  # (n, D)
        for index, layer in enumerate(self.layers):
            x = layer(x)
            if index < len(self.layers) - 1:
                x = torch.relu(x)
        return torch.sigmoid(x.squeeze(-1))  # (n,)

    def save(self, path: Path) -> None:
        """Write the head in the documented safetensors format."""
        tensors = {k: v.detach().contiguous() for k, v in self.state_dict().items()}
        save_file(tensors, str(path))

    @classmethod
    def load(cls, path: Path) -> ClipHead:
        """Read a head file; raises FileNotFoundError / ValueError with the reason."""
        if not path.is_file():
            raise FileNotFoundError(f"NSFW head file {path} does not exist")
        tensors = load_file(str(path))
        indices = sorted({int(m.group(1)) for k in tensors if (m := _LAYER_KEY.match(k))})
        if not indices or indices != list(range(len(indices))):
            raise ValueError(
                f"{path}: expected tensors layers.0.weight, layers.0.bias, ...; found {sorted(tensors)}"
            )
        layers = []
        for index in indices:
            weight, bias = tensors[f"layers.{index}.weight"], tensors[f"layers.{index}.bias"]
            layer = nn.Linear(weight.shape[1], weight.shape[0])
            layer.load_state_dict({"weight": weight.float(), "bias": bias.float()})
            layers.append(layer)
        head = cls(layers, tensors.get("input_mean"), tensors.get("input_std"))
        return head.eval()


def load_clip_model(path: Path, arch: str) -> tuple[nn.Module, Callable[..., torch.Tensor]]:
    """open_clip model (eval mode) and its eval preprocessing, from local files only."""
    import open_clip

    if not path.exists():
        raise FileNotFoundError(f"CLIP model path {path} does not exist")
    if path.is_dir():
        if not (path / "open_clip_config.json").is_file():
            raise FileNotFoundError(f"{path} has no open_clip_config.json (open_clip hub layout expected)")
        if not any(p.suffix in WEIGHT_SUFFIXES for p in path.iterdir()):
            raise FileNotFoundError(f"{path} holds no weights file ({', '.join(WEIGHT_SUFFIXES)})")
        model, _, preprocess = open_clip.create_model_and_transforms(f"local-dir:{path.resolve()}")
    else:
        if arch not in open_clip.list_models():
            raise ValueError(f"unknown open_clip architecture {arch!r}")
        model, _, preprocess = open_clip.create_model_and_transforms(arch, pretrained=str(path))
    model.eval()
    return model, preprocess
