"""Fixture function whose init fails: its module raises on import."""

raise RuntimeError("this module cannot be imported")


def handler(event: object, context: object) -> None:  # pragma: no cover - never reached
    return None
