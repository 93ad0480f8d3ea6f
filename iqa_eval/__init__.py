"""iqa-eval: a pytest suite that measures how well multimodal LLMs judge image quality."""

from iqa_eval.api import evaluate
from iqa_eval.version import __version__ as __version__

__all__ = ["evaluate"]
