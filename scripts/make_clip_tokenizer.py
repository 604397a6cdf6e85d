"""Write the CLIP BPE tokenizer files (vocab.json, merges.txt) that every Stable Diffusion family uses.

The vocabulary is OpenAI CLIP's (MIT), as shipped in open-clip-torch's ``bpe_simple_vocab_16e6.txt.gz``.
We generate and ship the files instead of depending on open-clip-torch because that package pulls
torchvision and timm, which the app never needs.

Construction (as CLIP's own ``simple_tokenizer`` does): merges are lines 1..48894 of the file; the
vocabulary is the 256 byte symbols, the same with ``</w>``, one entry per merge (the pair joined),
then ``<|startoftext|>`` and ``<|endoftext|>``: 49,408 entries, identical to the tokenizer of
``openai/clip-vit-large-patch14``.

    python scripts/make_clip_tokenizer.py --bpe path/to/bpe_simple_vocab_16e6.txt.gz
"""

from __future__ import annotations

import argparse
import gzip
import json
from pathlib import Path

OUT = Path(__file__).resolve().parent.parent / "resources" / "configs" / "clip_tokenizer"
MERGES = 49152 - 256 - 2  # CLIP's vocabulary size less the byte symbols and the two special tokens


def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's reversible map from bytes to printable characters (CLIP uses the same)."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    codes = printable[:]
    extra = 0
    for byte in range(256):
        if byte not in printable:
            printable.append(byte)
            codes.append(256 + extra)
            extra += 1
    return dict(zip(printable, (chr(c) for c in codes)))


def build(bpe_gz: Path) -> tuple[dict[str, int], list[str]]:
    lines = gzip.open(bpe_gz).read().decode("utf-8").split("\n")[1:MERGES + 1]
    merges = [tuple(line.split()) for line in lines]
    if len(merges) != MERGES or any(len(m) != 2 for m in merges):
        raise SystemExit(f"{bpe_gz}: not CLIP's BPE file (expected {MERGES} merge pairs)")
    symbols = list(bytes_to_unicode().values())
    vocab = symbols + [s + "</w>" for s in symbols] + ["".join(m) for m in merges]
    vocab += ["<|startoftext|>", "<|endoftext|>"]
    return {token: index for index, token in enumerate(vocab)}, [" ".join(m) for m in merges]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bpe", type=Path, required=True, help="bpe_simple_vocab_16e6.txt.gz from open-clip-torch")
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()
    vocab, merges = build(args.bpe)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
    (args.out / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n", encoding="utf-8")
    print(f"{args.out}: {len(vocab)} tokens, {len(merges)} merges")


if __name__ == "__main__":
    main()
