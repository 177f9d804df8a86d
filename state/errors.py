"""The one base class of errors a user can act on.

Every layer raises its own subclass (PolicyError, StoreError, ToolError); the CLI catches this
base alone and prints one line, so it need not import every layer up front to do so.
"""


class CostwardenError(Exception):
    """Bad input or an outside failure, told in one line: never a traceback to the user."""
