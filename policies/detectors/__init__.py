"""Built-in detectors. Adding one is one file here plus one test: every module in this package
is imported when the registry loads, and each detector registers itself by name.
"""
