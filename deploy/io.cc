#include "io.h"

#include <sys/stat.h>

#include <cerrno>
#include <charconv>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "error.h"

namespace deploy {

namespace {

// nlohmann's what(): "[json.exception.parse_error.101] parse error at line 1, ...": without the bracket.
std::string reason(const nlohmann::json::exception& err) {
  std::string text = err.what();
  size_t close = text.find("] ");
  return close == std::string::npos ? text : text.substr(close + 2);
}

}  // namespace

bool is_file(const std::string& path) {
  struct stat info;
  return stat(path.c_str(), &info) == 0 && S_ISREG(info.st_mode);
}

std::string read_file(const std::string& path, const std::string& what) {
  struct stat info;
  if (stat(path.c_str(), &info) != 0) throw Error(what + " not found: " + path);
  if (!S_ISREG(info.st_mode)) throw Error(what + " is not a file: " + path);
  std::ifstream in(path, std::ios::binary);
  std::ostringstream bytes;
  if (in) bytes << in.rdbuf();
  if (!in || in.bad()) throw Error("cannot read " + what + " " + path + ": " + std::strerror(errno));
  return bytes.str();
}

nlohmann::json parse_json(const std::string& text) {
  try {
    return nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& err) {  // a parse error (with its line and column), a number out of range
    throw Error("invalid JSON: " + reason(err));
  }
}

std::string quoted(const nlohmann::json& value) {
  if (value.is_structured()) return std::string("an ") + value.type_name();
  return value.dump(-1, ' ', /*ensure_ascii*/ true, nlohmann::json::error_handler_t::replace);
}

std::string decimal(double x) {
  char buffer[64];
  auto result = std::to_chars(buffer, buffer + sizeof(buffer), x);
  return std::string(buffer, result.ptr);
}

}  // namespace deploy
