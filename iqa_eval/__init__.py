"""iqa-eval: a pytest suite that measures how well multimodal LLMs judge image quality."""

from iqa_eval.api import evaluate

__all__ = ["evaluate"]
__version__ = "0.1.0"
