"""The attention syntax of A1111 and ComfyUI prompts, parsed into weighted text fragments.

``(word:1.3)`` gives ``word`` the weight 1.3; ``(word)`` multiplies by 1.1 and ``[word]`` divides by
1.1, nested as often as written (``((word))`` is 1.21); ``\\(`` and ``\\)`` (and ``\\[``, ``\\]``)
are literal brackets; the word ``BREAK`` starts a new 75-token chunk. A bracket without its
partner is taken literally, as is everything else: parsing never fails. Torch-free.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

UP, DOWN = 1.1, 1 / 1.1
_CLOSER = {"(": ")", "[": "]"}
_BREAK = re.compile(r"\s*\bBREAK\b\s*")
_NUMBER = re.compile(r"\s*[-+]?(\d+(\.\d*)?|\.\d+)\s*")


@dataclass(frozen=True)
class Fragment:
    text: str
    weight: float = 1.0
    chunk_break: bool = False  # BREAK: what follows starts a new chunk


def parse(prompt: str) -> list[Fragment]:
    """``prompt`` as fragments of text with their weights, in order, adjacent equal weights joined."""
    items = _lex(prompt)
    pairs = _pair(items)
    out: list[Fragment] = []
    _walk(items, pairs, 0, len(items), 1.0, out)
    return _split_breaks(_join(out))


def _lex(prompt: str) -> list[tuple[str, str]]:
    """(kind, char): 'open'/'close' for brackets, 'lit' for text (escaped brackets included)."""
    items, i = [], 0
    while i < len(prompt):
        char = prompt[i]
        if char == "\\" and i + 1 < len(prompt) and prompt[i + 1] in "()[]\\":
            items.append(("lit", prompt[i + 1]))
            i += 2
            continue
        kind = "open" if char in "([" else "close" if char in ")]" else "lit"
        items.append((kind, char))
        i += 1
    return items


def _pair(items: list[tuple[str, str]]) -> dict[int, int]:
    """Opening index -> closing index for the brackets that have a partner of their kind."""
    pairs, stack = {}, []
    for index, (kind, char) in enumerate(items):
        if kind == "open":
            stack.append(index)
        elif kind == "close":
            # the nearest open bracket of the same kind closes; anything opened inside it
            # and left open is literal
            for depth in range(len(stack) - 1, -1, -1):
                if _CLOSER[items[stack[depth]][1]] == char:
                    pairs[stack[depth]] = index
                    del stack[depth:]
                    break
    return pairs


def _explicit_weight(items, pairs: dict[int, int], lo: int, hi: int) -> tuple[int, float] | None:
    """For ``(text:1.3)``: the index of the ':' and the weight, if the group ends with one."""
    closers = set(pairs.values())
    for index in range(hi - 1, lo - 1, -1):
        kind, char = items[index]
        if kind != "lit" and (index in pairs or index in closers):
            return None  # a nested group after the last ':': not a weight
        if kind == "lit" and char == ":":
            tail = "".join(c for _, c in items[index + 1:hi])
            if _NUMBER.fullmatch(tail):
                return index, float(tail)
            return None
    return None


def _walk(items, pairs: dict[int, int], lo: int, hi: int, weight: float, out: list[Fragment]) -> None:
    index = lo
    while index < hi:
        kind, char = items[index]
        if kind == "open" and index in pairs:
            end = pairs[index]
            if char == "(":
                explicit = _explicit_weight(items, pairs, index + 1, end)
                if explicit is not None:
                    _walk(items, pairs, index + 1, explicit[0], weight * explicit[1], out)
                else:
                    _walk(items, pairs, index + 1, end, weight * UP, out)
            else:
                _walk(items, pairs, index + 1, end, weight * DOWN, out)
            index = end + 1
            continue
        out.append(Fragment(char, weight))
        index += 1


def _join(fragments: list[Fragment]) -> list[Fragment]:
    joined: list[Fragment] = []
    for fragment in fragments:
        if joined and joined[-1].weight == fragment.weight:
            joined[-1] = Fragment(joined[-1].text + fragment.text, fragment.weight)
        else:
            joined.append(fragment)
    return joined


def _split_breaks(fragments: list[Fragment]) -> list[Fragment]:
    out: list[Fragment] = []
    for fragment in fragments:
        parts = _BREAK.split(fragment.text)
        for i, part in enumerate(parts):
            if i:
                out.append(Fragment("", 1.0, chunk_break=True))
            if part:
                out.append(Fragment(part, fragment.weight))
    return out
