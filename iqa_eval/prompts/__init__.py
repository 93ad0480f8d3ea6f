"""The prompt templates (nine prompting systems of the study, plus ``levels`` for SS and DS, each
in FR and NR), versioned and hashed."""

from iqa_eval.prompts.templates import TEMPLATE_VERSION, Template, get_template, render, supports

__all__ = ["TEMPLATE_VERSION", "Template", "get_template", "render", "supports"]
