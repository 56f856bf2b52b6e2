// binary_pack_weights, binary_conv2d and binary_dense (see mxnet_ops.cc for their attributes): the weight
// packing and the two operators that run binary_conv2d (kernels/binary_conv.h) on its packed weights, one
// description each and one set of callbacks.
#include "../kernels/binary_conv.h"
#include "glue.h"

namespace binary_models::ops {
namespace {

struct ConvAttrs {
  ConvShape shape;  // batch, height and width come from the data
  bool scaled = false;
  bool folded_bn = false;  // threshold and direction inputs follow the packed weight
};

std::string parse_conv(const Attrs& attrs, ConvAttrs* out) {
  AttrReader r(attrs, {"kernel", "stride", "dilate", "pad", "num_filter", "num_group", "in_channels", "pad_mode",
                       "scaled", "folded_bn"});
  ConvShape& s = out->shape;
  r.pair("kernel", -1, &s.kernel_h, &s.kernel_w);
  r.pair("stride", 1, &s.stride_h, &s.stride_w);
  r.pair("dilate", 1, &s.dilate_h, &s.dilate_w);
  r.pair("pad", 0, &s.pad_h, &s.pad_w);
  r.integer("num_filter", -1, &s.out_channels);
  r.integer("num_group", 1, &s.groups);
  r.integer("in_channels", -1, &s.in_channels);
  r.pad_mode(&s.pad_mode);
  r.boolean("scaled", &out->scaled);
  r.boolean("folded_bn", &out->folded_bn);
  if (!r.problem().empty()) return r.problem();
  return s.check_geometry();
}

std::string parse_dense(const Attrs& attrs, ConvAttrs* out) {
  AttrReader r(attrs, {"num_hidden", "in_units", "scaled"});
  int units = 0, in_units = 0;
  r.integer("num_hidden", -1, &units);
  r.integer("in_units", -1, &in_units);
  r.boolean("scaled", &out->scaled);
  if (!r.problem().empty()) return r.problem();
  for (const auto& [name, value] : {std::make_pair("num_hidden", units), std::make_pair("in_units", in_units)})
    if (value < 1 || value > kMaxChannels)
      return std::string(name) + " " + std::to_string(value) + " is not supported (allowed: 1.." +
             std::to_string(kMaxChannels) + ")";
  out->shape = dense_shape(1, in_units, units);
  return "";
}

// Packed weight shape: (groups * blocks, kernel_h, kernel_w, words, 4).
std::vector<unsigned int> packed_shape(const ConvShape& s) {
  return {unsigned(s.groups * s.blocks()), unsigned(s.kernel_h), unsigned(s.kernel_w), unsigned(s.words()),
          unsigned(kLanes)};
}

// ---- binary_conv2d and binary_dense: one description each, one set of callbacks ----

// The full shape of a conv from its attributes and NCHW data shape, or a problem.
std::string conv_shape(const ConvAttrs& a, const std::vector<int64_t>& data, ConvShape* s) {
  if (std::string problem = check_nchw(data); !problem.empty()) return problem;
  *s = a.shape;
  if (int64_t(s->in_channels) != data[1])
    return "data has " + std::to_string(data[1]) + " channels but in_channels is " + std::to_string(s->in_channels);
  s->batch = int(data[0]);
  s->height = int(data[2]);
  s->width = int(data[3]);
  return s->check();
}

// The 1x1-conv shape of a dense layer on `data` (batch, ...), flattened like FullyConnected(flatten=True).
std::string dense_shape_of(const ConvAttrs& a, const std::vector<int64_t>& data, ConvShape* s) {
  if (data.size() < 2) return "data must have a batch axis and features, got shape " + shape_text(data);
  int64_t features = 1;
  for (size_t i = 1; i < data.size(); ++i) features *= data[i];
  *s = a.shape;
  if (features != s->in_channels)
    return "data has " + std::to_string(features) + " features per sample but in_units is " +
           std::to_string(s->in_channels);
  if (std::string problem = dims_fit_int("data", data); !problem.empty()) return problem;
  s->batch = int(data[0]);
  return "";
}

std::vector<unsigned int> conv_output(const ConvShape& s) {
  return {unsigned(s.batch), unsigned(s.out_channels), unsigned(s.out_height()), unsigned(s.out_width())};
}

std::vector<unsigned int> dense_output(const ConvShape& s) { return {unsigned(s.batch), unsigned(s.out_channels)}; }

struct ComputeOp {
  const char* name;
  std::string (*parse)(const Attrs&, ConvAttrs*);
  std::string (*shape_of)(const ConvAttrs&, const std::vector<int64_t>& data, ConvShape*);
  std::vector<unsigned int> (*output_shape)(const ConvShape&);
};

constexpr ComputeOp kConv{"binary_conv2d", parse_conv, conv_shape, conv_output};
constexpr ComputeOp kDense{"binary_dense", parse_dense, dense_shape_of, dense_output};

// Parses the attributes and derives the full shape from the data shape; a problem fails `op`.
template <const ComputeOp& op, typename Dims>
MXReturnValue resolve(const Attrs& attrs, const Dims& data, ConvAttrs* a, ConvShape* s) {
  std::string problem = op.parse(attrs, a);
  if (problem.empty()) problem = op.shape_of(*a, dims(data), s);
  return problem.empty() ? mxnet::ext::MX_SUCCESS : fail(op.name, problem);
}

template <const ComputeOp& op>
MXReturnValue compute_parse(const Attrs& attrs, int* num_in, int* num_out) {
  ConvAttrs a;
  const std::string problem = op.parse(attrs, &a);
  if (!problem.empty()) return fail(op.name, problem);
  *num_in = 2 + (a.folded_bn ? 2 : 0) + (a.scaled ? 1 : 0);
  *num_out = 1;
  return mxnet::ext::MX_SUCCESS;
}

template <const ComputeOp& op>
MXReturnValue compute_types(const Attrs& attrs, std::vector<int>* in, std::vector<int>* out) {
  ConvAttrs a;
  const std::string problem = op.parse(attrs, &a);
  if (!problem.empty()) return fail(op.name, problem);
  std::vector<InputSpec> specs{kData, kPacked};
  if (a.folded_bn) specs.insert(specs.end(), {kThreshold, kDirection});
  if (a.scaled) specs.push_back(kScale);
  return check_types(op.name, specs, in, out);
}

// Checks the packed weight and scale shapes against the attributes (and fills them in when unknown).
template <const ComputeOp& op>
MXReturnValue compute_shapes(const Attrs& attrs, Shapes* in, Shapes* out) {
  ConvAttrs a;
  ConvShape s;
  if (!resolve<op>(attrs, (*in)[0], &a, &s)) return mxnet::ext::MX_FAIL;
  const std::vector<unsigned int> weight = packed_shape(s);
  if ((*in)[1].empty()) (*in)[1] = weight;
  if ((*in)[1] != weight)
    return fail(op.name, "packed weight shape " + shape_text((*in)[1]) + " does not match the attributes, which "
                         "need " + shape_text(weight) + " (in_channels " + std::to_string(s.in_channels) +
                         ", num_filter " + std::to_string(s.out_channels) + ", kernel " +
                         std::to_string(s.kernel_h) + "x" + std::to_string(s.kernel_w) + ", num_group " +
                         std::to_string(s.groups) + ")");
  if (a.folded_bn && !(check_vector(op.name, "threshold", s.in_channels, &(*in)[2]) &&
                      check_vector(op.name, "direction", s.in_channels, &(*in)[3])))
    return mxnet::ext::MX_FAIL;
  if (a.scaled && !check_vector(op.name, "scale", s.out_channels, &(*in)[a.folded_bn ? 4 : 2]))
    return mxnet::ext::MX_FAIL;
  (*out)[0] = op.output_shape(s);
  return mxnet::ext::MX_SUCCESS;
}

template <const ComputeOp& op>
MXReturnValue compute_forward(const Attrs& attrs, std::vector<MXTensor>* in, std::vector<MXTensor>* out,
                              const OpResource& res) {
  ConvAttrs a;
  ConvShape s;
  if (!resolve<op>(attrs, (*in)[0].shape, &a, &s) || !check_cpu(op.name, *in)) return mxnet::ext::MX_FAIL;
  ConvOptions options;
  if (a.folded_bn) {
    options.threshold = (*in)[2].data<float>();
    options.direction = (*in)[3].data<float>();
  }
  binary_conv2d(s, (*in)[0].data<float>(), (*in)[1].data<uint64_t>(),
                               a.scaled ? (*in)[a.folded_bn ? 4 : 2].data<float>() : nullptr, (*out)[0].data<float>(),
                               scratch(res, workspace_bytes(s)), Isa::kAuto, options);
  return mxnet::ext::MX_SUCCESS;
}

// ---- binary_pack_weights ----

const char kPack[] = "binary_pack_weights";

std::string parse_pack(const Attrs& attrs, int* groups) {
  AttrReader r(attrs, {"num_group"});
  r.integer("num_group", 1, groups);
  return r.problem();
}

// The conv shape that float weights (O, C/g, kh, kw) or dense weights (units, in_units) describe.
std::string pack_shape(int groups, const std::vector<int64_t>& weight, ConvShape* s) {
  if (weight.size() != 4 && weight.size() != 2)
    return "weight must be 4-D (out_channels, in_channels / num_group, kh, kw) or 2-D (units, in_units), got "
           "shape " + shape_text(weight);
  if (std::string problem = dims_fit_int("weight", weight); !problem.empty()) return problem;
  if (groups >= 1 && weight[1] * groups > kMaxChannels)
    return "in_channels " + std::to_string(weight[1] * groups) + " (weight shape " + shape_text(weight) +
           ", num_group " + std::to_string(groups) + ") is not supported (allowed: 1.." +
           std::to_string(kMaxChannels) + ")";
  s->groups = groups;
  s->out_channels = int(weight[0]);
  s->in_channels = int(weight[1]) * groups;
  s->kernel_h = weight.size() == 4 ? int(weight[2]) : 1;
  s->kernel_w = weight.size() == 4 ? int(weight[3]) : 1;
  return s->check_weights();
}

MXReturnValue pack_parse(const Attrs& attrs, int* num_in, int* num_out) {
  int groups = 1;
  const std::string problem = parse_pack(attrs, &groups);
  if (!problem.empty()) return fail(kPack, problem);
  *num_in = *num_out = 1;
  return mxnet::ext::MX_SUCCESS;
}

MXReturnValue pack_types(const Attrs&, std::vector<int>* in, std::vector<int>* out) {
  if ((*in)[0] == -1) (*in)[0] = mxnet::ext::kFloat32;
  if ((*in)[0] != mxnet::ext::kFloat32)
    return fail(kPack, "weight must be float32, got " + dtype_name((*in)[0]));
  (*out)[0] = mxnet::ext::kInt64;
  return mxnet::ext::MX_SUCCESS;
}

MXReturnValue pack_shapes(const Attrs& attrs, Shapes* in, Shapes* out) {
  int groups = 1;
  ConvShape s;
  std::string problem = parse_pack(attrs, &groups);
  if (problem.empty()) problem = pack_shape(groups, dims((*in)[0]), &s);
  if (!problem.empty()) return fail(kPack, problem);
  (*out)[0] = packed_shape(s);
  return mxnet::ext::MX_SUCCESS;
}

MXReturnValue pack_forward(const Attrs& attrs, std::vector<MXTensor>* in, std::vector<MXTensor>* out,
                           const OpResource&) {
  int groups = 1;
  ConvShape s;
  std::string problem = parse_pack(attrs, &groups);
  if (problem.empty()) problem = pack_shape(groups, (*in)[0].shape, &s);
  if (!problem.empty()) return fail(kPack, problem);
  if (!check_cpu(kPack, *in)) return mxnet::ext::MX_FAIL;
  pack_weights(s, (*in)[0].data<float>(), (*out)[0].data<uint64_t>());
  return mxnet::ext::MX_SUCCESS;
}

}  // namespace

REGISTER_OP(binary_pack_weights)
    .setParseAttrs(pack_parse)
    .setInferType(pack_types)
    .setInferShape(pack_shapes)
    .setForward(pack_forward, "cpu")
    .setBackward(no_backward, "cpu");

REGISTER_OP(binary_conv2d)
    .setParseAttrs(compute_parse<kConv>)
    .setInferType(compute_types<kConv>)
    .setInferShape(compute_shapes<kConv>)
    .setForward(compute_forward<kConv>, "cpu")
    .setBackward(no_backward, "cpu");

REGISTER_OP(binary_dense)
    .setParseAttrs(compute_parse<kDense>)
    .setInferType(compute_types<kDense>)
    .setInferShape(compute_shapes<kDense>)
    .setForward(compute_forward<kDense>, "cpu")
    .setBackward(no_backward, "cpu");

}  // namespace binary_models::ops
