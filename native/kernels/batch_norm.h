// BatchNorm over axis 1 of a plain (N, C, ...) float tensor, for training: the batch's statistics, the
// normalization and the backward pass, one channel per work item of an OpenMP team. oneDNN's BatchNorm on plain
// NCHW (its ncsp_bnorm) is 5-8x slower than on its blocked layout, and the native operators (binary_conv2d_train,
// ste_sign) give plain NCHW; this runs at memory speed on it. Sums per image plane in float vector lanes,
// then in double over the planes.
#pragma once

#include <cstdint>

namespace binary_models {

struct NormShape {
  int64_t batch = 1, channels = 0, pixels = 1;  // pixels: the product of the axes after the channels
};

// The batch's mean[c] and biased variance var[c] (over batch and pixels), invstd[c] = 1 / sqrt(var[c] + eps),
// and out = (x - mean[c]) * (invstd[c] * gamma[c]) + beta[c].
void batch_norm_train(const NormShape& shape, const float* x, const float* gamma, const float* beta, float eps,
                      float* out, float* mean, float* var, float* invstd);

// out = (x - mean[c]) * (invstd[c] * gamma[c]) + beta[c] with given statistics (the running ones, at inference).
void batch_norm_apply(const NormShape& shape, const float* x, const float* gamma, const float* beta,
                      const float* mean, const float* invstd, float* out);

// The gradients of batch_norm_train (batch_statistics: the mean and invstd are the batch's, so they depend on
// x) or of batch_norm_apply (fixed statistics), given d_out: d_x, and d_gamma[c], d_beta[c] when not null.
void batch_norm_backward(const NormShape& shape, const float* d_out, const float* x, const float* gamma,
                         const float* mean, const float* invstd, bool batch_statistics, float* d_x, float* d_gamma,
                         float* d_beta);

}  // namespace binary_models
