"""The one base class of errors a user can act on.

Every layer raises its own subclass (PolicyError, StoreError, ToolError); the CLI catches this
base alone and prints one line, so it need not import every layer up front to do so.
"""


class CostwardenError(Exception):
    """Bad input or an outside failure, told in one line: never a traceback to the user."""


def first_line(exc: BaseException) -> str:
    """An exception as the one line a user reads: its message's first line, or its class name."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else exc.__class__.__name__
