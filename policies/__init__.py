"""Policy-as-code: the YAML vocabulary, its loader and validator, detectors, actions and the guard."""
