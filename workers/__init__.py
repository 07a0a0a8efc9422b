"""Celery workers. Only the task bodies import torch, lazily; the app imports celery_app/names."""
