"""Model deployments: config, the Serve deployment (server.py), what crosses the handle
(calls.py), engines (engines/), and the jobs beside the request path (checkpoints/, cli/,
compat/)."""
