// Registers the binary operators with stock MXNet through the extension-library API (lib_api.h, MXNet
// >= 1.7): after mx.library.load(path) they are mx.nd.<name> and mx.sym.<name>. The computation lives in
// kernels/; this file parses attributes, checks inputs and infers shapes and types. Every problem is
// refused with MX_FAIL and a message naming it (Python raises MXNetError), never a crash.
//
//   binary_pack_weights(weight; num_group=1) -> int64 packed weights (layout: kernels/binary_conv.h)
//       weight: float32 (out_channels, in_channels / num_group, kh, kw), or (units, in_units) for a dense layer
//   binary_conv2d(data, packed_weight[, threshold, direction][, scale]; kernel, num_filter, in_channels,
//                 stride=1, dilate=1, pad=0, num_group=1, pad_mode='minus_one'|'zero', folded_bn=False,
//                 scaled=False) -> float32 NCHW
//   binary_dense(data, packed_weight[, scale]; num_hidden, in_units, scaled=False) -> float32 (batch, units)
// The output is sum(sign(data) * sign(weight)) over each receptive field (data padded with -1 or 0), times
// scale[o] (float32, one per output channel) when scaled: what QConv2D / QDense compute in float. With
// folded_bn the sign of channel c is data * direction[c] >= threshold[c] (float32, one per input channel):
// sign(BatchNorm(data)) with the BatchNorm folded in (kernels/binary_conv.h ConvOptions).
//   binary_dense_stage(data, packed_weights, thresholds, directions[, scales]; units, in_channels, growth=64,
//                      kernel=3, dilate=1, pad_mode, scaled=False) -> float32 NCHW
//       a whole dense stage (kernels/dense_stage.h): units 'D' (DenseBlock) / 'I' (ImprovementBlock), each
//       a folded BN -> binary conv; the units' parts of the 1-D weights, thresholds, directions, scales
//       one after the other.
//   norm_pool(data, mean, scale, shift; kernel=1, stride=1, pad=0, relu=False, shuffle_groups=1) -> float32
//       max pool of (data - mean[c]) * scale[c] + shift[c] (a BatchNorm, as MXNet rounds it), then ReLU,
//       then channel shuffle (kernels/norm_pool.h).
#include <mxnet/lib_api.h>

#include <limits>
#include <set>
#include <sstream>
#include <type_traits>

#include "kernels/binary_conv.h"
#include "kernels/dense_stage.h"
#include "kernels/norm_pool.h"

using mxnet::ext::MXReturnValue;
using mxnet::ext::MXTensor;
using mxnet::ext::OpResource;
using binary_models::ConvShape;

namespace {

using Attrs = std::unordered_map<std::string, std::string>;
using Shapes = std::vector<std::vector<unsigned int>>;

// MXNet keeps every extension error message for the life of the process and reports all of them with
// each new error; the stale ones are dropped here so an error names only its own problem. MXerrorMsgs is
// a standard-layout class whose only member is its vector of messages, so the cast below is well defined.
MXReturnValue fail(const char* op, const std::string& problem) {
  using Messages = std::vector<std::stringstream*>;
  static_assert(std::is_standard_layout<mxnet::ext::MXerrorMsgs>::value &&
                    sizeof(mxnet::ext::MXerrorMsgs) == sizeof(Messages),
                "MXerrorMsgs is no longer a plain vector of messages");
  Messages* messages = reinterpret_cast<Messages*>(mxnet::ext::MXerrorMsgs::get());
  for (std::stringstream* message : *messages) delete message;
  messages->clear();
  MX_ERROR_MSG << op << ": " << problem;
  return mxnet::ext::MX_FAIL;
}

std::string dtype_name(int code) {
  static const char* names[] = {"float32", "float64", "float16", "uint8", "int32", "int8", "int64"};
  return code >= 0 && code < 7 ? names[code] : "dtype code " + std::to_string(code);
}

template <typename Int>
std::string shape_text(const std::vector<Int>& shape) {
  std::string text = "(";
  for (size_t i = 0; i < shape.size(); ++i) text += (i ? ", " : "") + std::to_string(shape[i]);
  return text + (shape.size() == 1 ? ",)" : ")");
}

// Reads attributes as MXNet passes them: Python's str() of the value ("3", "(3, 3)", "True", "zero").
class AttrReader {
 public:
  AttrReader(const Attrs& attrs, std::set<std::string> known) : attrs_(attrs) {
    for (const auto& kv : attrs)
      if (kv.first.compare(0, 2, "__") != 0 && !known.count(kv.first)) {
        std::string names;
        for (const std::string& name : known) names += (names.empty() ? "" : ", ") + name;
        problem_ = "unknown attribute '" + kv.first + "' (known: " + names + ")";
      }
  }
  const std::string& problem() const { return problem_; }

  // An integer pair: "3" means (3, 3). `fallback` < 0 makes the attribute required.
  void pair(const char* key, int fallback, int* first, int* second) {
    std::vector<int> values;
    if (!read(key, fallback, &values)) {
      *first = *second = fallback;
      return;
    }
    if (values.size() == 1) values.push_back(values[0]);
    if (values.size() != 2) return note(key, "expected one or two integers");
    *first = values[0];
    *second = values[1];
  }
  void integer(const char* key, int fallback, int* value) {
    std::vector<int> values;
    if (!read(key, fallback, &values)) {
      *value = fallback;
      return;
    }
    if (values.size() != 1) return note(key, "expected an integer");
    *value = values[0];
  }
  void boolean(const char* key, bool* value) {
    *value = false;
    auto it = attrs_.find(key);
    if (it == attrs_.end()) return;
    const std::string& v = it->second;
    if (v == "True" || v == "true" || v == "1") *value = true;
    else if (!(v == "False" || v == "false" || v == "0")) note(key, "expected True or False");
  }
  void text(const char* key, std::string* value) {
    auto it = attrs_.find(key);
    if (it == attrs_.end()) return note(key, "required attribute missing");
    std::string v = it->second;
    if (v.size() >= 2 && (v.front() == '\'' || v.front() == '"')) v = v.substr(1, v.size() - 2);
    *value = v;
  }
  void pad_mode(binary_models::PadMode* mode) {
    *mode = binary_models::PadMode::kMinusOne;
    auto it = attrs_.find("pad_mode");
    if (it == attrs_.end()) return;
    std::string v = it->second;
    if (v.size() >= 2 && (v.front() == '\'' || v.front() == '"')) v = v.substr(1, v.size() - 2);
    if (v == "zero") *mode = binary_models::PadMode::kZero;
    else if (v != "minus_one") note("pad_mode", "expected 'minus_one' or 'zero'");
  }

 private:
  // False when the attribute is absent and has a fallback. Values outside the range of int are refused
  // (the kernels take int; a silent cast would turn 2**32 + 1 into 1).
  bool read(const char* key, int fallback, std::vector<int>* values) {
    auto it = attrs_.find(key);
    if (it == attrs_.end()) {
      if (fallback < 0) note(key, "required attribute missing");
      return false;
    }
    std::string text = it->second;
    for (char& c : text)
      if (c == '(' || c == ')' || c == '[' || c == ']' || c == ',') c = ' ';
    std::istringstream in(text);
    std::string token;
    while (in >> token) {
      size_t used = 0;
      long long v = 0;
      bool in_range = true;
      try {
        v = std::stoll(token, &used);
      } catch (const std::out_of_range&) {
        in_range = false;
      } catch (const std::exception&) {
        used = 0;
      }
      in_range = in_range && v >= std::numeric_limits<int>::min() && v <= std::numeric_limits<int>::max();
      if (!in_range) {
        note(key, token + " is out of range (" + std::to_string(std::numeric_limits<int>::min()) + ".." +
                      std::to_string(std::numeric_limits<int>::max()) + ")");
        return true;
      }
      if (used != token.size() || token.empty()) {
        note(key, "'" + it->second + "' is not a list of integers");
        return true;
      }
      values->push_back(int(v));
    }
    return true;
  }
  void note(const char* key, const std::string& what) {
    if (problem_.empty()) problem_ = std::string("attribute ") + key + ": " + what;
  }

  const Attrs& attrs_;
  std::string problem_;
};

// ---- attributes of each operator ----

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
    if (value < 1 || value > binary_models::kMaxChannels)
      return std::string(name) + " " + std::to_string(value) + " is not supported (allowed: 1.." +
             std::to_string(binary_models::kMaxChannels) + ")";
  out->shape = binary_models::dense_shape(1, in_units, units);
  return "";
}

// Packed weight shape: (groups * blocks, kernel_h, kernel_w, words, 4).
std::vector<unsigned int> packed_shape(const ConvShape& s) {
  return {unsigned(s.groups * s.blocks()), unsigned(s.kernel_h), unsigned(s.kernel_w), unsigned(s.words()),
          unsigned(binary_models::kLanes)};
}

MXReturnValue check_cpu(const char* op, const std::vector<MXTensor>& tensors) {
  for (const MXTensor& t : tensors)
    if (t.ctx.dev_type != "cpu") return fail(op, "runs on the CPU only, got a tensor on " + t.ctx.dev_type);
  return mxnet::ext::MX_SUCCESS;
}

// A problem naming `tensor` when a dimension of `shape` does not fit the kernels' int sizes.
std::string dims_fit_int(const char* tensor, const std::vector<int64_t>& shape) {
  for (int64_t dim : shape)
    if (dim > std::numeric_limits<int>::max())
      return std::string(tensor) + " shape " + shape_text(shape) + " has a dimension over " +
             std::to_string(std::numeric_limits<int>::max());
  return "";
}

// ---- binary_conv2d and binary_dense: one description each, one set of callbacks ----

// The full shape of a conv from its attributes and NCHW data shape, or a problem.
std::string conv_shape(const ConvAttrs& a, const std::vector<int64_t>& data, ConvShape* s) {
  if (data.size() != 4) return "data must be 4-D NCHW, got shape " + shape_text(data);
  if (std::string problem = dims_fit_int("data", data); !problem.empty()) return problem;
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
  if (problem.empty()) problem = op.shape_of(*a, std::vector<int64_t>(data.begin(), data.end()), s);
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

// An operator input: its name and dtype.
struct InputSpec {
  const char* name;
  int dtype;
  const char* wanted;
};
constexpr InputSpec kData{"data", mxnet::ext::kFloat32, "float32"};
constexpr InputSpec kPacked{"packed weight", mxnet::ext::kInt64, "int64 (from binary_pack_weights)"};
constexpr InputSpec kThreshold{"threshold", mxnet::ext::kFloat32, "float32"};
constexpr InputSpec kDirection{"direction", mxnet::ext::kFloat32, "float32"};
constexpr InputSpec kScale{"scale", mxnet::ext::kFloat32, "float32"};
constexpr InputSpec kShift{"shift", mxnet::ext::kFloat32, "float32"};
constexpr InputSpec kMean{"mean", mxnet::ext::kFloat32, "float32"};

// Fills in unknown input dtypes and checks the known ones; the output is float32.
MXReturnValue check_types(const char* op, const std::vector<InputSpec>& specs, std::vector<int>* in,
                          std::vector<int>* out) {
  for (size_t i = 0; i < in->size() && i < specs.size(); ++i) {
    if ((*in)[i] == -1) (*in)[i] = specs[i].dtype;
    if ((*in)[i] != specs[i].dtype)
      return fail(op, std::string(specs[i].name) + " must be " + specs[i].wanted + ", got " + dtype_name((*in)[i]));
  }
  (*out)[0] = mxnet::ext::kFloat32;
  return mxnet::ext::MX_SUCCESS;
}

// Fills in an unknown 1-D input shape of `size` elements, or checks the known one. A size beyond what an
// MXNet dimension holds (unsigned int) is refused, not truncated (a truncated size would pass a too short
// input to the kernels).
MXReturnValue check_vector(const char* op, const char* name, int64_t size, std::vector<unsigned int>* shape) {
  if (size < 0 || size > int64_t(std::numeric_limits<unsigned int>::max()))
    return fail(op, std::string(name) + " would have " + std::to_string(size) + " elements, more than an MXNet "
                    "dimension holds (" + std::to_string(std::numeric_limits<unsigned int>::max()) + ")");
  const std::vector<unsigned int> expected{unsigned(size)};
  if (shape->empty()) *shape = expected;
  if (*shape != expected) return fail(op, std::string(name) + " shape " + shape_text(*shape) + " must be " + shape_text(expected));
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
  // MXNet's temporary space (reused between calls) takes an int size; larger buffers are allocated.
  const size_t workspace = binary_models::workspace_bytes(s);
  const bool from_mxnet = workspace > 0 && workspace <= size_t(std::numeric_limits<int>::max());
  binary_models::ConvOptions options;
  if (a.folded_bn) {
    options.threshold = (*in)[2].data<float>();
    options.direction = (*in)[3].data<float>();
  }
  binary_models::binary_conv2d(s, (*in)[0].data<float>(), (*in)[1].data<uint64_t>(),
                               a.scaled ? (*in)[a.folded_bn ? 4 : 2].data<float>() : nullptr, (*out)[0].data<float>(),
                               from_mxnet ? res.alloc_cpu(int(workspace)) : nullptr, binary_models::Isa::kAuto,
                               options);
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
  if (groups >= 1 && weight[1] * groups > binary_models::kMaxChannels)
    return "in_channels " + std::to_string(weight[1] * groups) + " (weight shape " + shape_text(weight) +
           ", num_group " + std::to_string(groups) + ") is not supported (allowed: 1.." +
           std::to_string(binary_models::kMaxChannels) + ")";
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
  if (problem.empty()) problem = pack_shape(groups, std::vector<int64_t>((*in)[0].begin(), (*in)[0].end()), &s);
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
  binary_models::pack_weights(s, (*in)[0].data<float>(), (*out)[0].data<uint64_t>());
  return mxnet::ext::MX_SUCCESS;
}

// ---- binary_dense_stage ----

const char kStage[] = "binary_dense_stage";

struct StageAttrs {
  binary_models::DenseStageShape shape;  // batch, height and width come from the data
  bool scaled = false;
};

std::string parse_stage(const Attrs& attrs, StageAttrs* out) {
  AttrReader r(attrs, {"units", "in_channels", "growth", "kernel", "dilate", "pad_mode", "scaled"});
  binary_models::DenseStageShape& s = out->shape;
  r.text("units", &s.units);
  r.integer("in_channels", -1, &s.in_channels);
  r.integer("growth", 64, &s.growth);
  r.integer("kernel", 3, &s.kernel);
  r.integer("dilate", 1, &s.dilation);
  r.pad_mode(&s.pad_mode);
  r.boolean("scaled", &out->scaled);
  return r.problem();
}

// Attributes and data shape -> the full stage shape, or a problem.
std::string stage_shape(const Attrs& attrs, const std::vector<int64_t>& data, StageAttrs* a) {
  std::string problem = parse_stage(attrs, a);
  if (!problem.empty()) return problem;
  if (data.size() != 4) return "data must be 4-D NCHW, got shape " + shape_text(data);
  if (problem = dims_fit_int("data", data); !problem.empty()) return problem;
  if (int64_t(a->shape.in_channels) != data[1])
    return "data has " + std::to_string(data[1]) + " channels but in_channels is " + std::to_string(a->shape.in_channels);
  a->shape.batch = int(data[0]);
  a->shape.height = int(data[2]);
  a->shape.width = int(data[3]);
  return a->shape.check();
}

MXReturnValue stage_parse(const Attrs& attrs, int* num_in, int* num_out) {
  StageAttrs a;
  if (std::string problem = parse_stage(attrs, &a); !problem.empty()) return fail(kStage, problem);
  *num_in = a.scaled ? 5 : 4;
  *num_out = 1;
  return mxnet::ext::MX_SUCCESS;
}

MXReturnValue stage_types(const Attrs& attrs, std::vector<int>* in, std::vector<int>* out) {
  StageAttrs a;
  if (std::string problem = parse_stage(attrs, &a); !problem.empty()) return fail(kStage, problem);
  return check_types(kStage, {kData, kPacked, kThreshold, kDirection, kScale}, in, out);
}

MXReturnValue stage_shapes(const Attrs& attrs, Shapes* in, Shapes* out) {
  StageAttrs a;
  if (std::string problem = stage_shape(attrs, std::vector<int64_t>((*in)[0].begin(), (*in)[0].end()), &a);
      !problem.empty())
    return fail(kStage, problem);
  const binary_models::DenseStageShape& s = a.shape;
  if (!check_vector(kStage, "packed weights", s.weight_words(), &(*in)[1]) ||
      !check_vector(kStage, "thresholds", s.threshold_count(), &(*in)[2]) ||
      !check_vector(kStage, "directions", s.threshold_count(), &(*in)[3]) ||
      (a.scaled && !check_vector(kStage, "scales", int64_t(s.growth) * int64_t(s.units.size()), &(*in)[4])))
    return mxnet::ext::MX_FAIL;
  (*out)[0] = {unsigned(s.batch), unsigned(s.out_channels()), unsigned(s.height), unsigned(s.width)};
  return mxnet::ext::MX_SUCCESS;
}

MXReturnValue stage_forward(const Attrs& attrs, std::vector<MXTensor>* in, std::vector<MXTensor>* out,
                            const OpResource& res) {
  StageAttrs a;
  if (std::string problem = stage_shape(attrs, (*in)[0].shape, &a); !problem.empty()) return fail(kStage, problem);
  if (!check_cpu(kStage, *in)) return mxnet::ext::MX_FAIL;
  const size_t workspace = binary_models::dense_stage_workspace_bytes(a.shape);
  const bool from_mxnet = workspace > 0 && workspace <= size_t(std::numeric_limits<int>::max());
  binary_models::dense_stage(a.shape, (*in)[0].data<float>(), (*in)[1].data<uint64_t>(), (*in)[2].data<float>(),
                             (*in)[3].data<float>(), a.scaled ? (*in)[4].data<float>() : nullptr,
                             (*out)[0].data<float>(), from_mxnet ? res.alloc_cpu(int(workspace)) : nullptr);
  return mxnet::ext::MX_SUCCESS;
}

// ---- norm_pool ----

const char kNormPool[] = "norm_pool";

std::string parse_norm_pool(const Attrs& attrs, binary_models::NormPoolShape* s) {
  AttrReader r(attrs, {"kernel", "stride", "pad", "relu", "shuffle_groups"});
  r.pair("kernel", 1, &s->kernel_h, &s->kernel_w);
  r.pair("stride", 1, &s->stride_h, &s->stride_w);
  r.pair("pad", 0, &s->pad_h, &s->pad_w);
  r.boolean("relu", &s->relu);
  r.integer("shuffle_groups", 1, &s->shuffle_groups);
  return r.problem();
}

std::string norm_pool_shape(const Attrs& attrs, const std::vector<int64_t>& data, binary_models::NormPoolShape* s) {
  std::string problem = parse_norm_pool(attrs, s);
  if (!problem.empty()) return problem;
  if (data.size() != 4) return "data must be 4-D NCHW, got shape " + shape_text(data);
  if (problem = dims_fit_int("data", data); !problem.empty()) return problem;
  s->batch = int(data[0]);
  s->channels = int(data[1]);
  s->height = int(data[2]);
  s->width = int(data[3]);
  return s->check();
}

MXReturnValue norm_pool_parse(const Attrs& attrs, int* num_in, int* num_out) {
  binary_models::NormPoolShape s;
  if (std::string problem = parse_norm_pool(attrs, &s); !problem.empty()) return fail(kNormPool, problem);
  *num_in = 4;
  *num_out = 1;
  return mxnet::ext::MX_SUCCESS;
}

MXReturnValue norm_pool_types(const Attrs&, std::vector<int>* in, std::vector<int>* out) {
  return check_types(kNormPool, {kData, kMean, kScale, kShift}, in, out);
}

MXReturnValue norm_pool_shapes(const Attrs& attrs, Shapes* in, Shapes* out) {
  binary_models::NormPoolShape s;
  if (std::string problem = norm_pool_shape(attrs, std::vector<int64_t>((*in)[0].begin(), (*in)[0].end()), &s);
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
  binary_models::NormPoolShape s;
  if (std::string problem = norm_pool_shape(attrs, (*in)[0].shape, &s); !problem.empty()) return fail(kNormPool, problem);
  if (!check_cpu(kNormPool, *in)) return mxnet::ext::MX_FAIL;
  binary_models::norm_pool(s, (*in)[0].data<float>(), (*in)[1].data<float>(), (*in)[2].data<float>(),
                           (*in)[3].data<float>(), (*out)[0].data<float>());
  return mxnet::ext::MX_SUCCESS;
}

// A backward that refuses: with it MXNet registers a gradient, so hybridized graphs (CachedOp builds the
// backward graph up front) accept the operators; calling it says they are for inference.
MXReturnValue no_backward(const Attrs&, std::vector<MXTensor>*, std::vector<MXTensor>*, const OpResource&) {
  return fail("binary operators", "have no gradient: they are for inference (train the float-emulated layers)");
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

REGISTER_OP(binary_dense_stage)
    .setParseAttrs(stage_parse)
    .setInferType(stage_types)
    .setInferShape(stage_shapes)
    .setForward(stage_forward, "cpu")
    .setBackward(no_backward, "cpu");

REGISTER_OP(norm_pool)
    .setParseAttrs(norm_pool_parse)
    .setInferType(norm_pool_types)
    .setInferShape(norm_pool_shapes)
    .setForward(norm_pool_forward, "cpu")
    .setBackward(no_backward, "cpu");

MXReturnValue initialize(int version) {
  binary_models::active_isa();  // reads BINARY_MODELS_ISA now: a complaint about it comes at load time
  if (version >= 10700) return mxnet::ext::MX_SUCCESS;
  MX_ERROR_MSG << "binary_models native operators need MXNet >= 1.7.0, got " << version;
  return mxnet::ext::MX_FAIL;
}
