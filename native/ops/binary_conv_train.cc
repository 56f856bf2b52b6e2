// binary_conv2d_train (see mxnet_ops.cc for its attributes): QConv2D's convolution of signs during training.
// Forward: binary_conv2d (kernels/binary_conv.h) on the data and weights packed at each call; its integer sums
// are what the float Convolution of the +-1 values gives, to the bit. Backward: the float gradients of that
// convolution (kernels/conv_gradient.h). Together they replace the float Convolution and the padding
// correction of QConv2D's float emulation, and the layout reorders around them (docs/native.md, Training).
#include <algorithm>
#include "../kernels/binary_conv.h"
#include "../kernels/conv_gradient.h"
#include "glue.h"

namespace binary_models::ops {
namespace {

const char kTrainConv[] = "binary_conv2d_train";
inline constexpr InputSpec kSignedWeight{"weight", mxnet::ext::kFloat32, "float32"};

// Both shapes of the convolution from the attributes and the NCHW data shape: the binary kernel's and the
// float gradients'.
struct TrainShape {
  ConvShape binary;
  FloatConvShape conv;
  float pad_value = -1.0f;
};

std::string parse_train_conv(const Attrs& attrs, TrainShape* t) {
  AttrReader r(attrs, {"kernel", "pad", "num_filter", "pad_mode"});
  ConvShape& s = t->binary;
  r.pair("kernel", -1, &s.kernel_h, &s.kernel_w);
  r.pair("pad", 0, &s.pad_h, &s.pad_w);
  r.integer("num_filter", -1, &s.out_channels);
  r.pad_mode(&s.pad_mode);
  if (!r.problem().empty()) return r.problem();
  t->pad_value = s.pad_mode == PadMode::kMinusOne ? -1.0f : s.pad_mode == PadMode::kOne ? 1.0f : 0.0f;
  FloatConvShape& f = t->conv;
  f.filters = s.out_channels, f.kernel_h = s.kernel_h, f.kernel_w = s.kernel_w, f.pad_h = s.pad_h, f.pad_w = s.pad_w;
  return f.check_attributes();
}

std::string train_conv_shape(const Attrs& attrs, const std::vector<int64_t>& data, TrainShape* t) {
  if (std::string problem = parse_train_conv(attrs, t); !problem.empty()) return problem;
  if (std::string problem = check_nchw(data); !problem.empty()) return problem;
  ConvShape& s = t->binary;
  s.batch = int(data[0]), s.in_channels = int(data[1]), s.height = int(data[2]), s.width = int(data[3]);
  FloatConvShape& f = t->conv;
  f.batch = data[0], f.channels = data[1], f.height = data[2], f.width = data[3];
  if (std::string problem = s.check(); !problem.empty()) return problem;
  return check_gradient_shape(f);
}

MXReturnValue train_conv_parse(const Attrs& attrs, int* num_in, int* num_out) {
  TrainShape t;
  if (std::string problem = parse_train_conv(attrs, &t); !problem.empty()) return fail(kTrainConv, problem);
  *num_in = 2;
  *num_out = 1;
  return mxnet::ext::MX_SUCCESS;
}

MXReturnValue train_conv_types(const Attrs&, std::vector<int>* in, std::vector<int>* out) {
  return check_types(kTrainConv, {kData, kSignedWeight}, in, out);
}

MXReturnValue train_conv_shapes(const Attrs& attrs, Shapes* in, Shapes* out) {
  TrainShape t;
  if (std::string problem = train_conv_shape(attrs, dims((*in)[0]), &t); !problem.empty())
    return fail(kTrainConv, problem);
  const ConvShape& s = t.binary;
  if (!check_shape(kTrainConv, "weight", {s.out_channels, s.in_channels, s.kernel_h, s.kernel_w}, &(*in)[1]))
    return mxnet::ext::MX_FAIL;
  (*out)[0] = {unsigned(s.batch), unsigned(s.out_channels), unsigned(s.out_height()), unsigned(s.out_width())};
  return mxnet::ext::MX_SUCCESS;
}

// The shapes of a call whose data is input `data`, once it is known to run on the CPU; a problem fails the call.
MXReturnValue resolve(const Attrs& attrs, std::vector<MXTensor>& in, size_t data, TrainShape* t) {
  if (std::string problem = train_conv_shape(attrs, in[data].shape, t); !problem.empty())
    return fail(kTrainConv, problem);
  return check_cpu(kTrainConv, in);
}

MXReturnValue train_conv_forward(const Attrs& attrs, std::vector<MXTensor>* in, std::vector<MXTensor>* out,
                                 const OpResource& res) {
  TrainShape t;
  if (!resolve(attrs, *in, 0, &t)) return mxnet::ext::MX_FAIL;
  const size_t packed_bytes = (size_t(t.binary.packed_weight_words()) * sizeof(uint64_t) + 63) / 64 * 64;
  HeapBlock heap(nullptr, &std::free);
  char* space = static_cast<char*>(scratch_or_heap(res, packed_bytes + workspace_bytes(t.binary), &heap));
  if (!space) return fail(kTrainConv, "out of memory for its workspace");
  uint64_t* packed = reinterpret_cast<uint64_t*>(space);
  pack_weights(t.binary, (*in)[1].data<float>(), packed);
  binary_conv2d(t.binary, (*in)[0].data<float>(), packed, nullptr, (*out)[0].data<float>(), space + packed_bytes);
  return mxnet::ext::MX_SUCCESS;
}

// MXNet passes the output's gradient, then the forward inputs (data, weight), then the forward output.
MXReturnValue train_conv_backward(const Attrs& attrs, std::vector<MXTensor>* in, std::vector<MXTensor>* out,
                                  const OpResource& res) {
  TrainShape t;
  if (!resolve(attrs, *in, 1, &t)) return mxnet::ext::MX_FAIL;
  HeapBlock heap(nullptr, &std::free);
  void* space = scratch_or_heap(res, std::max(conv_data_gradient_bytes(t.conv), conv_weight_gradient_bytes(t.conv)),
                                &heap);
  if (!space) return fail(kTrainConv, "out of memory for its workspace");
  const float* d_output = (*in)[0].data<float>();
  conv_data_gradient(t.conv, d_output, (*in)[2].data<float>(), (*out)[0].data<float>(), space);
  conv_weight_gradient(t.conv, (*in)[1].data<float>(), t.pad_value, d_output, (*out)[1].data<float>(), space);
  return mxnet::ext::MX_SUCCESS;
}

}  // namespace

REGISTER_OP(binary_conv2d_train)
    .setParseAttrs(train_conv_parse)
    .setInferType(train_conv_types)
    .setInferShape(train_conv_shapes)
    .setForward(train_conv_forward, "cpu")
    .setBackward(train_conv_backward, "cpu");

}  // namespace binary_models::ops
