#include "mxnet_api.h"

#include <cstdint>
#include <map>
#include <sstream>

namespace deploy {

namespace {

// "[12:34:56] ../src/io/image_io.cc:196: Check failed: ...: message" -> "Check failed: ...: message".
std::string strip_location(std::string line) {
  if (!line.empty() && line[0] == '[') {
    size_t close = line.find("] ");
    if (close != std::string::npos) line = line.substr(close + 2);
    size_t colon = line.find(": ");
    if (colon != std::string::npos && line.substr(0, colon).find(':') != std::string::npos &&
        line.substr(0, colon).find(' ') == std::string::npos)
      line = line.substr(colon + 2);
  }
  const std::string prefix = "MXNetError: ";
  if (line.compare(0, prefix.size(), prefix) == 0) line = line.substr(prefix.size());
  return line;
}

// Name -> creator of every registered operator; rebuilt when a library adds operators.
std::map<std::string, AtomicSymbolCreator>& creators() {
  static std::map<std::string, AtomicSymbolCreator> table;
  return table;
}

AtomicSymbolCreator creator_of(const std::string& op) {
  auto& table = creators();
  if (!table.count(op)) {
    uint32_t count = 0;
    AtomicSymbolCreator* list = nullptr;
    check(MXSymbolListAtomicSymbolCreators(&count, &list), "listing MXNet's operators");
    table.clear();
    for (uint32_t i = 0; i < count; ++i) {
      const char* name = nullptr;
      check(MXSymbolGetAtomicSymbolName(list[i], &name), "listing MXNet's operators");
      table[name] = list[i];
    }
  }
  auto it = table.find(op);
  if (it == table.end()) throw Error("MXNet has no operator " + op);
  return it->second;
}

}  // namespace

std::string last_error() {
  std::istringstream text(MXGetLastError());
  std::string line, message;
  while (std::getline(text, line)) {
    if (line.rfind("Stack trace", 0) == 0) break;
    if (line.empty() || line.rfind("Traceback", 0) == 0 || line.rfind("  File ", 0) == 0) continue;
    line = strip_location(line);
    while (!line.empty() && (line.back() == ' ' || line.back() == ':')) line.pop_back();
    message += (message.empty() ? "" : ": ") + line;
  }
  return message.empty() ? "unknown MXNet error" : message;
}

void check(int status, const std::string& what) {
  if (status != 0) throw Error(what + ": " + last_error());
}

NDArray& NDArray::operator=(NDArray&& other) noexcept {
  if (this != &other) {
    if (handle_) MXNDArrayFree(handle_);
    handle_ = std::exchange(other.handle_, nullptr);
  }
  return *this;
}

NDArray::~NDArray() {
  if (handle_) MXNDArrayFree(handle_);
}

NDArray NDArray::from_bytes(const std::string& bytes) {
  const uint32_t shape[1] = {static_cast<uint32_t>(bytes.size())};
  NDArrayHandle handle = nullptr;
  check(MXNDArrayCreateEx(shape, 1, /*dev_type=cpu*/ 1, 0, /*delay_alloc=*/0, kUint8, &handle), "allocating");
  NDArray array(handle);
  check(MXNDArraySyncCopyFromCPU(handle, bytes.data(), bytes.size()), "copying into an array");
  return array;
}

std::vector<int> NDArray::shape() const {
  int ndim = 0;
  const int* dims = nullptr;
  check(MXNDArrayGetShapeEx(handle_, &ndim, &dims), "reading an array's shape");
  return std::vector<int>(dims, dims + (ndim > 0 ? ndim : 0));
}

int NDArray::dtype() const {
  int type = -1;
  check(MXNDArrayGetDType(handle_, &type), "reading an array's type");
  return type;
}

std::vector<float> NDArray::to_floats() const {
  if (dtype() != kFloat32) throw Error("internal: expected a float32 array");
  size_t size = 1;
  for (int d : shape()) size *= static_cast<size_t>(d);
  std::vector<float> data(size);
  check(MXNDArraySyncCopyToCPU(handle_, data.data(), size), "reading an array");
  return data;
}

NDArray invoke(const std::string& op, const std::vector<const NDArray*>& inputs, const OpParams& params) {
  std::vector<NDArrayHandle> in;
  for (const NDArray* x : inputs) in.push_back(x->get());
  std::vector<const char*> keys, values;
  for (const auto& kv : params) {
    keys.push_back(kv.first.c_str());
    values.push_back(kv.second.c_str());
  }
  int num_outputs = 0;
  NDArrayHandle* outputs = nullptr;
  check(MXImperativeInvoke(creator_of(op), static_cast<int>(in.size()), in.data(), &num_outputs, &outputs,
                           static_cast<int>(keys.size()), keys.data(), values.data()),
        op);
  NDArray first(outputs[0]);
  for (int i = 1; i < num_outputs; ++i) MXNDArrayFree(outputs[i]);
  check(MXNDArrayWaitAll(), op);  // MXNet runs operators asynchronously: surface their errors here
  return first;
}

std::set<std::string> registered_operators() {
  uint32_t count = 0;
  const char** names = nullptr;
  check(MXListAllOpNames(&count, &names), "listing MXNet's operators");
  return std::set<std::string>(names, names + count);
}

void load_library(const std::string& path) {
  check(MXLoadLib(path.c_str(), /*verbose=*/0), "cannot load " + path);
  creators().clear();
}

std::vector<std::pair<std::string, NDArray>> load_arrays(const std::string& bytes) {
  uint32_t count = 0, name_count = 0;
  NDArrayHandle* arrays = nullptr;
  const char** names = nullptr;
  check(MXNDArrayLoadFromBuffer(bytes.data(), bytes.size(), &count, &arrays, &name_count, &names),
        "not an MXNet parameter file");
  std::vector<std::pair<std::string, NDArray>> result;
  for (uint32_t i = 0; i < count; ++i)
    result.emplace_back(i < name_count ? names[i] : std::string(), NDArray(arrays[i]));
  return result;
}

}  // namespace deploy
