#!/usr/bin/env bash
# tests/gpu/run.sh — everything a GPU machine can tell us, in one go (~30 s
# on an H200): the host CPU's kernels (the AVX512_BF16 one where that CPU has
# it, against AVX2), every CUDA kernel against its CPU reference (gpu_check), the
# CUDA engine against the CPU engine on the HF fixtures, TP=2 on this one GPU
# with host-staged Gloo all-reduce, TP=2 and 4 over CUDA IPC and TP=1 over
# NCCL, the device all-reduce's latency (bench comm --device cuda), then the
# benchmark tables for the 2b and 7b shapes with their rooflines. The full log goes to $OUT/gpu-run.log when
# $OUT is set (the device tool brings it back), else to build-gpu/.
#
# Binaries: gpu-pack/ when present (tests/gpu/pack.sh makes it on a machine
# with facet's Debian packages: the lent GPU machines have none), else a
# build here in build-gpu/ (scripts/install-deps first).
set -uo pipefail
cd "$(dirname "$0")/../.."
root=$(pwd)
log_dir=${OUT:-$root/build-gpu}
mkdir -p "$log_dir"
log=$log_dir/gpu-run.log
: >"$log"
summary=()
failed=0

say() { echo "$*" | tee -a "$log"; }
step() { # step NAME TIMEOUT_S COMMAND...: runs it, logs everything, records ok/FAIL
    local name=$1 limit=$2
    shift 2
    say ""
    say "== $name: $*"
    local t0=$SECONDS
    timeout "$limit" "$@" >>"$log" 2>&1
    local rc=$?
    local verdict=ok
    [ $rc -eq 0 ] || { verdict="FAIL (exit $rc$([ $rc -eq 124 ] && echo ", timed out after ${limit}s"))"; failed=1; }
    summary+=("$(printf '%-34s %-28s %4ds' "$name" "$verdict" $((SECONDS - t0)))")
    say "== $name: $verdict in $((SECONDS - t0)) s"
}

if [ -x gpu-pack/facet ]; then
    bin=$root/gpu-pack
    export LD_LIBRARY_PATH=$bin/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
    say "using the prebuilt binaries in gpu-pack/"
else
    bin=$root/build-gpu
    step build 900 bash -c "cmake -S . -B build-gpu -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES=90 && cmake --build build-gpu -j$(nproc)"
fi
# CUDA's libraries: the toolkit's, else the ones pip installed next to PyTorch
for d in /usr/local/cuda/lib64 /usr/local/cuda/lib; do [ -d "$d" ] && export LD_LIBRARY_PATH=${LD_LIBRARY_PATH:+$LD_LIBRARY_PATH:}$d; done
py_libs=$(python3 -c 'import nvidia, os; p = os.path.dirname(nvidia.__path__[0]); print(":".join(os.path.join(p, "nvidia", d, "lib") for d in ("cublas", "cuda_runtime", "nccl") if os.path.isdir(os.path.join(p, "nvidia", d, "lib"))))' 2>/dev/null)
[ -n "$py_libs" ] && export LD_LIBRARY_PATH=$LD_LIBRARY_PATH:$py_libs

say "$(nvidia-smi -L 2>&1 | head -2)"
missing=$(ldd "$bin/facet" "$bin/gpu_check" "$bin/libfacet_cuda.so" 2>&1 | grep "not found" | sort -u)
[ -z "$missing" ] || say "missing shared libraries: $missing"
say "$("$bin/facet" info 2>&1 | head -5)"
export FACET_HOME=$log_dir/facet-home # the built-in tiny model is made here
fx=$root/tests/fixtures/hf

# the host CPU's kernels: the GPU machines' CPUs may have AVX512_BF16, which the development VMs hide, so
# the native bf16dot kernel is checked (test_kernels runs it where the CPU has it) and timed against AVX2 here
kernels_bin=$bin/test_kernels
[ -x "$kernels_bin" ] || kernels_bin=$bin/tests/test_kernels
step "CPU kernels vs reference (host CPU)" 120 "$kernels_bin"
if "$bin/facet" info | grep -q "avx512bf16 yes"; then
    for k in avx2 avx512bf16; do
        step "bench matmul, $k (host CPU)" 120 bash -o pipefail -c "FACET_CPU_KERNELS=$k '$bin/facet' bench matmul --preset 2b --batch 1,4,64,512 --reps 5 --threads 8 | tee '$log_dir/matmul-$k.txt'"
    done
fi
# and VNNI for the int8 kernels of the GGUF types: test_quant checks every set the CPU runs against the
# reference and AVX2's bits, --bench times fp32 activations against int8 on the best set
quant_bin=$bin/test_quant
[ -x "$quant_bin" ] || quant_bin=$bin/tests/test_quant
if "$bin/facet" info | grep -q "int8 dot products avx[0-9]*vnni"; then
    step "quantized kernels vs reference, VNNI (host CPU)" 120 "$quant_bin" "$root/tests/fixtures/quant"
    step "bench quantized kernels, VNNI (host CPU)" 120 bash -o pipefail -c "'$quant_bin' --bench | tee '$log_dir/quant-bench.txt'"
fi
step "kernels + engine vs CPU" 180 "$bin/gpu_check" --model "$fx/mqa-bf16" --model "$fx/mha-bf16" --model "$fx/mqa-f32" --model "$fx/mha-f32"
step "generate: cuda vs cpu" 90 bash -c "
    '$bin/facet' generate --device cpu  --json --logits --max-tokens 16 --ignore-eos --prompt 'The quick brown fox' > '$log_dir/gen-cpu.json' &&
    '$bin/facet' generate --device cuda --json --logits --max-tokens 16 --ignore-eos --prompt 'The quick brown fox' > '$log_dir/gen-cuda.json' &&
    python3 '$root/tests/gpu/compare_generate.py' '$log_dir/gen-cpu.json' '$log_dir/gen-cuda.json'"
step "TP=2 on one GPU (Gloo, host-staged)" 120 bash -c "
    '$bin/facet' generate --tp 2 --device cpu  --json --logits --max-tokens 16 --ignore-eos --prompt 'The quick brown fox' > '$log_dir/tp2-cpu.json' &&
    '$bin/facet' generate --tp 2 --device cuda --gpu-memory-utilization 0.3 --json --logits --max-tokens 16 --ignore-eos --prompt 'The quick brown fox' > '$log_dir/tp2-cuda.json' &&
    python3 '$root/tests/gpu/compare_generate.py' '$log_dir/tp2-cpu.json' '$log_dir/tp2-cuda.json'"
# device all-reduce (docs/PERFORMANCE.md): several worker processes share the one GPU and reduce over CUDA IPC;
# NCCL refuses two ranks on one GPU, so it runs at T = 1 through the same path (communicator, in-stream call,
# graph capture, wait). On a machine with several GPUs the same lines place one worker per GPU.
# With --logits the workers send whole logit rows (the host sampler); without, a CUDA worker samples from row
# summaries made on the device (device-side sampling) and only the tokens are compared.
gen_args="--json --max-tokens 16 --ignore-eos --prompt 'The quick brown fox'"
for tp in 1 2 4; do
    for sampling in "greedy-logits:--temperature 0 --logits" "greedy:--temperature 0" "seeded:--temperature 0.8 --top-k 40 --seed 3"; do
        name=${sampling%%:*} flags=${sampling#*:}
        comm=ipc
        [ "$tp" = 1 ] && comm=nccl # NCCL at T = 1 runs the same device path: communicator, in-stream call, graphs, wait
        step "TP=$tp on one GPU ($comm), $name" 150 bash -c "
            '$bin/facet' generate --tp $tp --device cpu $flags $gen_args > '$log_dir/$comm$tp-$name-cpu.json' &&
            '$bin/facet' generate --tp $tp --device cuda --comm $comm $flags $gen_args > '$log_dir/$comm$tp-$name-cuda.json' &&
            python3 '$root/tests/gpu/compare_generate.py' '$log_dir/$comm$tp-$name-cpu.json' '$log_dir/$comm$tp-$name-cuda.json'"
    done
done
for backend in ipc:2 ipc:4 host:2 nccl:1; do
    b=${backend%%:*} n=${backend#*:}
    step "bench comm --device cuda $b x$n" 90 bash -o pipefail -c "'$bin/facet' bench comm --device cuda --backend $b --ranks $n --min-bytes 2048 --max-bytes 65536 | tee '$log_dir/comm-$b-$n.txt'"
done

for preset in 2b 7b; do
    step "bench $preset (random weights)" 150 bash -o pipefail -c "'$bin/facet' bench model --device cuda --random-weights --preset $preset --batch 1,8,32,64 --prefill 512,2048 --context 512 --steps 32 | tee '$log_dir/bench-$preset.txt'"
done
for preset in 2b 7b; do # the same decode with every row's logits copied to the host: what device-side sampling saves
    step "bench $preset, logits to the host" 120 bash -o pipefail -c "'$bin/facet' bench model --device cuda --random-weights --preset $preset --batch 1,64 --prefill 16 --context 512 --steps 32 --host-logits | tee '$log_dir/bench-$preset-hostlogits.txt'"
done
step "bench 7b batch 1, no CUDA graphs" 60 bash -o pipefail -c "'$bin/facet' bench model --device cuda --random-weights --preset 7b --batch 1 --prefill 16 --no-cuda-graphs | tee '$log_dir/bench-7b-nographs.txt'"

say ""
say "== kernel table (gpu_check)"
sed -n '/^ceilings:/,/^gpu_check: [0-9]* passed/p' "$log" | tee -a "$log.tail" >/dev/null
for preset in 2b 7b 2b-hostlogits 7b-hostlogits 7b-nographs; do [ -f "$log_dir/bench-$preset.txt" ] && cat "$log_dir/bench-$preset.txt" >>"$log.tail"; done
[ -f "$log_dir/quant-bench.txt" ] && cat "$log_dir/quant-bench.txt" >>"$log.tail"
for f in "$log_dir"/matmul-*.txt; do [ -f "$f" ] && grep -E "^facet bench|layer" "$f" >>"$log.tail"; done
for f in "$log_dir"/comm-*.txt; do [ -f "$f" ] && cat "$f" >>"$log.tail"; done
{
    echo
    echo "== summary"
    printf '%s\n' "${summary[@]}"
    echo "full log: $log"
} >>"$log.tail"
cat "$log.tail" | tee -a "$log"
rm -f "$log.tail"
exit $failed
