"""What an import did that the user should know: nodes that became placeholders, values that were
guessed, samplers with no exact equivalent, links or nodes dropped."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class ImportReport:
    source: str = ""  # "ComfyUI workflow (frontend 1.42.15)", "ComfyUI API prompt", ...
    nodes: int = 0
    placeholders: list[str] = field(default_factory=list)
    guessed: list[str] = field(default_factory=list)
    samplers: list[str] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return not (self.placeholders or self.guessed or self.samplers or self.dropped)

    def lines(self) -> list[str]:
        out = [f"Imported a {self.source}: {self.nodes} ComfyUI nodes."]
        for heading, items in (("Placeholders (cannot run until their node pack exists here)", self.placeholders),
                               ("Guessed values", self.guessed), ("Samplers without an exact equivalent", self.samplers),
                               ("Left out", self.dropped)):
            if items:
                out.append(f"{heading}:")
                out.extend(f"  - {item}" for item in items)
        if self.clean:
            out.append("Everything mapped exactly.")
        return out

    def text(self) -> str:
        return "\n".join(self.lines())
