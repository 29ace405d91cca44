"""What a request's tools and tool_choice mean for its generation, for both API formats.

- auto: the tools go to the chat template (its `tools` variable, as transformers passes
  them) and calls are read from the reply by the template's convention;
- none: the template does not see them and nothing is read as a call;
- required / a named function: as auto, and a grammar makes the reply exactly one call,
  written the way the template teaches.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from modules.api.errors import ApiError
from modules.api.structured import check_loader, tool_call_grammar
from modules.tool_calls import HERMES, template_style


@dataclass
class ToolPlan:
    template_tools: list[dict] | None = None      # OpenAI-shaped, for the template
    names: frozenset[str] = field(default_factory=frozenset)
    parse: bool = False
    grammar: str = ""
    style: str = HERMES


def plan_tools(functions: list[dict], choice: str | None, template: str | None, loader: str | None) -> ToolPlan:
    """functions: [{"name", "description", "parameters"}]; choice: "auto", "none",
    "required" or a function name (None: auto when there are tools)."""
    if not functions:
        if choice not in (None, "auto", "none"):
            raise ApiError(400, "tool_choice needs tools.", param="tool_choice")
        return ToolPlan()
    choice = choice or "auto"
    if choice == "none":
        return ToolPlan()
    style = template_style(template)
    plan = ToolPlan(template_tools=[{"type": "function", "function": f} for f in functions],
                    names=frozenset(f["name"] for f in functions), parse=True, style=style)
    if choice != "auto":
        check_loader(loader, "tool_choice")
        plan.grammar = tool_call_grammar(style, functions, None if choice == "required" else choice, loader)
    return plan
