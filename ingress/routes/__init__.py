"""The HTTP endpoints, one module each: chat.py (`/v1/chat/completions`), completions.py
(`/v1/completions`), models.py (`/v1/models`, `/health`), seeds.py (`/generate`, `/`),
ui.py (`/ui`, the browser chat page).
Each registers its routes through dispatch.py, which reads the body, observes the request
and classifies a failure, so an endpoint function only does its own job."""
