"""Writes a broken copy of a good GGUF model file, one way at a time, with
the llama.cpp project's own reader/writer (PyPI gguf, in .venv):

  bad_gguf.py GOOD OUT KIND
    offset     the first tensor's data offset points past the end of the file
    misaligned the first tensor's offset is not a multiple of the alignment
    type       the first tensor's ggml type is 99 (no such type)
    dims       the first tensor's first dimension is 2^40 (its bytes cannot be there)
    count      the header promises one tensor more than the file holds
    scores     tokenizer.ggml.scores is one shorter than tokenizer.ggml.tokens
    arch       general.architecture is "llama"
    noshape    gemma3.embedding_length is missing"""
import shutil
import sys

import numpy as np
from gguf import GGUFReader, GGUFWriter, GGUFValueType


def patch(good, out, edit):
    shutil.copyfile(good, out)
    r = GGUFReader(out, "r+")
    edit(r)
    r.data.flush()


def rewrite(good, out, skip_key=None, change=None):
    """A copy through the writer, leaving out or changing keys."""
    r = GGUFReader(good)
    arch = bytes(r.fields["general.architecture"].parts[-1]).decode()
    if change and "general.architecture" in change:
        arch = change["general.architecture"]
    w = GGUFWriter(out, arch)
    for name, f in r.fields.items():
        if name.startswith("GGUF.") or name == "general.architecture" or name == skip_key:
            continue
        vt = f.types[0]
        if change and name in change:
            value = change[name]
        elif vt == GGUFValueType.STRING:
            value = bytes(f.parts[-1]).decode()
        elif vt == GGUFValueType.ARRAY:
            sub = f.types[1]
            value = [bytes(f.parts[i]).decode() if sub == GGUFValueType.STRING else f.parts[i][0].item() for i in f.data]
            w.add_array(name, value)
            continue
        else:
            value = f.parts[-1][0].item()
        w.add_key_value(name, value, vt, sub_type=None)
    for t in r.tensors:
        w.add_tensor(t.name, np.array(t.data), raw_shape=list(reversed([int(x) for x in t.shape])), raw_dtype=t.tensor_type)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def main():
    good, out, kind = sys.argv[1:4]
    first = lambda r: r.tensors[0].field.parts  # name len, name, n_dims, dims, type, offset
    if kind == "offset":
        patch(good, out, lambda r: first(r)[5].__setitem__(0, 1 << 40))
    elif kind == "misaligned":
        patch(good, out, lambda r: first(r)[5].__setitem__(0, first(r)[5][0] + 1))
    elif kind == "type":
        patch(good, out, lambda r: first(r)[4].__setitem__(0, 99))
    elif kind == "dims":
        patch(good, out, lambda r: first(r)[3].__setitem__(0, 1 << 40))
    elif kind == "count":
        patch(good, out, lambda r: r.fields["GGUF.tensor_count"].parts[0].__setitem__(0, len(r.tensors) + 1))
    elif kind == "scores":
        r = GGUFReader(good)
        f = r.fields["tokenizer.ggml.scores"]
        rewrite(good, out, change={"tokenizer.ggml.scores": [f.parts[i][0].item() for i in f.data][:-1]})
    elif kind == "arch":
        rewrite(good, out, change={"general.architecture": "llama"})
    elif kind == "noshape":
        rewrite(good, out, skip_key="gemma3.embedding_length")
    else:
        sys.exit(f"bad_gguf.py: unknown kind {kind}")


if __name__ == "__main__":
    main()
