// What every operator file (ops/*.cc) shares: reading attributes, checking dtypes and shapes, refusing
// with a message, MXNet's scratch memory and the refusing backward. Every problem is refused with MX_FAIL
// and a message naming it (Python raises MXNetError), never a crash.
#pragma once

#include <mxnet/lib_api.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

#include "../kernels/conv_shape.h"

namespace binary_models::ops {

using mxnet::ext::MXReturnValue;
using mxnet::ext::MXTensor;
using mxnet::ext::OpResource;
using Attrs = std::unordered_map<std::string, std::string>;
using Shapes = std::vector<std::vector<unsigned int>>;

// Fails `op` with "op: problem" as the only message MXNet reports.
MXReturnValue fail(const char* op, const std::string& problem);

std::string dtype_name(int code);

template <typename Int>
std::string shape_text(const std::vector<Int>& shape) {
  std::string text = "(";
  for (size_t i = 0; i < shape.size(); ++i) text += (i ? ", " : "") + std::to_string(shape[i]);
  return text + (shape.size() == 1 ? ",)" : ")");
}

// Reads attributes as MXNet passes them: Python's str() of the value ("3", "(3, 3)", "True", "zero").
// The first problem (an unknown attribute, a missing or malformed value) is kept in problem().
class AttrReader {
 public:
  AttrReader(const Attrs& attrs, std::set<std::string> known);
  const std::string& problem() const { return problem_; }

  void pair(const char* key, int fallback, int* first, int* second);  // "3" means (3, 3); fallback < 0: required
  void integer(const char* key, int fallback, int* value);            // fallback < 0: required
  void boolean(const char* key, bool* value);                         // absent: false
  void text(const char* key, std::string* value);                     // required
  void number(const char* key, double fallback, double* value);       // not NaN; fallback NaN: required
  void pad_mode(PadMode* mode);                                       // 'minus_one' (the default), 'zero', 'one'

 private:
  bool read(const char* key, int fallback, std::vector<int>* values);
  void note(const char* key, const std::string& what);

  const Attrs& attrs_;
  std::string problem_;
};

MXReturnValue check_cpu(const char* op, const std::vector<MXTensor>& tensors);

// A problem naming `tensor` when a dimension of `shape` does not fit the kernels' int sizes.
std::string dims_fit_int(const char* tensor, const std::vector<int64_t>& shape);
// A problem when `data` is not a 4-D NCHW shape whose dimensions fit int.
std::string check_nchw(const std::vector<int64_t>& data);

template <typename Dims>
std::vector<int64_t> dims(const Dims& shape) {
  return std::vector<int64_t>(shape.begin(), shape.end());
}

// An operator input: its name and dtype.
struct InputSpec {
  const char* name;
  int dtype;
  const char* wanted;
};
inline constexpr InputSpec kData{"data", mxnet::ext::kFloat32, "float32"};
inline constexpr InputSpec kPacked{"packed weight", mxnet::ext::kInt64, "int64 (from binary_pack_weights)"};
inline constexpr InputSpec kThreshold{"threshold", mxnet::ext::kFloat32, "float32"};
inline constexpr InputSpec kDirection{"direction", mxnet::ext::kFloat32, "float32"};
inline constexpr InputSpec kScale{"scale", mxnet::ext::kFloat32, "float32"};
inline constexpr InputSpec kShift{"shift", mxnet::ext::kFloat32, "float32"};
inline constexpr InputSpec kMean{"mean", mxnet::ext::kFloat32, "float32"};

// Fills in unknown input dtypes and checks the known ones; the output is float32.
MXReturnValue check_types(const char* op, const std::vector<InputSpec>& specs, std::vector<int>* in,
                          std::vector<int>* out);

// Fills in an unknown 1-D input shape of `size` elements, or checks the known one. A size beyond what an
// MXNet dimension holds (unsigned int) is refused, not truncated (a truncated size would pass a too short
// input to the kernels).
MXReturnValue check_vector(const char* op, const char* name, int64_t size, std::vector<unsigned int>* shape);
// The same for a shape of any rank.
MXReturnValue check_shape(const char* op, const char* name, const std::vector<int64_t>& size,
                          std::vector<unsigned int>* shape);

// `bytes` of MXNet's temporary space (reused between calls), or null when MXNet cannot give that many
// (its size is an int): the kernels then allocate their own.
void* scratch(const OpResource& res, size_t bytes);
// `bytes` of MXNet's temporary space, else of the heap (then owned by `*heap`); null when neither has them.
using HeapBlock = std::unique_ptr<void, decltype(&std::free)>;
void* scratch_or_heap(const OpResource& res, size_t bytes, HeapBlock* heap);

// A backward that refuses: with it MXNet registers a gradient, so hybridized graphs (CachedOp builds the
// backward graph up front) accept the operators; calling it says they are for inference.
MXReturnValue no_backward(const Attrs&, std::vector<MXTensor>*, std::vector<MXTensor>*, const OpResource&);

}  // namespace binary_models::ops
