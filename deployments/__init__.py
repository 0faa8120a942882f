"""Model deployments: config, engines, and the Ray Serve deployment that wraps vLLM."""
