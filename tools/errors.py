"""Errors raised by tools, with messages fit for a user (no tracebacks, no secrets)."""

from costwarden.state.errors import CostwardenError


class ToolError(CostwardenError, RuntimeError):
    """A cloud call failed in a way the user should hear about in one line."""


class DryRunViolation(ToolError):
    """A mutating call was attempted while dry-run is on; it never left the process."""

    def __init__(self, service: str, operation: str) -> None:
        self.service = service
        self.operation = operation
        super().__init__(f"dry-run: refused mutating call {service}.{operation}")


class BillingInputError(ToolError):
    """A billing or usage file is missing, lacks a required column or holds an unreadable value."""
