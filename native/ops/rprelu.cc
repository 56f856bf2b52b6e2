// rprelu(data, shift_in, slope, shift_out) -> float32 NCHW: ReActNet's RPReLU (kernels/rprelu.h), the form a
// converted model's RPReLU blocks take (MXNet's LeakyReLU(prelu) between two broadcast ops is ~5x slower).
#include "../kernels/rprelu.h"
#include "glue.h"

namespace binary_models::ops {
namespace {

const char kRPReLU[] = "rprelu";
inline constexpr InputSpec kShiftIn{"shift_in", mxnet::ext::kFloat32, "float32"};
inline constexpr InputSpec kSlope{"slope", mxnet::ext::kFloat32, "float32"};
inline constexpr InputSpec kShiftOut{"shift_out", mxnet::ext::kFloat32, "float32"};

MXReturnValue rprelu_parse(const Attrs& attrs, int* num_in, int* num_out) {
  AttrReader r(attrs, {});
  if (std::string problem = r.problem(); !problem.empty()) return fail(kRPReLU, problem);
  *num_in = 4;
  *num_out = 1;
  return mxnet::ext::MX_SUCCESS;
}

MXReturnValue rprelu_types(const Attrs&, std::vector<int>* in, std::vector<int>* out) {
  return check_types(kRPReLU, {kData, kShiftIn, kSlope, kShiftOut}, in, out);
}

MXReturnValue rprelu_shapes(const Attrs&, Shapes* in, Shapes* out) {
  const std::vector<int64_t> data = dims((*in)[0]);
  if (std::string problem = check_nchw(data); !problem.empty()) return fail(kRPReLU, problem);
  if (!check_vector(kRPReLU, "shift_in", data[1], &(*in)[1]) || !check_vector(kRPReLU, "slope", data[1], &(*in)[2]) ||
      !check_vector(kRPReLU, "shift_out", data[1], &(*in)[3]))
    return mxnet::ext::MX_FAIL;
  (*out)[0] = (*in)[0];
  return mxnet::ext::MX_SUCCESS;
}

MXReturnValue rprelu_forward(const Attrs&, std::vector<MXTensor>* in, std::vector<MXTensor>* out,
                             const OpResource&) {
  const std::vector<int64_t>& shape = (*in)[0].shape;
  if (std::string problem = check_nchw(shape); !problem.empty()) return fail(kRPReLU, problem);
  if (!check_cpu(kRPReLU, *in)) return mxnet::ext::MX_FAIL;
  rprelu(shape[0], shape[1], shape[2] * shape[3], (*in)[0].data<float>(), (*in)[1].data<float>(),
         (*in)[2].data<float>(), (*in)[3].data<float>(), (*out)[0].data<float>());
  return mxnet::ext::MX_SUCCESS;
}

}  // namespace

REGISTER_OP(rprelu)
    .setParseAttrs(rprelu_parse)
    .setInferType(rprelu_types)
    .setInferShape(rprelu_shapes)
    .setForward(rprelu_forward, "cpu")
    .setBackward(no_backward, "cpu");

}  // namespace binary_models::ops
