#!/usr/bin/env bash
# facet tokenize must print exactly what spm_encode --output_format=id prints,
# for several Gemma-like models (two trained by spm_train, of 1k and 8k
# pieces; the ones facet make-model writes, of 4096 and 256000 pieces), on
# a corpus of tricky lines (invalid UTF-8, emoji, CJK, whitespace runs, CR,
# NUL, text containing <start_of_turn>).
. "$(dirname "$0")/lib.sh"

if ! command -v spm_encode >/dev/null; then
    echo "FAIL: spm_encode is not installed (Debian package sentencepiece): the reference is missing" >&2
    exit 1
fi
CORPUS=$FIXTURES/tokenizer/tricky.txt
"$FACET" make-model --preset tiny --tokenizer-only --out "$WORK/tiny" 2>/dev/null
"$FACET" make-model --preset 2b --tokenizer-only --out "$WORK/2b" 2>/dev/null
# also each line of the corpus repeated with everything joined: long inputs
tr '\n' ' ' <"$CORPUS" >"$WORK/long.txt"
echo >>"$WORK/long.txt"

for model in "$FIXTURES/tokenizer/spm-bpe-1k.model" "$FIXTURES/tokenizer/spm-bpe-8k.model" \
    "$WORK/tiny/tokenizer.model" "$WORK/2b/tokenizer.model"; do
    for input in "$CORPUS" "$WORK/long.txt"; do
        spm_encode --model "$model" --output_format=id <"$input" >"$WORK/spm.txt"
        "$FACET" tokenize --tokenizer "$model" <"$input" >"$WORK/facet.txt"
        if cmp -s "$WORK/spm.txt" "$WORK/facet.txt"; then
            echo "ok: $(basename "$(dirname "$model")")/$(basename "$model") on $(basename "$input"): $(wc -l <"$WORK/spm.txt") lines identical"
        else
            echo "first differences:" >&2
            diff "$WORK/spm.txt" "$WORK/facet.txt" | head -6 >&2
        fi
        check "$model on $input equals spm_encode" cmp -s "$WORK/spm.txt" "$WORK/facet.txt"
    done
done
# 256000 pieces: the last id decodes, the next is out of range
check "the 2b preset's vocabulary holds id 255999" bash -c "echo 255999 | spm_decode --model '$WORK/2b/tokenizer.model' --input_format=id >/dev/null 2>&1"
check "the 2b preset's vocabulary stops at 256000" bash -c "! (echo 256000 | spm_decode --model '$WORK/2b/tokenizer.model' --input_format=id >/dev/null 2>&1)"
finish
