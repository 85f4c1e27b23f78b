#!/usr/bin/env bash
# Builds facet with its CUDA module here and packs what the GPU machine needs
# into gpu-pack/ (binaries + the shared libraries the image there lacks: gRPC,
# protobuf-c, Gloo, libmicrohttpd, cJSON and theirs; not glibc, libstdc++ or
# CUDA's own, which the image has). The lent GPU machine has nvcc but no
# Debian packages and no network, so tests/gpu/run.sh uses gpu-pack/ there:
#   tests/gpu/pack.sh && device run with carry=["gpu-pack"]: tests/gpu/run.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
cmake -S . -B build-gpu -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES="80;90" >/dev/null
cmake --build build-gpu -j"$(nproc)" --target facet gpu_check facet_cuda test_kernels test_quant
cmake --build build-gpu -j"$(nproc)" --target facet_nccl 2>/dev/null || true
rm -rf gpu-pack
mkdir -p gpu-pack/lib
cp build-gpu/facet build-gpu/gpu_check build-gpu/libfacet_cuda.so build-gpu/tests/test_kernels build-gpu/tests/test_quant gpu-pack/
[ -f build-gpu/libfacet_nccl.so ] && cp build-gpu/libfacet_nccl.so gpu-pack/
skip='^(linux-vdso|ld-linux|libc\.|libm\.|libdl\.|libpthread\.|librt\.|libresolv\.|libnsl\.|libutil\.|libanl\.|libstdc\+\+|libgcc_s|libcuda|libcudart|libcublas|libnccl)'
for bin in gpu-pack/facet gpu-pack/gpu_check gpu-pack/test_kernels gpu-pack/test_quant; do
    ldd "$bin" | awk '$3 ~ /^\// {print $1, $3}' | while read -r name path; do
        [[ "$name" =~ $skip ]] || cp -L "$path" gpu-pack/lib/
    done
done
du -sh gpu-pack
