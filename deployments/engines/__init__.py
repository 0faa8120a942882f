"""Inference engines behind one protocol (protocol.py): vLLM's AsyncLLM in production
(vllm_engine.py), a deterministic fake in unit tests (tests/fakes.py)."""
