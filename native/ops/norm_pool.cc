// norm_pool (see mxnet_ops.cc for its attributes): BatchNorm, max pooling, ReLU and channel shuffle in one
// pass (kernels/norm_pool.h).
#include "../kernels/norm_pool.h"
#include "glue.h"

namespace binary_models::ops {
namespace {

const char kNormPool[] = "norm_pool";

std::string parse_norm_pool(const Attrs& attrs, NormPoolShape* s) {
  AttrReader r(attrs, {"kernel", "stride", "pad", "relu", "shuffle_groups"});
  r.pair("kernel", 1, &s->kernel_h, &s->kernel_w);
  r.pair("stride", 1, &s->stride_h, &s->stride_w);
  r.pair("pad", 0, &s->pad_h, &s->pad_w);
  r.boolean("relu", &s->relu);
  r.integer("shuffle_groups", 1, &s->shuffle_groups);
  return r.problem();
}

std::string norm_pool_shape(const Attrs& attrs, const std::vector<int64_t>& data, NormPoolShape* s) {
  std::string problem = parse_norm_pool(attrs, s);
  if (!problem.empty()) return problem;
  if (problem = check_nchw(data); !problem.empty()) return problem;
  s->batch = int(data[0]);
  s->channels = int(data[1]);
  s->height = int(data[2]);
  s->width = int(data[3]);
  return s->check();
}

MXReturnValue norm_pool_parse(const Attrs& attrs, int* num_in, int* num_out) {
  NormPoolShape s;
  if (std::string problem = parse_norm_pool(attrs, &s); !problem.empty()) return fail(kNormPool, problem);
  *num_in = 4;
  *num_out = 1;
  return mxnet::ext::MX_SUCCESS;
}

MXReturnValue norm_pool_types(const Attrs&, std::vector<int>* in, std::vector<int>* out) {
  return check_types(kNormPool, {kData, kMean, kScale, kShift}, in, out);
}

MXReturnValue norm_pool_shapes(const Attrs& attrs, Shapes* in, Shapes* out) {
  NormPoolShape s;
  if (std::string problem = norm_pool_shape(attrs, dims((*in)[0]), &s);
      !problem.empty())
    return fail(kNormPool, problem);
  if (!check_vector(kNormPool, "mean", s.channels, &(*in)[1]) ||
      !check_vector(kNormPool, "scale", s.channels, &(*in)[2]) ||
      !check_vector(kNormPool, "shift", s.channels, &(*in)[3]))
    return mxnet::ext::MX_FAIL;
  (*out)[0] = {unsigned(s.batch), unsigned(s.channels), unsigned(s.out_height()), unsigned(s.out_width())};
  return mxnet::ext::MX_SUCCESS;
}

MXReturnValue norm_pool_forward(const Attrs& attrs, std::vector<MXTensor>* in, std::vector<MXTensor>* out,
                                const OpResource&) {
  NormPoolShape s;
  if (std::string problem = norm_pool_shape(attrs, (*in)[0].shape, &s); !problem.empty()) return fail(kNormPool, problem);
  if (!check_cpu(kNormPool, *in)) return mxnet::ext::MX_FAIL;
  norm_pool(s, (*in)[0].data<float>(), (*in)[1].data<float>(), (*in)[2].data<float>(),
                           (*in)[3].data<float>(), (*out)[0].data<float>());
  return mxnet::ext::MX_SUCCESS;
}

// A backward that refuses: with it MXNet registers a gradient, so hybridized graphs (CachedOp builds the
}  // namespace

REGISTER_OP(norm_pool)
    .setParseAttrs(norm_pool_parse)
    .setInferType(norm_pool_types)
    .setInferShape(norm_pool_shapes)
    .setForward(norm_pool_forward, "cpu")
    .setBackward(no_backward, "cpu");

}  // namespace binary_models::ops
