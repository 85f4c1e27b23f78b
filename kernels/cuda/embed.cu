// embed.cu — the embedding lookup of a vocabulary shard.
// Reference: kernels/cpu/ops_ref.c ref_embed.
#include "kernels/cuda/kernels.cuh"

// grid (n tokens), block 256: out[t] (d) = embed[tokens[t] - vocab_begin] (d, bf16) * scale.
__global__ void embed_kernel(float *__restrict__ out, const int32_t *__restrict__ tokens,
                             const bf16 *__restrict__ embed, int vocab_rows, int d, int vocab_begin, float scale) {
    int t = blockIdx.x;
    int row = tokens[t] - vocab_begin;
    float *o = out + (size_t)t * d;
    if (row < 0 || row >= vocab_rows) { // another rank's token: the all-reduce fills it
        for (int i = threadIdx.x; i < d; i += blockDim.x) o[i] = 0.0f;
        return;
    }
    const bf16 *e = embed + (size_t)row * d;
    for (int i = threadIdx.x; i < d; i += blockDim.x) o[i] = bf2f(e[i]) * scale;
}

bool launch_embed(float *out, const int32_t *tokens, int n, const bf16 *embed, int vocab_rows, int d,
                  int vocab_begin, float scale, cudaStream_t s, errbuf *err) {
    if (n == 0) return true;
    embed_kernel<<<n, 256, 0, s>>>(out, tokens, embed, vocab_rows, d, vocab_begin, scale);
    LAUNCH_TRY(embed_kernel);
    return true;
}
