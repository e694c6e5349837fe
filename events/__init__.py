"""The event path: an outbox that writers append to inside their transaction, and a drain that hands
claimed batches to the handlers other apps register. Imports no other Mizumori app (DESIGN.md)."""


def emit(kind: str, payload: dict) -> int:
    """See events.services.emit (imported lazily: this package is imported before the app registry is ready)."""
    from .services import emit as _emit

    return _emit(kind, payload)
