"""JSON values that travel as their text: payloads are parsed once, when a client sends them.

A task's payload is checked and made canonical when the API receives it; from then on the API
stores it, publishes it and answers it as text, spliced into the JSON around it, never parsed
or encoded again on the way. Payloads can be megabytes: this keeps that work off the IOLoop.
"""

from __future__ import annotations

import json
import secrets
from typing import Any


class JsonText:
    """The text of one valid JSON value."""

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text

    @classmethod
    def of(cls, value: Any) -> JsonText:
        """The canonical text of `value` (keys sorted): equal values, equal texts."""
        return cls(json.dumps(value, sort_keys=True, allow_nan=False))

    def value(self) -> Any:
        """The value, parsed."""
        return json.loads(self.text)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, JsonText) and other.text == self.text

    def __hash__(self) -> int:
        return hash(self.text)

    def __repr__(self) -> str:
        shown = self.text if len(self.text) <= 60 else self.text[:57] + "..."
        return "JsonText(%r)" % shown


def as_json_text(value: Any) -> JsonText:
    """`value` itself if it is JsonText already, else its canonical text."""
    return value if isinstance(value, JsonText) else JsonText.of(value)


def dumps(value: Any, separators: tuple[str, str] | None = None) -> str:
    """`json.dumps(value)`, with every JsonText inside spliced in as it is."""
    texts: list[str] = []

    def placeholder(found: Any) -> str:
        if not isinstance(found, JsonText):
            raise TypeError("%s is not JSON serializable" % type(found).__name__)
        texts.append(found.text)
        return _MARKER

    encoded = json.dumps(value, separators=separators, default=placeholder)
    if not texts:
        return encoded
    # json.dumps writes values in the order it visits them, the order `placeholder` saw them.
    pieces = encoded.split(_QUOTED_MARKER)
    if len(pieces) != len(texts) + 1:
        raise ValueError("a string of the value imitates the JSON text placeholder")
    return pieces[0] + "".join(text + piece for text, piece in zip(texts, pieces[1:], strict=True))


# Stands for a JsonText while the value around it is encoded: random per process, so no string
# a client sends can pass for it.
_MARKER = "\x00json-%s" % secrets.token_hex(16)
_QUOTED_MARKER = json.dumps(_MARKER)
