// plain_batch_norm (see mxnet_ops.cc for its attributes): MXNet's BatchNorm (axis 1) on the plain layout the
// native operators give, at memory speed where oneDNN's plain-layout BatchNorm is 5-8x slower than on its blocked
// one (kernels/batch_norm.h). An extension operator is not told whether it runs in training, so the last input
// says: 1 (exactly) at inference, anything else in training (binary_models.nn.normalization passes Dropout(1)).
// Batch statistics in training (the running averages updated in place), the running ones at inference or with
// use_global_stats.
#include <cmath>

#include "../kernels/batch_norm.h"
#include "glue.h"

namespace binary_models::ops {
namespace {

const char kBatchNorm[] = "plain_batch_norm";
inline constexpr InputSpec kGamma{"gamma", mxnet::ext::kFloat32, "float32"};
inline constexpr InputSpec kBeta{"beta", mxnet::ext::kFloat32, "float32"};
inline constexpr InputSpec kMovingMean{"moving_mean", mxnet::ext::kFloat32, "float32"};
inline constexpr InputSpec kMovingVar{"moving_var", mxnet::ext::kFloat32, "float32"};
inline constexpr InputSpec kTraining{"training", mxnet::ext::kFloat32, "float32"};
enum Input { kX, kGammaIn, kBetaIn, kMeanIn, kVarIn, kTrainingIn };
enum Output { kOut, kMeanOut, kInvstdOut };

struct NormAttrs {
  double eps = 1e-3, momentum = 0.9;
  bool fix_gamma = false, use_global_stats = false;
};

std::string parse_norm(const Attrs& attrs, NormAttrs* a) {
  AttrReader r(attrs, {"eps", "momentum", "fix_gamma", "use_global_stats"});
  r.number("eps", 1e-3, &a->eps);
  r.number("momentum", 0.9, &a->momentum);
  r.boolean("fix_gamma", &a->fix_gamma);
  r.boolean("use_global_stats", &a->use_global_stats);
  if (!r.problem().empty()) return r.problem();
  if (!(a->eps > 0 && std::isfinite(a->eps))) return "eps must be positive and finite";
  if (!(a->momentum >= 0 && a->momentum <= 1)) return "momentum must be 0 to 1";
  return "";
}

MXReturnValue norm_parse(const Attrs& attrs, int* num_in, int* num_out) {
  NormAttrs a;
  if (std::string problem = parse_norm(attrs, &a); !problem.empty()) return fail(kBatchNorm, problem);
  *num_in = 6;
  *num_out = 3;
  return mxnet::ext::MX_SUCCESS;
}

MXReturnValue norm_types(const Attrs&, std::vector<int>* in, std::vector<int>* out) {
  if (!check_types(kBatchNorm, {kData, kGamma, kBeta, kMovingMean, kMovingVar, kTraining}, in, out))
    return mxnet::ext::MX_FAIL;
  (*out)[kMeanOut] = (*out)[kInvstdOut] = mxnet::ext::kFloat32;
  return mxnet::ext::MX_SUCCESS;
}

std::string norm_shape(const std::vector<int64_t>& data, NormShape* s) {
  if (data.size() < 2) return "data must have a batch and a channel axis, got shape " + shape_text(data);
  s->batch = data[0], s->channels = data[1], s->pixels = 1;
  for (size_t i = 2; i < data.size(); ++i) s->pixels *= data[i];
  return s->batch > 0 && s->channels > 0 && s->pixels > 0 ? "" : "data is empty: shape " + shape_text(data);
}

MXReturnValue norm_shapes(const Attrs&, Shapes* in, Shapes* out) {
  NormShape s;
  if (std::string problem = norm_shape(dims((*in)[kX]), &s); !problem.empty()) return fail(kBatchNorm, problem);
  for (auto [index, name] : {std::make_pair(kGammaIn, "gamma"), std::make_pair(kBetaIn, "beta"),
                             std::make_pair(kMeanIn, "moving_mean"), std::make_pair(kVarIn, "moving_var")})
    if (!check_vector(kBatchNorm, name, s.channels, &(*in)[index])) return mxnet::ext::MX_FAIL;
  if (!check_vector(kBatchNorm, "training", 1, &(*in)[kTrainingIn])) return mxnet::ext::MX_FAIL;
  (*out)[kOut] = (*in)[kX];
  (*out)[kMeanOut] = (*out)[kInvstdOut] = {unsigned(s.channels)};
  return mxnet::ext::MX_SUCCESS;
}

MXReturnValue norm_mutable(const Attrs&, std::vector<int>* inputs) {
  *inputs = {kMeanIn, kVarIn};  // the running averages: MXNet's auxiliary states
  return mxnet::ext::MX_SUCCESS;
}

bool batch_statistics(const NormAttrs& a, MXTensor& training) {
  return !a.use_global_stats && training.data<float>()[0] != 1.0f;
}

// gamma, or ones under fix_gamma (in `ones`).
const float* gamma_of(const NormAttrs& a, MXTensor& gamma, std::vector<float>* ones) {
  if (!a.fix_gamma) return gamma.data<float>();
  ones->assign(size_t(gamma.size()), 1.0f);
  return ones->data();
}

// The attributes and shape of a call whose data is input `data`, once it is known to run on the CPU; a problem
// fails the call.
MXReturnValue resolve(const Attrs& attrs, std::vector<MXTensor>& in, size_t data, NormAttrs* a, NormShape* s) {
  std::string problem = parse_norm(attrs, a);
  if (problem.empty()) problem = norm_shape(in[data].shape, s);
  if (!problem.empty()) return fail(kBatchNorm, problem);
  return check_cpu(kBatchNorm, in);
}

MXReturnValue norm_forward(const Attrs& attrs, std::vector<MXTensor>* in, std::vector<MXTensor>* out,
                           const OpResource&) {
  NormAttrs a;
  NormShape s;
  if (!resolve(attrs, *in, kX, &a, &s)) return mxnet::ext::MX_FAIL;
  std::vector<float> ones;
  const float* gamma = gamma_of(a, (*in)[kGammaIn], &ones);
  const float* beta = (*in)[kBetaIn].data<float>();
  float* moving_mean = (*in)[kMeanIn].data<float>();
  float* moving_var = (*in)[kVarIn].data<float>();
  float* mean = (*out)[kMeanOut].data<float>();
  float* invstd = (*out)[kInvstdOut].data<float>();
  if (batch_statistics(a, (*in)[kTrainingIn])) {
    std::vector<float> var(size_t(s.channels));
    batch_norm_train(s, (*in)[kX].data<float>(), gamma, beta, float(a.eps), (*out)[kOut].data<float>(), mean,
                     var.data(), invstd);
    const float keep = float(a.momentum), take = float(1.0 - a.momentum);
    for (int64_t c = 0; c < s.channels; ++c) {
      moving_mean[c] = moving_mean[c] * keep + mean[c] * take;
      moving_var[c] = moving_var[c] * keep + var[c] * take;
    }
  } else {
    for (int64_t c = 0; c < s.channels; ++c) {
      mean[c] = moving_mean[c];
      invstd[c] = float(1.0 / std::sqrt(double(moving_var[c]) + a.eps));
    }
    batch_norm_apply(s, (*in)[kX].data<float>(), gamma, beta, mean, invstd, (*out)[kOut].data<float>());
  }
  return mxnet::ext::MX_SUCCESS;
}

// MXNet passes the outputs' gradients (3), the forward inputs (6), then the forward outputs (3); it wants the
// inputs' gradients (the running averages' and the flag's are 0). As MXNet's BatchNorm, the statistics count
// as the batch's unless use_global_stats, even at inference (autograd.record(train_mode=False)).
MXReturnValue norm_backward(const Attrs& attrs, std::vector<MXTensor>* in, std::vector<MXTensor>* out,
                            const OpResource&) {
  NormAttrs a;
  NormShape s;
  std::vector<MXTensor>& t = *in;
  if (!resolve(attrs, t, 3 + kX, &a, &s)) return mxnet::ext::MX_FAIL;
  std::vector<float> ones;
  float* d_gamma = (*out)[kGammaIn].data<float>();
  batch_norm_backward(s, t[kOut].data<float>(), t[3 + kX].data<float>(), gamma_of(a, t[3 + kGammaIn], &ones),
                      t[9 + kMeanOut].data<float>(), t[9 + kInvstdOut].data<float>(),
                      !a.use_global_stats, (*out)[kX].data<float>(), d_gamma,
                      (*out)[kBetaIn].data<float>());
  if (a.fix_gamma)
    for (int64_t c = 0; c < s.channels; ++c) d_gamma[c] = 0.0f;
  for (size_t i = kMeanIn; i < out->size(); ++i) {
    float* zero = (*out)[i].data<float>();
    for (int64_t k = 0; k < (*out)[i].size(); ++k) zero[k] = 0.0f;
  }
  return mxnet::ext::MX_SUCCESS;
}

}  // namespace

REGISTER_OP(plain_batch_norm)
    .setParseAttrs(norm_parse)
    .setInferType(norm_types)
    .setInferShape(norm_shapes)
    .setMutateInputs(norm_mutable)
    .setForward(norm_forward, "cpu")
    .setBackward(norm_backward, "cpu");

}  // namespace binary_models::ops
