"""The operator's command line, `qwen-vl-serve run|download|validate` (main.py)."""
