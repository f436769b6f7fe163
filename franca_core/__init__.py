"""franca_core: the Franca library (model, objective, training, RASA, evaluation).

Franca (Venkataramanan et al., 2025, arXiv:2507.14137) is a DINOv2/iBOT self-supervised ViT
with nested Matryoshka clustering heads, CyclicMask and RASA post-training. This package holds
everything that touches tensors; it imports neither Prefect nor MLflow.
"""

__version__ = "0.1.0"
