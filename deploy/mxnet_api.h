// A thin C++ layer over the C API that the mxnet pip wheel ships (mxnet/c_api.h): owning NDArray handles,
// calling any registered operator by name (MXImperativeInvoke), loading an extension library (MXLoadLib),
// and MXNet's errors as exceptions carrying one readable line.
#pragma once

#include <mxnet/c_api.h>

#include <set>
#include <string>
#include <utility>
#include <vector>

#include "error.h"

namespace deploy {

// The first meaningful line of MXGetLastError(), without MXNet's "[time] file:line: " prefix.
std::string last_error();

// Throws Error("<what>: <last_error()>") when an MXNet call returned non-zero.
void check(int status, const std::string& what);

// MXNet's dtype codes (mshadow::TypeFlag).
enum DType { kFloat32 = 0, kUint8 = 3, kInt64 = 6 };

// Owns one NDArrayHandle.
class NDArray {
 public:
  NDArray() = default;
  explicit NDArray(NDArrayHandle handle) : handle_(handle) {}
  NDArray(const NDArray&) = delete;
  NDArray& operator=(const NDArray&) = delete;
  NDArray(NDArray&& other) noexcept : handle_(std::exchange(other.handle_, nullptr)) {}
  NDArray& operator=(NDArray&& other) noexcept;
  ~NDArray();

  // A new 1-D uint8 array on the CPU holding bytes.
  static NDArray from_bytes(const std::string& bytes);

  NDArrayHandle get() const { return handle_; }
  std::vector<int> shape() const;
  int dtype() const;
  // The contents as float32, in row-major order (the array must be float32).
  std::vector<float> to_floats() const;

 private:
  NDArrayHandle handle_ = nullptr;
};

using OpParams = std::vector<std::pair<std::string, std::string>>;

// Runs the operator called op (e.g. "_cvimdecode") on inputs with string parameters; returns its
// first output.
NDArray invoke(const std::string& op, const std::vector<const NDArray*>& inputs, const OpParams& params = {});

// The names of every operator registered now (built in, and from loaded libraries).
std::set<std::string> registered_operators();

// Loads an MXNet extension library (its operators become usable by name and in symbol files).
void load_library(const std::string& path);

// The named arrays of an MXNet .params file held in memory (names keep their "arg:"/"aux:" prefix).
std::vector<std::pair<std::string, NDArray>> load_arrays(const std::string& bytes);

}  // namespace deploy
