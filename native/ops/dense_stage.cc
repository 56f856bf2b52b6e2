// binary_dense_stage (see mxnet_ops.cc for its attributes): a whole dense stage (kernels/dense_stage.h).
#include "../kernels/dense_stage.h"
#include "glue.h"

namespace binary_models::ops {
namespace {

const char kStage[] = "binary_dense_stage";

struct StageAttrs {
  DenseStageShape shape;  // batch, height and width come from the data
  bool scaled = false;
};

std::string parse_stage(const Attrs& attrs, StageAttrs* out) {
  AttrReader r(attrs, {"units", "in_channels", "growth", "kernel", "dilate", "pad_mode", "scaled"});
  DenseStageShape& s = out->shape;
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
  if (problem = check_nchw(data); !problem.empty()) return problem;
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
  if (std::string problem = stage_shape(attrs, dims((*in)[0]), &a);
      !problem.empty())
    return fail(kStage, problem);
  const DenseStageShape& s = a.shape;
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
  dense_stage(a.shape, (*in)[0].data<float>(), (*in)[1].data<uint64_t>(), (*in)[2].data<float>(),
                             (*in)[3].data<float>(), a.scaled ? (*in)[4].data<float>() : nullptr,
                             (*out)[0].data<float>(), scratch(res, dense_stage_workspace_bytes(a.shape)));
  return mxnet::ext::MX_SUCCESS;
}

}  // namespace

REGISTER_OP(binary_dense_stage)
    .setParseAttrs(stage_parse)
    .setInferType(stage_types)
    .setInferShape(stage_shapes)
    .setForward(stage_forward, "cpu")
    .setBackward(no_backward, "cpu");

}  // namespace binary_models::ops
