"""Interpreter start-up hooks for library builds that do not load as installed (torch_ext.py).

Imported by a `.pth` file at every interpreter start: keep this package free of imports.
"""
