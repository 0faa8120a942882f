"""Where a model's weights come from: `source` -> local checkpoint directory (sources.py),
including the tiny random-weight checkpoints built offline for tests and the CPU default
(tiny.py, with the Qwen chat templates they carry, templates.py)."""
