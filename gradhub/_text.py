"""Small text helpers for messages."""


def with_article(word: str) -> str:
    """``"an optimizer"``, ``"a layer"``."""
    return f"{'an' if word[:1] in 'aeiou' else 'a'} {word}"
