#include "params_file.h"

#include <cstring>

#include "../error.h"

namespace binary_models::runtime {

using deploy::Error;

namespace {

constexpr uint64_t kListMagic = 0x112;
constexpr uint32_t kArrayV2 = 0xF993FAC9, kArrayV3 = 0xF993FACA;
constexpr int kMaxDims = 8;

class Reader {
 public:
  explicit Reader(std::string_view bytes) : bytes_(bytes) {}
  size_t left() const { return bytes_.size() - at_; }
  size_t at() const { return at_; }

  template <typename T>
  T read(const char* what) {
    T value;
    std::memcpy(&value, take(sizeof(T), what), sizeof(T));
    return value;
  }
  const char* take(size_t n, const char* what) {
    if (n > left())
      throw Error(std::string("truncated: ") + what + " needs " + std::to_string(n) + " bytes at byte " +
                  std::to_string(at_) + ", the file has " + std::to_string(left()) + " left");
    const char* p = bytes_.data() + at_;
    at_ += n;
    return p;
  }

 private:
  std::string_view bytes_;
  size_t at_ = 0;
};

Parameter read_array(Reader& in, size_t index) {
  const std::string which = "array " + std::to_string(index);
  uint32_t magic = in.read<uint32_t>("an array's magic number");
  if (magic != kArrayV2 && magic != kArrayV3)
    throw Error(which + " has no NDArray magic number (0x" + [&] {
      char hex[16];
      std::snprintf(hex, sizeof(hex), "%08x", magic);
      return std::string(hex);
    }() + "): not a parameter file of MXNet 1.x");
  int32_t storage = in.read<int32_t>("a storage type");
  if (storage != 0) throw Error(which + " is sparse (storage type " + std::to_string(storage) + "), not dense");
  int32_t ndim = in.read<int32_t>("a number of dimensions");
  if (ndim < 0 || ndim > kMaxDims)
    throw Error(which + " has " + std::to_string(ndim) + " dimensions (allowed: 0.." + std::to_string(kMaxDims) + ")");
  Parameter p;
  uint64_t count = 1;
  for (int d = 0; d < ndim; ++d) {
    int64_t dim = in.read<int64_t>("a dimension");
    if (dim < 0) throw Error(which + " has the dimension " + std::to_string(dim));
    p.shape.push_back(dim);
    // Bounded by the bytes left, so the product cannot overflow.
    if (dim != 0 && count > in.left() / uint64_t(dim)) count = in.left() + 1;
    else count *= uint64_t(dim);
  }
  in.read<int32_t>("a device type");
  in.read<int32_t>("a device id");
  int32_t dtype = in.read<int32_t>("a dtype");
  if (dtype != int32_t(DType::kFloat32) && dtype != int32_t(DType::kInt64))
    throw Error(which + " has dtype " + std::to_string(dtype) + " (supported: 0 float32, 6 int64)");
  p.dtype = DType(dtype);
  size_t element = dtype_size(p.dtype);
  if (count > in.left() / element)
    throw Error("truncated: " + which + " of shape " + shape_text(p.shape) + " needs more than the " +
                std::to_string(in.left()) + " bytes left");
  size_t bytes = size_t(count) * element;
  p.data = Buffer(bytes);
  std::memcpy(p.data.data(), in.take(bytes, "the elements"), bytes);
  return p;
}

}  // namespace

std::map<std::string, Parameter> read_params(std::string_view bytes) {
  Reader in(bytes);
  if (in.read<uint64_t>("the header") != kListMagic) throw Error("no NDArray list header (0x112)");
  in.read<uint64_t>("the header");
  uint64_t count = in.read<uint64_t>("the number of arrays");
  if (count > in.left() / 28)  // the smallest array takes 28 bytes
    throw Error("it claims " + std::to_string(count) + " arrays in " + std::to_string(in.left()) + " bytes");
  std::vector<Parameter> arrays;
  for (uint64_t i = 0; i < count; ++i) arrays.push_back(read_array(in, size_t(i)));
  uint64_t names = in.read<uint64_t>("the number of names");
  if (names != count)
    throw Error("it has " + std::to_string(count) + " arrays but " + std::to_string(names) + " names");
  std::map<std::string, Parameter> params;
  for (uint64_t i = 0; i < names; ++i) {
    uint64_t length = in.read<uint64_t>("a name's length");
    if (length > in.left()) throw Error("truncated: name " + std::to_string(i) + " is longer than the file");
    std::string name(in.take(size_t(length), "a name"), size_t(length));
    if (name.rfind("arg:", 0) == 0 || name.rfind("aux:", 0) == 0) name = name.substr(4);
    if (params.count(name)) throw Error("the parameter " + name + " appears twice");
    params.emplace(name, std::move(arrays[i]));
  }
  if (in.left()) throw Error(std::to_string(in.left()) + " bytes follow the last name");
  return params;
}

}  // namespace binary_models::runtime
