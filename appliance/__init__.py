"""Mamori's shared core: config model, revisions, apply orchestration, storage, audit log, daemon and CLI."""

__version__ = "0.1.0"
