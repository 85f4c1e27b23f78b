#!/usr/bin/env python3
"""Trains the Gemma-like SentencePiece models that the tokenizer tests compare
facet against (tests/cli/tokenizer_vs_spm.sh runs spm_encode live on them).

Two BPE models of different vocabulary sizes, with Gemma's settings
(docs/GEMMA.md, "Tokenizer"): byte fallback, digits split, identity normalization, no
dummy prefix, whitespace kept, <start_of_turn>/<end_of_turn> user-defined.

The corpus is made here, deterministically: English and code from the Python
standard library's docstrings, plus seeded random "words" in Cyrillic, Greek,
CJK, Hangul, Arabic and emoji, so that merges exist in many scripts.

Usage: python3 tests/reference/make_tokenizer_fixtures.py tests/fixtures/tokenizer
Needs: spm_train (Debian package `sentencepiece`).
"""
import inspect
import os
import random
import subprocess
import sys
import tempfile

SIZES = {"spm-bpe-1k": 1000, "spm-bpe-8k": 8000}

# Gemma's tokenizer as spm_train makes it: BPE with byte fallback and split
# digits, no normalization or dummy prefix, whitespace pieces kept, Gemma's
# special ids and turn markers (make_gguf_fixtures.py trains with these too)
SPM_GEMMA_FLAGS = [
    "--model_type=bpe", "--byte_fallback=true", "--split_digits=true",
    "--normalization_rule_name=identity", "--add_dummy_prefix=false",
    "--remove_extra_whitespaces=false", "--allow_whitespace_only_pieces=true",
    "--character_coverage=1.0",
    "--pad_id=0", "--eos_id=1", "--bos_id=2", "--unk_id=3",
    "--pad_piece=<pad>", "--eos_piece=<eos>", "--bos_piece=<bos>", "--unk_piece=<unk>",
    "--user_defined_symbols=<start_of_turn>,<end_of_turn>",
]

SCRIPTS = [
    (0x0430, 0x044F),    # Cyrillic
    (0x03B1, 0x03C9),    # Greek
    (0x4E00, 0x4E00 + 400),  # CJK (a slice)
    (0x3041, 0x3096),    # Hiragana
    (0xAC00, 0xAC00 + 300),  # Hangul (a slice)
    (0x0627, 0x064A),    # Arabic
    (0x1F600, 0x1F64F),  # emoji
]


def stdlib_text():
    import collections, email, json, http.client, argparse, pathlib, string, textwrap
    lines = []
    for mod in (collections, email, json, http.client, argparse, pathlib, string, textwrap):
        for _, obj in sorted(vars(mod).items()):
            doc = inspect.getdoc(obj)
            if doc:
                lines.extend(doc.splitlines())
    return lines


def foreign_lines(rng, n):
    lines = []
    for _ in range(n):
        lo, hi = rng.choice(SCRIPTS)
        alphabet = [chr(c) for c in range(lo, hi + 1)][:60]  # few letters -> frequent pairs
        words = ["".join(rng.choice(alphabet) for _ in range(rng.randint(1, 6))) for _ in range(rng.randint(3, 12))]
        lines.append(" ".join(words))
    return lines


def tricky_lines():
    """Inputs that trip tokenizers: each becomes one line of tricky.txt."""
    b = lambda s: s.encode("utf-8")
    lines = [
        b(""), b(" "), b("   "), b("\t"), b(" \t \t"), b("a  b   c    d"), b("  leading"), b("trailing  "),
        b("Hello, world!"), b("The quick brown fox jumps over the lazy dog."),
        b("1234567890 3.14159 -42 1e10 0x1F $12.50"), b("x=1;y=2;print(x+y)"),
        b("def f(a, b):\n"[:-2] + "    return a + b"),
        b("<start_of_turn>user"), b("<start_of_turn>user\nHi<end_of_turn>"[:0] + "<start_of_turn>user Hi<end_of_turn>"),
        b("<start_of_turn><end_of_turn><start_of_turn>"), b("<start_of_turn"), b("start_of_turn>"),
        b("<bos>Hello<eos>"), b("<unk> <pad> <0x41>"),
        b("日本語のテキストと中文文本和한국어 텍스트"), b("Привет, мир! Γειά σου Κόσμε! مرحبا بالعالم"),
        b("emoji: 😀😃😄 👍🏽 👨‍👩‍👧‍👦 🇫🇷 ❤️"), b("combining: e\u0301 a\u0308 n\u0303"),
        b("\ufeffBOM at start"), b("zero\u200bwidth\u200djoiner"), b("replacement \ufffd char"),
        b("math: ∑ ∫ √ ∞ ≠ ≤ ≥ ± × ÷"), b("▁ already a space mark ▁▁"), b("tab\tseparated\tvalues"),
        b("a" * 300), b("ab" * 200), b(" ".join(["word"] * 100)),
        # invalid UTF-8
        b"\xff", b"a\xffb", b"\xc3", b"\xc3(", b"\xe3\x81", b"\xe3\x81 x", b"\xc0\xaf", b"\xed\xa0\x80",
        b"\xf4\x90\x80\x80", b"\xf8\x88\x80\x80\x80", b"\x80\x81\x82", b"ok\xe2\x82", b"\xf0\x9f\x98",
        b"mixed \xe6\x97\xa5\xff\xe6\x9c\xac",
        # control characters, carriage return, NUL
        b"line with CR\r", b"\rstart", b"nul\x00byte", b"\x01\x02\x1b[31mred\x1b[0m", b"\x7f",
    ]
    rng = random.Random(11)
    for _ in range(40):  # random byte strings, avoiding the line separator
        lines.append(bytes(rng.choice([i for i in range(256) if i != 10]) for _ in range(rng.randint(1, 40))))
    for _ in range(40):  # random code points from many scripts, with spaces
        lo, hi = rng.choice(SCRIPTS + [(0x20, 0x7E), (0xA0, 0x17F)])
        lines.append(b("".join(chr(rng.randint(lo, hi)) if rng.random() > 0.15 else " " for _ in range(rng.randint(1, 30)))))
    return lines


def main(out_dir):
    rng = random.Random(7)
    lines = stdlib_text() + foreign_lines(rng, 4000)
    lines += ["<start_of_turn>user", "Hello!<end_of_turn>", "<start_of_turn>model", "    indented    code  "]
    rng.shuffle(lines)
    os.makedirs(out_dir, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        corpus = os.path.join(tmp, "corpus.txt")
        with open(corpus, "w", encoding="utf-8") as f:
            f.write("\n".join(lines) + "\n")
        for name, vocab in SIZES.items():
            prefix = os.path.join(tmp, name)
            subprocess.run([
                "spm_train", f"--input={corpus}", f"--model_prefix={prefix}", f"--vocab_size={vocab}",
                *SPM_GEMMA_FLAGS, "--num_threads=2", "--minloglevel=2",
            ], check=True)
            os.replace(prefix + ".model", os.path.join(out_dir, name + ".model"))
            print(f"{out_dir}/{name}.model: {vocab} pieces")
    with open(os.path.join(out_dir, "tricky.txt"), "wb") as f:
        f.write(b"\n".join(tricky_lines()) + b"\n")
    print(f"{out_dir}/tricky.txt: {len(tricky_lines())} lines")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "tests/fixtures/tokenizer")
