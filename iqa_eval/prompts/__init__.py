"""The eighteen prompt templates (nine prompting systems × FR/NR), versioned and hashed."""

from iqa_eval.prompts.templates import TEMPLATE_VERSION, Template, get_template, render

__all__ = ["TEMPLATE_VERSION", "Template", "get_template", "render"]
