// tinyvae's training kernels for NVIDIA GPUs (the trainer's `cuda` feature), compiled
// to PTX by trainer/build.rs with nvcc and embedded in the binary; trainer/src/cuda.rs
// launches them. `gaussian` selects the likelihood: 0 Bernoulli (binary cross-entropy
// with logits), 1 Gaussian (squared error of the sigmoid, variance 1/2, constant left
// out): the per-pixel formulas of trainer/src/model/nll_op.rs.
__device__ __forceinline__ float sigmoid_of(float l) {
    float t = expf(-fabsf(l));
    float inv = 1.0f / (1.0f + t);
    return l >= 0.0f ? inv : t * inv;
}

__device__ __forceinline__ float pixel_nll(float l, float x, int gaussian) {
    if (gaussian) {
        float d = sigmoid_of(l) - x;
        return d * d;
    }
    return fmaxf(l, 0.0f) - x * l + log1pf(expf(-fabsf(l)));
}

__device__ __forceinline__ float pixel_nll_grad(float l, float x, int gaussian) {
    float s = sigmoid_of(l);
    if (gaussian) {
        return 2.0f * (s - x) * s * (1.0f - s);
    }
    return s - x;
}

// One block per row: out[row] = sum over the row's pixels of pixel_nll.
extern "C" __global__ void row_nll(const float* logits, const float* target, float* out,
                                   unsigned int cols, int gaussian) {
    const float* l = logits + (size_t)blockIdx.x * cols;
    const float* x = target + (size_t)blockIdx.x * cols;
    float acc = 0.0f;
    for (unsigned int j = threadIdx.x; j < cols; j += blockDim.x) {
        acc += pixel_nll(l[j], x[j], gaussian);
    }
    for (int o = 16; o > 0; o >>= 1) acc += __shfl_down_sync(0xffffffffu, acc, o);
    __shared__ float warp_sums[32];
    unsigned int lane = threadIdx.x & 31u, warp = threadIdx.x >> 5;
    if (lane == 0) warp_sums[warp] = acc;
    __syncthreads();
    if (warp == 0) {
        acc = lane < (blockDim.x + 31u) / 32u ? warp_sums[lane] : 0.0f;
        for (int o = 16; o > 0; o >>= 1) acc += __shfl_down_sync(0xffffffffu, acc, o);
        if (lane == 0) out[blockIdx.x] = acc;
    }
}

// out[i] = d pixel_nll / d logit, times the incoming gradient of the pixel's row.
extern "C" __global__ void row_nll_grad(const float* logits, const float* target,
                                        const float* row_grad, float* out, unsigned int cols,
                                        unsigned int n, int gaussian) {
    for (unsigned int i = blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += blockDim.x * gridDim.x) {
        out[i] = pixel_nll_grad(logits[i], target[i], gaussian) * row_grad[i / cols];
    }
}

// Adam's moving average, in place: m = keep m + take g (or of g*g when square).
extern "C" __global__ void adam_moment(float* m, const float* g, unsigned int n, float keep,
                                       float take, int square) {
    for (unsigned int i = blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += blockDim.x * gridDim.x) {
        float gi = square ? g[i] * g[i] : g[i];
        m[i] = m[i] * keep + gi * take;
    }
}

// Adam's parameter update, in place: p -= m / (sqrt(v) root + eps) step, with
// schedule = [step, root] (they change every step, so they are read from memory).
extern "C" __global__ void adam_param(float* p, const float* m, const float* v, unsigned int n,
                                      const float* schedule, float eps) {
    float step = schedule[0], root = schedule[1];
    for (unsigned int i = blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += blockDim.x * gridDim.x) {
        p[i] -= m[i] / (sqrtf(v[i]) * root + eps) * step;
    }
}
