"""The web app and REST API: ``create_app(inpainter)`` returns a FastAPI application.

Needs the ``serve`` extra (``pip install deepfill[serve]``). ``deepfill serve`` runs it with uvicorn.
"""

from deepfill.server.app import DEFAULT_QUEUE_SIZE, InferenceQueue, QueueFullError, create_app

__all__ = ["DEFAULT_QUEUE_SIZE", "InferenceQueue", "QueueFullError", "create_app"]
