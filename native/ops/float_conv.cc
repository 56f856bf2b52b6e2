// float_conv2d (see mxnet_ops.cc for its attributes): a full-precision convolution on the library's own
// micro-kernels (kernels/float_conv.h), for the grouped convolutions of the stems, which oneDNN runs slowly
// with few channels per group (docs/native.md). The runtime runs the same code for the same operator.
#include "../kernels/float_conv.h"
#include "glue.h"


namespace binary_models::ops {
namespace {

const char kFloatConv[] = "float_conv2d";
inline constexpr InputSpec kWeight{"weight", mxnet::ext::kFloat32, "float32"};
inline constexpr InputSpec kBias{"bias", mxnet::ext::kFloat32, "float32"};

std::string parse_float_conv(const Attrs& attrs, FloatConvShape* s, bool* no_bias) {
  AttrReader r(attrs, {"kernel", "stride", "dilate", "pad", "num_filter", "num_group", "no_bias"});
  int filters = 0;
  r.pair("kernel", -1, &s->kernel_h, &s->kernel_w);
  r.pair("stride", 1, &s->stride_h, &s->stride_w);
  r.pair("dilate", 1, &s->dilate_h, &s->dilate_w);
  r.pair("pad", 0, &s->pad_h, &s->pad_w);
  r.integer("num_filter", -1, &filters);
  r.integer("num_group", 1, &s->groups);
  r.boolean("no_bias", no_bias);
  s->filters = filters;
  return r.problem().empty() ? s->check_attributes() : r.problem();
}

// The attributes and the data's batch, channels, height and width.
std::string float_conv_shape(const Attrs& attrs, const std::vector<int64_t>& data, FloatConvShape* s, bool* no_bias) {
  if (std::string problem = parse_float_conv(attrs, s, no_bias); !problem.empty()) return problem;
  if (std::string problem = check_nchw(data); !problem.empty()) return problem;
  s->batch = data[0], s->channels = data[1], s->height = data[2], s->width = data[3];
  return s->check();
}

MXReturnValue float_conv_parse(const Attrs& attrs, int* num_in, int* num_out) {
  FloatConvShape s;
  bool no_bias = false;
  if (std::string problem = parse_float_conv(attrs, &s, &no_bias); !problem.empty())
    return fail(kFloatConv, problem);
  *num_in = no_bias ? 2 : 3;
  *num_out = 1;
  return mxnet::ext::MX_SUCCESS;
}

MXReturnValue float_conv_types(const Attrs&, std::vector<int>* in, std::vector<int>* out) {
  return check_types(kFloatConv, {kData, kWeight, kBias}, in, out);
}

MXReturnValue float_conv_shapes(const Attrs& attrs, Shapes* in, Shapes* out) {
  FloatConvShape s;
  bool no_bias = false;
  const std::vector<int64_t> data = dims((*in)[0]);
  if (std::string problem = float_conv_shape(attrs, data, &s, &no_bias); !problem.empty())
    return fail(kFloatConv, problem);
  if (!check_shape(kFloatConv, "weight", {s.filters, s.channels / s.groups, s.kernel_h, s.kernel_w}, &(*in)[1]) ||
      (!no_bias && !check_vector(kFloatConv, "bias", s.filters, &(*in)[2])))
    return mxnet::ext::MX_FAIL;
  (*out)[0] = {unsigned(s.batch), unsigned(s.filters), unsigned(s.out_height()), unsigned(s.out_width())};
  return mxnet::ext::MX_SUCCESS;
}

MXReturnValue float_conv_forward(const Attrs& attrs, std::vector<MXTensor>* in, std::vector<MXTensor>* out,
                                 const OpResource& res) {
  FloatConvShape s;
  bool no_bias = false;
  if (std::string problem = float_conv_shape(attrs, (*in)[0].shape, &s, &no_bias); !problem.empty())
    return fail(kFloatConv, problem);
  if (!check_cpu(kFloatConv, *in)) return mxnet::ext::MX_FAIL;
  const size_t bytes = s.workspace_bytes();
  HeapBlock heap(nullptr, &std::free);
  void* workspace = scratch_or_heap(res, bytes, &heap);
  if (!workspace) return fail(kFloatConv, "out of memory for its workspace");
  float_conv(s, (*in)[0].data<float>(), (*in)[1].data<float>(), no_bias ? nullptr : (*in)[2].data<float>(),
             (*out)[0].data<float>(), workspace);
  return mxnet::ext::MX_SUCCESS;
}

}  // namespace

REGISTER_OP(float_conv2d)
    .setParseAttrs(float_conv_parse)
    .setInferType(float_conv_types)
    .setInferShape(float_conv_shapes)
    .setForward(float_conv_forward, "cpu")
    .setBackward(no_backward, "cpu");

}  // namespace binary_models::ops
