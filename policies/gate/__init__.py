"""The pull-request FinOps gate: pure logic, no IO.

extract (settings in one file's text) -> diff (base vs head, renames are not changes) ->
cost (monthly delta per change, totals, the verdict) -> render (PR comment or JSON).
Git and files are read by tools.gate_git; the command is agent.gate_cmd.
"""

from costwarden.policies.gate.cost import GateOptions, GateReport, GateSource, UsageVolumes, evaluate
from costwarden.policies.gate.diff import Change, diff_settings
from costwarden.policies.gate.extract import Setting, extract, file_format
from costwarden.policies.gate.render import COMMENT_MARKER, render_json, render_markdown

__all__ = ["COMMENT_MARKER", "Change", "GateOptions", "GateReport", "GateSource", "Setting", "UsageVolumes",
           "diff_settings", "evaluate", "extract", "file_format", "render_json", "render_markdown"]
