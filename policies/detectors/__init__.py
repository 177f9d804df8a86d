"""Built-in detectors. Adding one is one file here plus one test; it registers itself by name."""

from policies.detectors import idle_gpu  # noqa: F401
